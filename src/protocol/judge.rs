//! The protocol check as the relay uses it: the rules and the learned model
//! together.
//!
//! - An admin's own patterns decide first: a network's `not_an_alert`
//!   pattern forbids an alert, a network's category pattern forces one.
//! - Otherwise the model's calibrated alert score decides (>= 0.5), and a
//!   score inside the band of doubt (`protocol.review_band`) marks the
//!   message `uncertain`: the relay asks the group's coordinators instead
//!   of guessing.
//! - "Police called" is the model's called head, whose cues are the rules'
//!   sentence-by-sentence reading (negation, question, tense).
//! - Categories: the rules' where they name some, else the model's.
//!
//! Without a model (`protocol.model = "none"`) it is the rules alone, as
//! before: score 1 or 0, never uncertain.

use std::sync::{Arc, LazyLock};

use super::model::{CATEGORIES, Model};
use super::{Classification, RuleSet, normalize};

const BUILTIN_MODEL: &[u8] = include_bytes!("../../config/protocol/model.bin");

static BUILTIN: LazyLock<Result<Arc<Model>, String>> = LazyLock::new(|| {
    Model::from_bytes(BUILTIN_MODEL)
        .map(Arc::new)
        .map_err(|e| e.to_string())
});

/// Which model a network uses (`protocol.model`).
#[derive(Clone, Debug, PartialEq)]
pub enum ModelChoice {
    /// The model shipped in the binary (`config/protocol/model.bin`).
    Builtin,
    /// Rules only.
    None,
    /// A model file of the network's own.
    File(std::path::PathBuf),
}

impl ModelChoice {
    /// Loads the chosen model (`None` for rules only).
    pub fn load(&self) -> Result<Option<Arc<Model>>, String> {
        match self {
            ModelChoice::None => Ok(None),
            ModelChoice::Builtin => BUILTIN.clone().map(Some),
            ModelChoice::File(p) => {
                let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
                Model::from_bytes(&bytes)
                    .map(|m| Some(Arc::new(m)))
                    .map_err(|e| format!("{}: {e}", p.display()))
            }
        }
    }
}

/// The default band of doubt: calibrated alert scores from 0.35 up to
/// (not including) 0.6 go to a person.
pub const DEFAULT_BAND: (f32, f32) = (0.35, 0.6);

/// Rules plus model, compiled once per config load.
pub struct Judge {
    rules: RuleSet,
    model: Option<Arc<Model>>,
    band: (f32, f32),
    /// Ask what a person did when an alert describes only looks.
    describe_behaviour: bool,
}

impl std::fmt::Debug for Judge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judge")
            .field("rules", &self.rules)
            .field("model", &self.model)
            .field("band", &self.band)
            .finish()
    }
}

impl Judge {
    pub fn new(rules: RuleSet, model: Option<Arc<Model>>, band: (f32, f32)) -> Judge {
        Judge {
            rules,
            model,
            band,
            describe_behaviour: true,
        }
    }

    /// Whether an alert that describes a person only by looks is held and
    /// its sender asked what the person did (`protocol.describe_behaviour`,
    /// default on; needs the model).
    pub fn with_describe_behaviour(mut self, on: bool) -> Judge {
        self.describe_behaviour = on;
        self
    }

    /// The rules alone (tests, and networks with `model = "none"`).
    pub fn rules_only(rules: RuleSet) -> Judge {
        Judge::new(rules, None, DEFAULT_BAND)
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn model(&self) -> Option<&Model> {
        self.model.as_deref()
    }

    pub fn band(&self) -> (f32, f32) {
        self.band
    }

    /// Classifies one message (see the module docs).
    pub fn classify(&self, text: &str) -> Classification {
        let Some(model) = &self.model else {
            return self.rules.classify(text);
        };
        let n = normalize(text);
        let cues = self.rules.cues(&n);
        let s = model.score_cues(text, &n, &cues);
        let (forced, forbidden) = self.rules.user_decision(&n);
        let confirmed = s.called >= 0.5;
        if forbidden {
            return Classification {
                alert: false,
                categories: Vec::new(),
                confirmed: false,
                advisory: true,
                score: s.alert,
                uncertain: false,
                looks_only: false,
            };
        }
        let forced_none = forced.is_empty();
        let (alert, uncertain) = if !forced.is_empty() {
            (true, false)
        } else {
            (
                s.alert >= 0.5,
                s.alert >= self.band.0 && s.alert < self.band.1,
            )
        };
        let categories = if !alert {
            Vec::new()
        } else if !forced.is_empty() {
            let mut v = forced;
            for c in cues.categories {
                if !v.contains(&c) {
                    v.push(c);
                }
            }
            v
        } else if !cues.categories.is_empty() {
            cues.categories
        } else {
            model_categories(&s.categories)
        };
        Classification {
            alert,
            categories,
            confirmed,
            advisory: cues.advisory && !alert,
            score: s.alert,
            uncertain,
            looks_only: self.describe_behaviour && alert && forced_none && s.looks_only >= 0.5,
        }
    }

    /// The model's raw scores (none without a model).
    pub fn scores(&self, text: &str) -> Option<super::model::Scores> {
        let m = self.model.as_ref()?;
        let n = normalize(text);
        Some(m.score_cues(text, &n, &self.rules.cues(&n)))
    }

    /// What weighed most for the alert score (for admins: `simulate`).
    pub fn explain(&self, text: &str) -> Vec<String> {
        let n = normalize(text);
        let (forced, forbidden) = self.rules.user_decision(&n);
        let mut why = Vec::new();
        if forbidden {
            why.push("the network's not_an_alert pattern".to_string());
        } else if !forced.is_empty() {
            why.push(format!("the network's pattern for {}", forced.join(", ")));
        }
        match &self.model {
            Some(m) => why.extend(m.explain(text, &self.rules, 5)),
            None => why.push("rules only (protocol.model = \"none\")".to_string()),
        }
        why
    }

    pub fn confirms_followup(&self, text: &str) -> bool {
        self.rules.confirms_followup(text)
    }

    pub fn is_all_clear(&self, text: &str) -> bool {
        self.rules.is_all_clear(text)
    }

    pub fn worth_relaying(&self, text: &str) -> bool {
        self.rules.worth_relaying(text)
    }

    pub fn category_names(&self) -> impl Iterator<Item = &str> {
        self.rules.category_names()
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.rules.label(name)
    }
}

/// The model's categories: those at 0.5 or more, else the likeliest.
fn model_categories(p: &[f32; 6]) -> Vec<String> {
    let mut v: Vec<String> = CATEGORIES
        .iter()
        .zip(p)
        .filter(|(_, p)| **p >= 0.5)
        .map(|(c, _)| c.to_string())
        .collect();
    if v.is_empty() {
        let best = p
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        v.push(CATEGORIES[best].to_string());
    }
    v
}
