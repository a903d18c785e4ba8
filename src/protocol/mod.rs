//! The protocol check: is a message an alert, of which categories, and does
//! it say that the police were called?
//!
//! Pure functions over normalised text (see [`normalize`]) and rule sets
//! compiled once per config load. The rules are data: the built-in Flemish,
//! French and English set lives in `config/protocol/builtin.toml`, and a
//! network's `[protocol]` section extends or replaces it.
//!
//! How "police called" is decided, sentence by sentence:
//! 1. a sentence that is a question (`question` patterns, per clause; a `?`
//!    belongs to the clause it closes) confirms nothing;
//! 2. a negation or doubt (`not_called`) cancels the confirmations of its
//!    sentence, except those after a later "maar/mais/but" (`niet gebeld,
//!    maar mijn vrouw hing al aan de lijn met 101`);
//! 3. otherwise one `called` match in a clause confirms.
//!
//! Imperatives ("bel 101!") and intentions ("ik ga 101 bellen") never match
//! `called`, whose verbs are past participles or states ("ter plaatse").

pub mod corpus;
pub mod evaluate;
pub mod judge;
pub mod model;
mod normalize;

use std::collections::BTreeMap;
use std::ops::Range;

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Serialize;
use toml::Spanned;

pub use judge::{Judge, ModelChoice};
pub use normalize::{normalize, sentences};

use crate::config::raw::{RawCategory, RawProtocol};

const BUILTIN_RULES: &str = include_str!("../../config/protocol/builtin.toml");

/// The user's `[protocol]` section, handed over by the config loader.
pub struct RuleSource<'a> {
    pub raw: &'a RawProtocol,
}

/// The result of the protocol check for one message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Classification {
    /// A member's report that the network should know about.
    pub alert: bool,
    /// Category names, in rule order.
    pub categories: Vec<String>,
    /// The text says that the police (or 101/112) were already called.
    pub confirmed: bool,
    /// Police advice or a bulletin, not a live report (never reminded).
    pub advisory: bool,
    /// The alert score, 0 to 1 (calibrated; the rules alone give 0 or 1).
    pub score: f32,
    /// In the band of doubt: a person is asked instead of a guess.
    pub uncertain: bool,
    /// An alert that describes a person only by looks or origin, with no
    /// behaviour: the member is asked what the person did.
    pub looks_only: bool,
}

/// The rules' view of a text, every part of it (see [`RuleSet::cues`]).
#[derive(Clone, Debug, Default)]
pub struct RuleCues {
    pub alert: bool,
    pub categories: Vec<String>,
    pub advisory: bool,
    pub confirmed: bool,
    /// A `called` pattern matches somewhere, whatever the sentence says.
    pub called_words: bool,
    /// A `not_called` pattern (negation, doubt) matches somewhere.
    pub negation: bool,
    /// The text without what says the police were called (see
    /// [`RuleSet::without_called`]).
    pub plain: Option<String>,
}

struct Category {
    name: String,
    label: String,
    any: RegexSet,
    unless: RegexSet,
    /// The network's own patterns of this category (they force an alert).
    user_any: Option<RegexSet>,
}

