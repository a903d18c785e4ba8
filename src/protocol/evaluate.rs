//! Measuring the protocol check across writers: every writer of the corpus
//! is held out in turn and scored by a model trained on all the others;
//! held-out sets (never trained on, never printed message by message) are
//! scored by the model trained on the whole corpus. The rules alone are
//! measured beside it on the same messages.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::model::{self, Example, Params, Prepared};
use super::{Classification, Judge, RuleSet};

/// Counts of one binary decision.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Counts {
    pub tp: u32,
    pub fp: u32,
    pub fn_: u32,
    pub tn: u32,
}

impl Counts {
    pub fn add(&mut self, truth: bool, said: bool) {
        match (truth, said) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }
    pub fn n(&self) -> u32 {
        self.tp + self.fp + self.fn_ + self.tn
    }
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.n())
    }
}

fn ratio(a: u32, b: u32) -> f64 {
    if b == 0 {
        1.0
    } else {
        f64::from(a) / f64::from(b)
    }
}

/// The scores of one set of messages.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Score {
    pub n: u32,
    /// The model's decision (score >= 0.5), the band of doubt included.
    pub alert: Counts,
    pub called: Counts,
    /// Messages in the band of doubt.
    pub uncertain: u32,
    /// Non-alerts forwarded: decided alert and not in the band.
    pub chitchat_forwarded: u32,
    pub non_alerts: u32,
    /// The rules alone, on the same messages.
    pub rules_alert: Counts,
    pub rules_called: Counts,
}

impl Score {
    pub fn add(&mut self, e: &Example, c: &Classification, rules: &Classification) {
        self.n += 1;
        self.alert.add(e.alert, c.alert);
        self.called.add(e.called, c.confirmed);
        self.rules_alert.add(e.alert, rules.alert);
        self.rules_called.add(e.called, rules.confirmed);
        if c.uncertain {
            self.uncertain += 1;
        }
        if !e.alert {
            self.non_alerts += 1;
            if c.alert && !c.uncertain {
                self.chitchat_forwarded += 1;
            }
        }
    }

    pub fn grey_share(&self) -> f64 {
        ratio(self.uncertain, self.n)
    }

    pub fn chitchat_share(&self) -> f64 {
        if self.non_alerts == 0 {
            0.0
        } else {
            f64::from(self.chitchat_forwarded) / f64::from(self.non_alerts)
        }
    }

    /// One row of [`TABLE_HEAD`].
    pub fn row(&self, name: &str) -> String {
        format!(
            "| {name} | {} | {:.3} | {:.3} | **{:.3}** | **{:.3}** | {:.1}% | {:.1}% | {:.3} | {:.3} |",
            self.n,
            self.alert.precision(),
            self.alert.recall(),
            self.alert.f1(),
            self.called.accuracy(),
            100.0 * self.grey_share(),
            100.0 * self.chitchat_share(),
            self.rules_alert.f1(),
            self.rules_called.accuracy(),
        )
    }
}

pub const TABLE_HEAD: &str = "| set | n | alert P | alert R | alert F1 | called acc | grey | chit-chat fwd | rules F1 | rules called |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

/// The whole evaluation.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Each writer held out in turn (trained on the others).
    pub writers: BTreeMap<String, Score>,
    /// The held-out writers' predictions, by language.
    pub languages: BTreeMap<String, Score>,
    /// All of them together.
    pub all: Score,
    /// Held-out sets, scored by the model trained on the whole corpus.
    pub held_out: BTreeMap<String, Score>,
    /// The corpus messages each held-out writer's model got wrong (never
    /// those of a held-out set): for whoever improves the model.
    #[serde(skip)]
    pub misses: Vec<String>,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Each writer held out in turn (trained on all the others):\n\n{TABLE_HEAD}"
        );
        for (w, sc) in &self.writers {
            let _ = writeln!(s, "{}", sc.row(w));
        }
        let _ = writeln!(s, "{}", self.all.row("all writers"));
        let _ = writeln!(s, "\nThe same predictions by language:\n\n{TABLE_HEAD}");
        for (l, sc) in &self.languages {
            let _ = writeln!(s, "{}", sc.row(l));
        }
        if !self.held_out.is_empty() {
            let _ = writeln!(
                s,
                "\nHeld-out sets (trained on the whole corpus; never trained on):\n\n{TABLE_HEAD}"
            );
            for (name, sc) in &self.held_out {
                let _ = writeln!(s, "{}", sc.row(name));
            }
        }
        s
    }
}

/// The rules the corpus is measured and trained with: built-in, 101/112.
pub fn builtin_rules() -> Result<RuleSet, String> {
    RuleSet::compile(true, None, &["101".into(), "112".into()])
        .map_err(|e| e.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; "))
}

/// Leave-one-writer-out over `corpus`, then the held-out sets against a
/// model trained on the whole corpus. `band` is the band of doubt.
pub fn evaluate(
    corpus: Vec<Example>,
    held_out: Vec<(String, Vec<Example>)>,
    params: Params,
    band: (f32, f32),
    mut progress: impl FnMut(&str),
) -> Result<Report, String> {
    let rules = builtin_rules()?;
    let data = model::prepare(corpus, &rules);
    let mut writers: Vec<String> = data.iter().map(|p| p.example.writer.clone()).collect();
    writers.sort();
    writers.dedup();
    let mut report = Report::default();
    let rules_only = Judge::rules_only(builtin_rules()?);
    for w in &writers {
        progress(w);
        let train: Vec<&Prepared> = data.iter().filter(|p| &p.example.writer != w).collect();
        let m = model::train(
            &train,
            Params {
                categories: false,
                ..params
            },
            String::new(),
        );
        let judge = Judge::new(builtin_rules()?, Some(std::sync::Arc::new(m)), band);
        for p in data.iter().filter(|p| &p.example.writer == w) {
            let c = judge.classify(&p.example.text);
            let r = rules_only.classify(&p.example.text);
            if c.alert != p.example.alert || c.confirmed != p.example.called {
                report.misses.push(format!(
                    "{w}: alert {}->{} ({:.2}{}) called {}->{}: {}",
                    p.example.alert,
                    c.alert,
                    c.score,
                    if c.uncertain { ", asked" } else { "" },
                    p.example.called,
                    c.confirmed,
                    p.example.text.replace('\n', " / ")
                ));
            }
            report
                .writers
                .entry(w.clone())
                .or_default()
                .add(&p.example, &c, &r);
            report
                .languages
                .entry(p.example.lang.clone())
                .or_default()
                .add(&p.example, &c, &r);
            report.all.add(&p.example, &c, &r);
        }
    }
    if !held_out.is_empty() {
        progress("the whole corpus, for the held-out sets");
        let all: Vec<&Prepared> = data.iter().collect();
        let m = model::train(&all, params, String::new());
        let judge = Judge::new(builtin_rules()?, Some(std::sync::Arc::new(m)), band);
        for (name, set) in held_out {
            let sc = report.held_out.entry(name).or_default();
            for e in &set {
                let c = judge.classify(&e.text);
                let r = rules_only.classify(&e.text);
                sc.add(e, &c, &r);
            }
        }
    }
    Ok(report)
}