/// Compiled rule sets. Built once per config load; cheap to share.
pub struct RuleSet {
    categories: Vec<Category>,
    /// The `called` patterns without `^`/`$`/`\A`/`\z`: a clause they would
    /// match is matched by these anywhere in the whole text (see
    /// [`without_anchors`]), so when these find nothing no clause confirms.
    /// `None` if a pattern could not be relaxed safely.
    called_anywhere: Option<RegexSet>,
    /// The same patterns as one regex, to find where a text says the police
    /// were called (the learned alert decision does not look there).
    called_spans: Option<Regex>,
    not_an_alert: RegexSet,
    /// The network's own `not_an_alert` patterns (they forbid an alert).
    user_not_an_alert: Option<RegexSet>,
    called: RegexSet,
    not_called: RegexSet,
    question: RegexSet,
    called_followup: RegexSet,
    all_clear: RegexSet,
    not_all_clear: RegexSet,
    not_a_followup: RegexSet,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field(
                "categories",
                &self.categories.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// One pattern with where it came from, for error messages.
struct Pat {
    src: String,
    span: Option<Range<usize>>,
    origin: &'static str,
}

#[derive(Default)]
struct Lists {
    macros: BTreeMap<String, String>,
    categories: Vec<(String, String, Vec<Pat>, Vec<Pat>)>,
    not_an_alert: Vec<Pat>,
    called: Vec<Pat>,
    not_called: Vec<Pat>,
    question: Vec<Pat>,
    called_followup: Vec<Pat>,
    all_clear: Vec<Pat>,
    not_all_clear: Vec<Pat>,
    not_a_followup: Vec<Pat>,
}

fn pats(v: &[Spanned<String>], user: bool) -> Vec<Pat> {
    v.iter()
        .map(|s| Pat {
            src: s.get_ref().clone(),
            span: user.then(|| s.span()),
            origin: if user { "protocol" } else { "built-in rules" },
        })
        .collect()
}

impl Lists {
    fn add(&mut self, raw: &RawProtocol, user: bool) {
        for (k, v) in &raw.macros {
            self.macros.insert(k.clone(), v.get_ref().clone());
        }
        for RawCategory {
            name,
            label,
            patterns,
            unless,
        } in &raw.categories
        {
            let n = name.get_ref().clone();
            if let Some(existing) = self.categories.iter_mut().find(|c| c.0 == n) {
                if let Some(l) = label {
                    existing.1 = l.clone();
                }
                existing.2.extend(pats(patterns, user));
                existing.3.extend(pats(unless, user));
            } else {
                let label = label.clone().unwrap_or_else(|| n.replace('_', " "));
                self.categories
                    .push((n, label, pats(patterns, user), pats(unless, user)));
            }
        }
        self.not_an_alert.extend(pats(&raw.not_an_alert, user));
        self.called.extend(pats(&raw.police.called, user));
        self.not_called.extend(pats(&raw.police.not_called, user));
        self.question.extend(pats(&raw.police.question, user));
        self.called_followup
            .extend(pats(&raw.police.called_followup, user));
        self.all_clear.extend(pats(&raw.all_clear, user));
        self.not_all_clear.extend(pats(&raw.not_all_clear, user));
        self.not_a_followup.extend(pats(&raw.not_a_followup, user));
    }
}

type Errors = Vec<(Range<usize>, String)>;

/// Replaces `{name}` with the macro's text, for every defined macro name.
fn expand(src: &str, macros: &BTreeMap<String, String>) -> String {
    let mut out = src.to_string();
    // Macros may use other macros; three rounds are plenty and stop cycles.
    for _ in 0..3 {
        let before = out.clone();
        for (k, v) in macros {
            out = out.replace(&format!("{{{k}}}"), &format!("(?:{v})"));
        }
        if out == before {
            break;
        }
    }
    out
}

/// Rules run over normalised text, which is ASCII but for letters of other
/// scripts, so they are compiled as byte regexes without Unicode classes:
/// `\b`, `\w` and `.` are ASCII-simple and the lazy DFA handles every
/// pattern (Unicode word boundaries pushed the sets onto the slow engines:
/// ~35x slower). Patterns are written in ASCII; see builtin.toml.
fn compile_one(src: &str) -> Result<(), regex::Error> {
    RegexBuilder::new(src).unicode(false).build().map(|_| ())
}

fn set(list: &[Pat], what: &str, macros: &BTreeMap<String, String>, errs: &mut Errors) -> RegexSet {
    let ok = compiled(list, what, macros, errs);
    build_set(&ok, what, errs)
}

/// The expanded patterns of `list` that compile on their own; the others
/// are reported in `errs`.
fn compiled(
    list: &[Pat],
    what: &str,
    macros: &BTreeMap<String, String>,
    errs: &mut Errors,
) -> Vec<String> {
    let mut ok = Vec::new();
    for p in list {
        let expanded = expand(&p.src, macros);
        match compile_one(&expanded) {
            Ok(()) => ok.push(expanded),
            Err(e) => {
                let reason = e.to_string();
                let reason = reason
                    .lines()
                    .last()
                    .unwrap_or("invalid")
                    .trim()
                    .to_string();
                errs.push((
                    p.span.clone().unwrap_or(0..0),
                    format!("{}: bad regex in {what}: `{}`: {reason}", p.origin, p.src),
                ));
            }
        }
    }
    ok
}

/// The network's own patterns of `list` (errors are reported by the full
/// set), or `None` when it has none.
fn user_set(list: &[Pat], macros: &BTreeMap<String, String>) -> Option<RegexSet> {
    let own: Vec<String> = list
        .iter()
        .filter(|p| p.span.is_some())
        .map(|p| expand(&p.src, macros))
        .filter(|e| compile_one(e).is_ok())
        .collect();
    if own.is_empty() {
        None
    } else {
        compile_set(&own).ok()
    }
}

/// Patterns compiled the way every rule set is (see [`compile_one`]).
///
/// The lazy DFA's cache is 8 MB per set instead of the regex crate's 2 MB:
/// on the corpus's 3,644 messages of 15 writers (diverse text, unlike a few
/// sentences repeated) the default cache was cleared over and over and the
/// rules ran at about 2,300 messages/s; with 8 MB about 50,000/s (16 MB
/// 65,000/s, 32 MB 44,000/s: no better), with the process's peak RSS
/// unchanged (65 MB in that benchmark, all of it elsewhere).
fn compile_set(patterns: &[String]) -> Result<RegexSet, regex::Error> {
    RegexSetBuilder::new(patterns)
        .unicode(false)
        .size_limit(64 << 20)
        .dfa_size_limit(8 << 20)
        .build()
}

fn build_set(ok: &[String], what: &str, errs: &mut Errors) -> RegexSet {
    match compile_set(ok) {
        Ok(set) => set,
        Err(e) => {
            errs.push((
                0..0,
                format!("protocol: the {what} patterns together are too large: {e}"),
            ));
            RegexSet::empty()
        }
    }
}

impl RuleSet {
    /// Compiles the built-in rules (if `builtin`) plus the user's section.
    pub fn compile(
        builtin: bool,
        user: Option<RuleSource<'_>>,
        emergency_numbers: &[String],
    ) -> Result<RuleSet, Errors> {
        let mut lists = Lists::default();
        let mut errs = Errors::new();
        if builtin {
            match toml::from_str::<RawProtocol>(BUILTIN_RULES) {
                Ok(raw) => lists.add(&raw, false),
                Err(e) => errs.push((0..0, format!("built-in rules are invalid: {e}"))),
            }
        }
        if let Some(u) = &user {
            lists.add(u.raw, true);
        }
        let numbers = emergency_numbers
            .iter()
            .map(|n| regex::escape(n))
            .collect::<Vec<_>>()
            .join("|");
        lists
            .macros
            .insert("numbers".into(), format!(r"\b(?:{numbers})\b"));
        if lists.categories.is_empty() {
            errs.push((
                0..0,
                "protocol: no alert categories (builtin = false needs [[protocol.categories]])"
                    .into(),
            ));
        }
        if lists.called.is_empty() {
            errs.push((
                0..0,
                "protocol: no police.called patterns (builtin = false needs them)".into(),
            ));
        }
        let m = lists.macros.clone();
        let categories = lists
            .categories
            .iter()
            .map(|(name, label, any, unless)| {
                if any.is_empty() {
                    errs.push((0..0, format!("protocol: category `{name}` has no patterns")));
                }
                Category {
                    name: name.clone(),
                    label: label.clone(),
                    any: set(any, &format!("category `{name}` patterns"), &m, &mut errs),
                    unless: set(unless, &format!("category `{name}` unless"), &m, &mut errs),
                    user_any: user_set(any, &m),
                }
            })
            .collect();
        // Built in the order the errors have always been reported in.
        let not_an_alert = set(&lists.not_an_alert, "not_an_alert", &m, &mut errs);
        let called = compiled(&lists.called, "police.called", &m, &mut errs);
        let relaxed = called
            .iter()
            .map(|p| without_anchors(p))
            .collect::<Option<Vec<_>>>();
        let called_anywhere = relaxed.as_ref().and_then(|r| compile_set(r).ok());
        let called_spans = relaxed.as_ref().and_then(|r| {
            let joined = r
                .iter()
                .map(|p| format!("(?:{p})"))
                .collect::<Vec<_>>()
                .join("|");
            RegexBuilder::new(&joined)
                .unicode(false)
                .size_limit(64 << 20)
                .dfa_size_limit(8 << 20)
                .build()
                .ok()
        });
        let rules = RuleSet {
            categories,
            called_anywhere,
            called_spans,
            user_not_an_alert: user_set(&lists.not_an_alert, &m),
            not_an_alert,
            called: build_set(&called, "police.called", &mut errs),
            not_called: set(&lists.not_called, "police.not_called", &m, &mut errs),
            question: set(&lists.question, "police.question", &m, &mut errs),
            called_followup: set(
                &lists.called_followup,
                "police.called_followup",
                &m,
                &mut errs,
            ),
            all_clear: set(&lists.all_clear, "all_clear", &m, &mut errs),
            not_all_clear: set(&lists.not_all_clear, "not_all_clear", &m, &mut errs),
            not_a_followup: set(&lists.not_a_followup, "not_a_followup", &m, &mut errs),
        };
        if errs.is_empty() {
            Ok(rules)
        } else {
            Err(errs)
        }
    }

    /// The category names a rule set will have, known even when one of its
    /// patterns does not compile (so routes can still be checked).
    pub fn declared_categories(builtin: bool, user: Option<&RawProtocol>) -> Vec<String> {
        let mut lists = Lists::default();
        if builtin {
            if let Ok(raw) = toml::from_str::<RawProtocol>(BUILTIN_RULES) {
                lists.add(&raw, false);
            }
        }
        if let Some(u) = user {
            lists.add(u, true);
        }
        lists.categories.into_iter().map(|c| c.0).collect()
    }

    pub fn category_names(&self) -> impl Iterator<Item = &str> {
        self.categories.iter().map(|c| c.name.as_str())
    }

    /// The human label of a category (for texts and the dashboard).
    pub fn label(&self, name: &str) -> Option<&str> {
        self.categories
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.label.as_str())
    }

    /// Classifies one message.
    pub fn classify(&self, text: &str) -> Classification {
        let n = normalize(text);
        // Advice or a bulletin is neither an alert nor a confirmation, so
        // nothing else needs to be looked at.
        if self.not_an_alert.is_match(n.as_bytes()) {
            return Classification {
                alert: false,
                categories: Vec::new(),
                confirmed: false,
                advisory: true,
                score: 0.0,
                uncertain: false,
                looks_only: false,
            };
        }
        let categories = self.categories_of(&n);
        Classification {
            alert: !categories.is_empty(),
            score: if categories.is_empty() { 0.0 } else { 1.0 },
            categories,
            confirmed: self.confirms_whole(&n),
            advisory: false,
            uncertain: false,
            looks_only: false,
        }
    }

    /// What the rules say about normalised text, as the model's cues: every
    /// part is computed (no early stop at advice).
    pub fn cues(&self, n: &str) -> RuleCues {
        let hay = n.as_bytes();
        let categories = self.categories_of(n);
        RuleCues {
            alert: !categories.is_empty(),
            categories,
            advisory: self.not_an_alert.is_match(hay),
            confirmed: self.confirms_whole(n),
            called_words: self
                .called_anywhere
                .as_ref()
                .map_or_else(|| self.called.is_match(hay), |a| a.is_match(hay)),
            negation: self.not_called.is_match(hay),
            plain: self.without_called(n),
        }
    }

    /// Normalised text with what says the police were called blanked out
    /// ("101 gebeld", "la police est sur place"), or `None` when it says
    /// nothing of the kind: what the learned alert decision reads, so that
    /// a bare "101 gebeld" is no alert and an alert that forgets to say it
    /// is not scored lower.
    pub fn without_called(&self, n: &str) -> Option<String> {
        let anywhere = self.called_anywhere.as_ref()?;
        if !anywhere.is_match(n.as_bytes()) {
            return None;
        }
        let re = self.called_spans.as_ref()?;
        let out = re.replace_all(n.as_bytes(), &b" "[..]);
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    /// The categories that the network's own patterns name for normalised
    /// text (an admin's pattern forces an alert, unless vetoed), and whether
    /// its own `not_an_alert` patterns forbid one.
    pub fn user_decision(&self, n: &str) -> (Vec<String>, bool) {
        let hay = n.as_bytes();
        let forced = self
            .categories
            .iter()
            .filter(|c| {
                c.user_any.as_ref().is_some_and(|s| s.is_match(hay)) && !c.unless.is_match(hay)
            })
            .map(|c| c.name.clone())
            .collect();
        let forbidden = self
            .user_not_an_alert
            .as_ref()
            .is_some_and(|s| s.is_match(hay));
        (forced, forbidden)
    }

    /// The names of the categories whose patterns match normalised text and
    /// whose `unless` patterns do not, in rule order.
    fn categories_of(&self, n: &str) -> Vec<String> {
        let hay = n.as_bytes();
        self.categories
            .iter()
            .filter(|c| c.any.is_match(hay) && !c.unless.is_match(hay))
            .map(|c| c.name.clone())
            .collect()
    }

    /// [`Self::confirms`] for the whole output of [`normalize`], skipping
    /// the sentence by sentence work when no `called` pattern can match.
    fn confirms_whole(&self, n: &str) -> bool {
        if let Some(anywhere) = &self.called_anywhere {
            if !anywhere.is_match(n.as_bytes()) {
                return false;
            }
        }
        self.confirms(n)
    }

    /// Does a follow-up of the sender to their own alert say the police were
    /// called? Everything [`Self::confirms`] accepts, and the short answers
    /// of `police.called_followup` ("ja, gebeld"), which mean it only there.
    pub fn confirms_followup(&self, text: &str) -> bool {
        let n = normalize(text);
        self.confirms_whole(&n)
            || sentences(&n).into_iter().any(|s| {
                !self.not_called.is_match(s.as_bytes())
                    && self.called_followup.is_match(s.as_bytes())
            })
    }

    /// Does a reply say the alert is over (false alarm, harmless, all
    /// clear)? Decided per sentence: a question ("alles ok?") is not an
    /// all-clear, nor is a negated one ("geen vals alarm").
    pub fn is_all_clear(&self, text: &str) -> bool {
        let n = normalize(text);
        sentences(&n).into_iter().any(|s| {
            !s.ends_with('?')
                && self.all_clear.is_match(s.as_bytes())
                && !self.not_all_clear.is_match(s.as_bytes())
        })
    }

    /// Is a reply worth relaying to every group? Not a thank-you, a thumbs
    /// up or a one-word question, and not empty once emoji are gone.
    pub fn worth_relaying(&self, text: &str) -> bool {
        let n = normalize(text);
        let n = n.trim();
        n.chars().any(char::is_alphanumeric) && !self.not_a_followup.is_match(n.as_bytes())
    }

    /// Does normalised text say the police were called? (see module docs)
    pub fn confirms(&self, normalized: &str) -> bool {
        sentences(normalized).into_iter().any(|s| {
            let mut clauses = s.split(',');
            let opener = clauses.next().unwrap_or_default().trim();
            let opener_is_question =
                clauses.next().is_some() && self.question.is_match(opener.as_bytes());
            // A clause is a question on its own (`101 gebeld?`), and a sentence
            // that opens with a question (`heeft iemand, toevallig, 101 gebeld?`)
            // confirms nothing.
            if opener_is_question {
                return false;
            }
            // A negation cancels the confirmations before it in its sentence
            // (`gebeld maar bezet`), but not one after "maar/mais/but"
            // (`pas pu joindre le 101 mais c est fait, la police arrive`).
            let starts = but_parts(s);
            starts.iter().enumerate().any(|(i, &start)| {
                let end = starts.get(i + 1).copied().unwrap_or(s.len());
                !self.not_called.is_match(&s.as_bytes()[start..])
                    && s[start..end].split(',').map(str::trim).any(|c| {
                        !self.question.is_match(c.as_bytes()) && self.called.is_match(c.as_bytes())
                    })
            })
        })
    }
}

/// `pattern` with its anchors (`^`, `$`, `\A`, `\z` outside classes)
/// removed, which only widens what it matches. A clause of the output of
/// [`normalize`] sits between characters that are not word characters
/// (spaces, `,`, end marks, line ends), so the relaxed pattern finds
/// anything the original finds in a clause also in the whole text: only
/// anchors tell a clause's edges from the text's. `None` when the pattern
/// uses the `x` flag (comments could hide brackets) or ends in a bare `\`.
fn without_anchors(pattern: &str) -> Option<String> {
    if pattern.match_indices("(?").any(|(i, _)| {
        pattern[i + 2..]
            .chars()
            .take_while(|c| !matches!(c, ':' | ')'))
            .any(|c| c == 'x')
    }) {
        return None;
    }
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    // How deep inside `[...]` classes (they nest) we are.
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let e = chars.next()?;
                if depth == 0 && matches!(e, 'A' | 'z') {
                    continue;
                }
                out.push(c);
                out.push(e);
                // `\p{^Greek}`, `\x{..}`, `\b{start}`: copied as they are.
                if chars.peek() == Some(&'{') && e.is_ascii_alphabetic() {
                    for b in chars.by_ref() {
                        out.push(b);
                        if b == '}' {
                            break;
                        }
                    }
                }
            }
            '[' => {
                depth += 1;
                out.push(c);
                // A negation and a leading `]` belong to the class.
                if let Some(n) = chars.next_if_eq(&'^') {
                    out.push(n);
                }
                if let Some(n) = chars.next_if_eq(&']') {
                    out.push(n);
                }
            }
            ']' if depth > 0 => {
                depth -= 1;
                out.push(c);
            }
            '^' | '$' if depth == 0 => {}
            _ => out.push(c),
        }
    }
    Some(out)
}

/// Where the parts of a sentence start: at its beginning and at each
/// "maar", "mais" or "but" that joins two clauses.
fn but_parts(sentence: &str) -> Vec<usize> {
    let b = sentence.as_bytes();
    let mut starts = vec![0];
    for i in 0..b.len() {
        if b[i] == b' '
            && [&b"maar "[..], b"mais ", b"but "]
                .iter()
                .any(|w| b[i + 1..].starts_with(w))
        {
            starts.push(i + 1);
        }
    }
    starts
}

#[cfg(test)]
mod tests;
