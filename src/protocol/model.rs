//! The learned half of the protocol check: a linear model over word and
//! character n-grams of the normalised text, plus a few cues that the rules
//! and the raw text give (a rule's category hit, "police called" as the
//! rules read it with their negation, question and tense logic, a question
//! mark, a joke's emoji, "last year").
//!
//! - **Features.** Word 1- and 2-grams and character 3- to 5-grams inside
//!   word boundaries, hashed (FNV-1a, folded to 32 bits), kept when at least
//!   two training messages have them; weighted by sublinear tf-idf and
//!   L2-normalised per block (words, characters); the cues are 0/1.
//! - **Heads.** One logistic regression per output: `alert`, `called`, and
//!   one per category (trained on alerts only). Each is fitted by L-BFGS on
//!   the full batch, with no randomness: the same data gives the same
//!   bytes.
//! - **Calibration.** The `alert` and `called` scores are calibrated by
//!   Platt scaling on out-of-fold scores, the folds grouped by writer, so a
//!   score of 0.7 means about 7 in 10 such messages are alerts for a writer
//!   the model has not seen.
//! - **File.** `BRMODEL1`, a JSON header (what it was trained on), then the
//!   feature hashes, idf and the heads' weights (16-bit, one scale per head),
//!   all little-endian. See [`Model::to_bytes`].

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{RuleCues, RuleSet, normalize};

/// The six built-in categories, in the order the cues and heads use.
pub const CATEGORIES: [&str; 6] = [
    "suspicious_person",
    "suspicious_vehicle",
    "burglary_theft",
    "doorstep_scam",
    "fire_violence",
    "missing_person",
];

/// The cues, by name (for `why` and the file's header).
pub const CUES: [&str; 16] = [
    "rules:alert",
    "rules:suspicious_person",
    "rules:suspicious_vehicle",
    "rules:burglary_theft",
    "rules:doorstep_scam",
    "rules:fire_violence",
    "rules:missing_person",
    "rules:advice",
    "rules:police_called",
    "rules:called_words",
    "rules:negation",
    "question_mark",
    "joke",
    "past",
    "reserved",
    "emergency_number",
];
const N_CUES: usize = CUES.len();

const MAGIC: &[u8; 8] = b"BRMODEL1";

/// alert, called, the categories, looks_only.
const N_HEADS: usize = 3 + CATEGORIES.len();

/// A labelled message of the corpus (see docs/protocol/labelling-guide.md).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Example {
    #[serde(default)]
    pub writer: String,
    pub text: String,
    pub lang: String,
    pub alert: bool,
    pub called: bool,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub looks_only: bool,
}

/// Identity-like hashing for keys that are hashes already.
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Index = HashMap<u32, u32, BuildHasherDefault<Mix>>;

fn fnv(tag: u8, parts: &[&[u8]]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(tag);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            eat(b' ');
        }
        for &b in *p {
            eat(b);
        }
    }
    (h ^ (h >> 32)) as u32
}

/// Hashed n-grams with their counts, sorted by hash.
type Grams = Vec<(u32, f32)>;

/// The raw features of one text: hashed n-gram counts and the cues.
#[derive(Clone, Debug, Default)]
pub struct Raw {
    words: Vec<(u32, f32)>,
    chars: Vec<(u32, f32)>,
    /// The n-grams of the text without what says the police were called,
    /// when it says so (the alert, category and looks heads read these).
    plain: Option<Box<(Grams, Grams)>>,
    cues: [f32; N_CUES],
}

static JOKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[😂🤣😅😆😜😉🙈😝😁]|\b(?:ha(?:ha)+h?|hihi+|lol+|mdr+|ptdr|xd+|lmao|rofl|grapje|blague|just kidding|jk)\b")
        .unwrap_or_else(|_| Regex::new("$^").expect("empty regex"))
});

static PAST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:vorig(?:e)? (?:jaar|maand|zomer|winter)|verleden (?:jaar|maand)|(?:jaren|maanden|jaar) geleden|lang geleden|l an (?:dernier|passe)|l annee (?:derniere|passee)|il y a (?:\w+ )?(?:ans|mois)|last (?:year|summer|winter)|years ago|months ago|(?:in|en|sinds|depuis|back in) (?:19|20)\d\d)\b")
        .unwrap_or_else(|_| Regex::new("$^").expect("empty regex"))
});

static EMERGENCY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:101|112|17|911|999|0900 ?8844)\b")
        .unwrap_or_else(|_| Regex::new("$^").expect("empty regex"))
});

/// The word tokens of normalised text: alphanumeric runs; long numbers
/// (plates, house numbers, times) fold to their shape.
fn tokens(n: &str) -> impl Iterator<Item = &str> {
    n.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| {
            if t.len() >= 4 && t.bytes().all(|b| b.is_ascii_digit()) && t != "0900" {
                "#n"
            } else {
                t
            }
        })
}

/// Extracts the raw features of `text`, with the rules as cues.
pub fn extract(text: &str, rules: &RuleSet) -> Raw {
    let n = normalize(text);
    extract_normalized(text, &n, rules)
}

fn extract_normalized(text: &str, n: &str, rules: &RuleSet) -> Raw {
    extract_with(text, n, &rules.cues(n))
}

fn extract_with(text: &str, n: &str, r: &RuleCues) -> Raw {
    let (words, chars) = grams(n);
    let mut raw = Raw {
        words,
        chars,
        plain: r.plain.as_deref().map(|p| Box::new(grams(p))),
        ..Raw::default()
    };
    let c = &mut raw.cues;
    c[0] = f(r.alert);
    for (i, name) in CATEGORIES.iter().enumerate() {
        c[1 + i] = f(r.categories.iter().any(|x| x == name));
    }
    c[7] = f(r.advisory);
    c[8] = f(r.confirmed);
    c[9] = f(r.called_words);
    c[10] = f(r.negation);
    c[11] = f(n.contains('?'));
    c[12] = f(JOKE.is_match(text));
    c[13] = f(PAST.is_match(n));
    // Reserved: a "short message" cue (fewer than six words) made short
    // live reports such as "Inbraak bezig in de Molenstraat!" chit-chat.
    c[14] = 0.0;
    c[15] = f(EMERGENCY.is_match(n));
    raw
}

/// Word 1- and 2-grams and character 3- to 5-grams of normalised text.
fn grams(n: &str) -> (Grams, Grams) {
    let mut words: Vec<u32> = Vec::with_capacity(64);
    let mut chars: Vec<u32> = Vec::with_capacity(512);
    let mut prev: Option<&str> = None;
    let mut bounds: Vec<usize> = Vec::with_capacity(64);
    let mut padded = String::with_capacity(64);
    for t in tokens(n) {
        words.push(fnv(b'w', &[t.as_bytes()]));
        if let Some(p) = prev {
            words.push(fnv(b'b', &[p.as_bytes(), t.as_bytes()]));
        }
        prev = Some(t);
        // Character n-grams of " t " (at most 30 bytes of a token).
        padded.clear();
        padded.push(' ');
        for (i, c) in t.char_indices() {
            if i >= 30 {
                break;
            }
            padded.push(c);
        }
        padded.push(' ');
        bounds.clear();
        bounds.extend(padded.char_indices().map(|(i, _)| i));
        bounds.push(padded.len());
        let pb = padded.as_bytes();
        for len in 3..=5 {
            for s in 0..bounds.len().saturating_sub(len) {
                chars.push(fnv(b'c', &[&pb[bounds[s]..bounds[s + len]]]));
            }
        }
    }
    (counts(&mut words), counts(&mut chars))
}

fn f(b: bool) -> f32 {
    if b { 1.0 } else { 0.0 }
}

fn counts(v: &mut [u32]) -> Vec<(u32, f32)> {
    v.sort_unstable();
    let mut out: Vec<(u32, f32)> = Vec::with_capacity(v.len());
    for &h in v.iter() {
        match out.last_mut() {
            Some((k, c)) if *k == h => *c += 1.0,
            _ => out.push((h, 1.0)),
        }
    }
    out
}

/// The scores of one message.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    /// Calibrated probability that it is an alert.
    pub alert: f32,
    /// Calibrated probability that it says the police were called.
    pub called: f32,
    /// Per category (in [`CATEGORIES`] order), uncalibrated probability.
    pub categories: [f32; 6],
    /// Probability that an alert describes a person only by looks or
    /// origin, with no behaviour (uncalibrated).
    pub looks_only: f32,
}

/// What a trained model file says about itself.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Header {
    pub format: u32,
    /// Messages trained on, by writer.
    pub writers: BTreeMap<String, usize>,
    /// Messages trained on, by language.
    pub languages: BTreeMap<String, usize>,
    /// SHA-256 of the training data as read (sorted by writer, then line).
    pub data_sha256: String,
    pub c_alert: f64,
    pub c_called: f64,
    pub min_df: u32,
    /// Platt scaling of the alert logit: p = sigmoid(a * z + b).
    pub platt_alert: (f64, f64),
    pub platt_called: (f64, f64),
    pub cues: Vec<String>,
    pub heads: Vec<String>,
}

/// A trained model, ready to score.
pub struct Model {
    pub header: Header,
    hashes: Vec<u32>,
    index: Index,
    idf: Vec<f32>,
    /// The heads' weights interleaved, feature by feature (then the cues):
    /// `rows[i * N_HEADS + h]`, so scoring a message touches one cache line
    /// per feature instead of one per feature and head.
    rows: Vec<f32>,
    bias: [f32; N_HEADS],
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("features", &self.hashes.len())
            .field("writers", &self.header.writers.len())
            .finish_non_exhaustive()
    }
}

/// Why a model file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("not a buurtrelay model file (wrong magic)")]
    Magic,
    #[error("the model file is truncated")]
    Truncated,
    #[error("the model file's header is invalid: {0}")]
    Header(String),
    #[error("the model file was made for other cues or heads (format {0})")]
    Format(u32),
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// A sparse, weighted feature vector (indices into the model's features;
/// the cues follow at `n_features + i`).
struct Vector {
    idx: Vec<u32>,
    val: Vec<f32>,
}

/// The weighted vector of the full text (for the called head).
fn weigh(raw: &Raw, index: &Index, idf: &[f32], n_features: usize) -> Vector {
    weigh_blocks(&raw.words, &raw.chars, &raw.cues, index, idf, n_features)
}

/// The weighted vector the alert, category and looks heads read: the text
/// without what says the police were called, and no call cues.
fn weigh_plain(raw: &Raw, index: &Index, idf: &[f32], n_features: usize) -> Vector {
    let v = match &raw.plain {
        Some(p) => weigh_blocks(&p.0, &p.1, &raw.cues, index, idf, n_features),
        None => weigh(raw, index, idf, n_features),
    };
    without_call_cues(&v, n_features)
}

fn weigh_blocks(
    words: &[(u32, f32)],
    chars: &[(u32, f32)],
    cues: &[f32; N_CUES],
    index: &Index,
    idf: &[f32],
    n_features: usize,
) -> Vector {
    let mut v = Vector {
        idx: Vec::with_capacity(words.len() + chars.len() + N_CUES),
        val: Vec::with_capacity(words.len() + chars.len() + N_CUES),
    };
    for block in [words, chars] {
        let start = v.idx.len();
        let mut norm = 0.0f32;
        for &(h, c) in block.iter() {
            if let Some(&i) = index.get(&h) {
                let x = (1.0 + c.ln()) * idf[i as usize];
                norm += x * x;
                v.idx.push(i);
                v.val.push(x);
            }
        }
        if norm > 0.0 {
            let inv = 1.0 / norm.sqrt();
            for x in &mut v.val[start..] {
                *x *= inv;
            }
        }
    }
    for (i, &c) in cues.iter().enumerate() {
        if c != 0.0 {
            v.idx.push((n_features + i) as u32);
            v.val.push(c);
        }
    }
    v
}

/// The cues that say whether the police were called: the called head uses
/// them, the alert and category heads do not, so an alert that forgets to
/// say "101 gebeld" (the very one that needs a reminder) is not scored
/// lower for it.
const CALL_CUES: [usize; 4] = [8, 9, 10, 15];

fn without_call_cues(v: &Vector, n_features: usize) -> Vector {
    let keep = |i: &u32| {
        let i = *i as usize;
        i < n_features || !CALL_CUES.contains(&(i - n_features))
    };
    let mut out = Vector {
        idx: Vec::with_capacity(v.idx.len()),
        val: Vec::with_capacity(v.val.len()),
    };
    for (i, x) in v.idx.iter().zip(&v.val) {
        if keep(i) {
            out.idx.push(*i);
            out.val.push(*x);
        }
    }
    out
}

impl Model {
    /// Scores normalised text (the raw text for the emoji cue).
    pub fn score(&self, text: &str, normalized: &str, rules: &RuleSet) -> Scores {
        self.score_cues(text, normalized, &rules.cues(normalized))
    }

    /// [`Self::score`] with the rules' cues already worked out.
    pub fn score_cues(&self, text: &str, normalized: &str, cues: &RuleCues) -> Scores {
        let raw = extract_with(text, normalized, cues);
        let n_features = self.hashes.len();
        let full = weigh(&raw, &self.index, &self.idf, n_features);
        let v = match &raw.plain {
            Some(_) => weigh_plain(&raw, &self.index, &self.idf, n_features),
            None => without_call_cues(&full, n_features),
        };
        // Every head but `called` reads the plain vector.
        let mut z = [0f64; N_HEADS];
        for (h, b) in self.bias.iter().enumerate() {
            z[h] = f64::from(*b);
        }
        for (i, x) in v.idx.iter().zip(&v.val) {
            let row = &self.rows[*i as usize * N_HEADS..][..N_HEADS];
            for (h, w) in row.iter().enumerate() {
                z[h] += f64::from(w * x);
            }
        }
        let mut zc = f64::from(self.bias[1]);
        for (i, x) in full.idx.iter().zip(&full.val) {
            zc += f64::from(self.rows[*i as usize * N_HEADS + 1] * x);
        }
        let (aa, ab) = self.header.platt_alert;
        let (ca, cb) = self.header.platt_called;
        let mut categories = [0.0f32; 6];
        for (i, c) in categories.iter_mut().enumerate() {
            *c = sigmoid(z[2 + i]) as f32;
        }
        Scores {
            alert: sigmoid(aa * z[0] + ab) as f32,
            called: sigmoid(ca * zc + cb) as f32,
            categories,
            looks_only: sigmoid(z[2 + CATEGORIES.len()]) as f32,
        }
    }

    /// The features that weighed most for the alert score: words and word
    /// pairs of the text and the cues, with their signed contributions
    /// (character n-grams are summed into one line).
    pub fn explain(&self, text: &str, rules: &RuleSet, top: usize) -> Vec<String> {
        let n = normalize(text);
        let cues = rules.cues(&n);
        let raw = extract_with(text, &n, &cues);
        let v = weigh_plain(&raw, &self.index, &self.idf, self.hashes.len());
        let n = cues.plain.unwrap_or(n);
        let contrib: HashMap<u32, f32> = v
            .idx
            .iter()
            .zip(&v.val)
            .map(|(i, x)| (*i, self.rows[*i as usize * N_HEADS] * x))
            .collect();
        let mut named: Vec<(f32, String)> = Vec::new();
        let mut prev: Option<&str> = None;
        let mut seen = std::collections::HashSet::new();
        for t in tokens(&n) {
            let mut add = |h: u32, label: String| {
                if let Some(&i) = self.index.get(&h) {
                    if seen.insert(i) {
                        if let Some(&c) = contrib.get(&i) {
                            named.push((c, label));
                        }
                    }
                }
            };
            add(fnv(b'w', &[t.as_bytes()]), format!("\"{t}\""));
            if let Some(p) = prev {
                add(
                    fnv(b'b', &[p.as_bytes(), t.as_bytes()]),
                    format!("\"{p} {t}\""),
                );
            }
            prev = Some(t);
        }
        let n_features = self.hashes.len();
        for (k, name) in CUES.iter().enumerate() {
            if let Some(&c) = contrib.get(&((n_features + k) as u32)) {
                named.push((c, (*name).to_string()));
            }
        }
        let word_sum: f32 = named.iter().map(|(c, _)| c).sum();
        let cue_and_word: f32 = contrib.values().sum();
        let chars = cue_and_word - word_sum;
        named.push((chars, "letter groups".to_string()));
        named.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
        named
            .into_iter()
            .take(top)
            .map(|(c, l)| format!("{l} {c:+.2}"))
            .collect()
    }

    /// The file: magic, header length (u32) and JSON header, feature count
    /// (u32), hashes (u32 each), idf (f32 each), then per head its scale
    /// (f32), bias (f32) and weights (i16 each, features then cues).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        let header = serde_json::to_vec(&self.header).unwrap_or_default();
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.hashes.len() as u32).to_le_bytes());
        for h in &self.hashes {
            out.extend_from_slice(&h.to_le_bytes());
        }
        for x in &self.idf {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for (h, bias) in self.bias.iter().enumerate() {
            let w = self.rows.iter().skip(h).step_by(N_HEADS);
            let max = w.clone().fold(0.0f32, |m, w| m.max(w.abs()));
            let scale = if max > 0.0 { max / 32767.0 } else { 1.0 };
            out.extend_from_slice(&scale.to_le_bytes());
            out.extend_from_slice(&bias.to_le_bytes());
            for w in w {
                let q = (w / scale).round().clamp(-32767.0, 32767.0) as i16;
                out.extend_from_slice(&q.to_le_bytes());
            }
        }
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<Model, ModelError> {
        let mut r = Reader { b, at: 0 };
        if r.take(8)? != MAGIC {
            return Err(ModelError::Magic);
        }
        let hl = r.u32()? as usize;
        let header: Header =
            serde_json::from_slice(r.take(hl)?).map_err(|e| ModelError::Header(e.to_string()))?;
        if header.cues != CUES || header.heads.len() != N_HEADS {
            return Err(ModelError::Format(header.format));
        }
        let n = r.u32()? as usize;
        let mut hashes = Vec::with_capacity(n);
        for _ in 0..n {
            hashes.push(r.u32()?);
        }
        let mut idf = Vec::with_capacity(n);
        for _ in 0..n {
            idf.push(r.f32()?);
        }
        let dim = n + N_CUES;
        let mut rows = vec![0f32; dim * N_HEADS];
        let mut bias = [0f32; N_HEADS];
        for (h, b) in bias.iter_mut().enumerate() {
            let scale = r.f32()?;
            *b = r.f32()?;
            for i in 0..dim {
                rows[i * N_HEADS + h] = f32::from(r.i16()?) * scale;
            }
        }
        if r.at != b.len() {
            return Err(ModelError::Truncated);
        }
        let index = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, i as u32))
            .collect();
        Ok(Model {
            header,
            hashes,
            index,
            idf,
            rows,
            bias,
        })
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self.at.checked_add(n).ok_or(ModelError::Truncated)?;
        let s = self.b.get(self.at..end).ok_or(ModelError::Truncated)?;
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn f32(&mut self) -> Result<f32, ModelError> {
        Ok(f32::from_bits(self.u32()?))
    }
    fn i16(&mut self) -> Result<i16, ModelError> {
        let s = self.take(2)?;
        Ok(i16::from_le_bytes([s[0], s[1]]))
    }
}

// ------------------------------------------------------------------ training

/// Training settings.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Inverse L2 strength of the alert and category heads.
    pub c_alert: f64,
    /// Inverse L2 strength of the called head.
    pub c_called: f64,
    /// A feature is kept when at least this many messages have it.
    pub min_df: u32,
    /// Calibrate on out-of-fold scores (folds by writer).
    pub calibrate: bool,
    /// Train the category and looks-only heads (an evaluation of alert and
    /// called can skip them).
    pub categories: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            c_alert: 16.0,
            c_called: 16.0,
            min_df: 2,
            calibrate: true,
            categories: true,
        }
    }
}

/// A message's raw features and labels, extracted once.
pub struct Prepared {
    pub raw: Raw,
    pub example: Example,
}

pub fn prepare(examples: Vec<Example>, rules: &RuleSet) -> Vec<Prepared> {
    examples
        .into_iter()
        .map(|e| Prepared {
            raw: extract(&e.text, rules),
            example: e,
        })
        .collect()
}

/// Trains a model on `data` (in a fixed order: the caller sorts it).
pub fn train(data: &[&Prepared], params: Params, data_sha256: String) -> Model {
    let Design {
        hashes,
        index,
        idf,
        vectors,
        plain,
    } = design(data, params.min_df);
    let n = hashes.len();
    let dim = n + N_CUES;
    let all: Vec<usize> = (0..data.len()).collect();
    let alert = fit(&plain, &all, |i| data[i].example.alert, dim, params.c_alert);
    let called = fit(
        &vectors,
        &all,
        |i| data[i].example.called,
        dim,
        params.c_called,
    );
    let alerts: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| data[i].example.alert)
        .collect();
    let mut heads = vec![alert, called];
    for name in CATEGORIES {
        heads.push(if params.categories {
            fit(
                &plain,
                &alerts,
                |i| data[i].example.categories.iter().any(|c| c == name),
                dim,
                params.c_alert,
            )
        } else {
            (vec![0.0; dim], 0.0)
        });
    }
    heads.push(if params.categories {
        // Few reports describe looks alone: their errors weigh as much in
        // total as the others', so 0.5 is a balanced threshold.
        let pos = alerts
            .iter()
            .filter(|&&i| data[i].example.looks_only)
            .count();
        let balance = if pos == 0 {
            1.0
        } else {
            (alerts.len() - pos) as f64 / pos as f64
        };
        fit_weighted(
            &plain,
            &alerts,
            |i| data[i].example.looks_only,
            dim,
            params.c_alert,
            balance,
        )
    } else {
        (vec![0.0; dim], -10.0)
    });
    let (platt_alert, platt_called) = if params.calibrate {
        calibration(data, params)
    } else {
        ((1.0, 0.0), (1.0, 0.0))
    };
    let mut writers = BTreeMap::new();
    let mut languages = BTreeMap::new();
    for p in data {
        *writers.entry(p.example.writer.clone()).or_insert(0) += 1;
        *languages.entry(p.example.lang.clone()).or_insert(0) += 1;
    }
    let header = Header {
        format: 1,
        writers,
        languages,
        data_sha256,
        c_alert: params.c_alert,
        c_called: params.c_called,
        min_df: params.min_df,
        platt_alert,
        platt_called,
        cues: CUES.iter().map(|s| s.to_string()).collect(),
        heads: ["alert", "called"]
            .into_iter()
            .chain(CATEGORIES)
            .chain(["looks_only"])
            .map(String::from)
            .collect(),
    };
    let dim = n + N_CUES;
    let mut rows = vec![0f32; dim * N_HEADS];
    let mut bias = [0f32; N_HEADS];
    for (h, (w, b)) in heads.into_iter().enumerate().take(N_HEADS) {
        bias[h] = b as f32;
        for (i, x) in w.into_iter().enumerate().take(dim) {
            rows[i * N_HEADS + h] = x as f32;
        }
    }
    let model = Model {
        header,
        index,
        hashes,
        idf,
        rows,
        bias,
    };
    // What is shipped is what is scored: round-trip through the file's
    // 16-bit weights so training-time and load-time scores agree.
    Model::from_bytes(&model.to_bytes()).unwrap_or(model)
}

/// The features of a training set and its messages as vectors: the full
/// text (for the called head) and the plain one (for the others).
struct Design {
    hashes: Vec<u32>,
    index: Index,
    idf: Vec<f32>,
    vectors: Vec<Vector>,
    plain: Vec<Vector>,
}

fn design(data: &[&Prepared], min_df: u32) -> Design {
    let (hashes, index, idf) = vocabulary(data, min_df);
    let n = hashes.len();
    let vectors = data
        .iter()
        .map(|p| weigh(&p.raw, &index, &idf, n))
        .collect();
    let plain = data
        .iter()
        .map(|p| weigh_plain(&p.raw, &index, &idf, n))
        .collect();
    Design {
        hashes,
        index,
        idf,
        vectors,
        plain,
    }
}

fn vocabulary(data: &[&Prepared], min_df: u32) -> (Vec<u32>, Index, Vec<f32>) {
    let mut df: HashMap<u32, u32, BuildHasherDefault<Mix>> = HashMap::default();
    for p in data {
        for &(h, _) in p.raw.words.iter().chain(&p.raw.chars) {
            *df.entry(h).or_insert(0) += 1;
        }
    }
    let mut hashes: Vec<u32> = df
        .iter()
        .filter(|(_, d)| **d >= min_df)
        .map(|(h, _)| *h)
        .collect();
    hashes.sort_unstable();
    let n_docs = data.len() as f32;
    let idf = hashes
        .iter()
        .map(|h| ((1.0 + n_docs) / (1.0 + df[h] as f32)).ln() + 1.0)
        .collect();
    let index = hashes
        .iter()
        .enumerate()
        .map(|(i, h)| (*h, i as u32))
        .collect();
    (hashes, index, idf)
}

/// Out-of-fold logits for the alert and called heads (folds by writer),
/// then Platt scaling fitted on them.
fn calibration(data: &[&Prepared], params: Params) -> ((f64, f64), (f64, f64)) {
    let mut writers: Vec<&str> = data.iter().map(|p| p.example.writer.as_str()).collect();
    writers.sort_unstable();
    writers.dedup();
    let k = writers.len().min(5);
    if k < 2 {
        return ((1.0, 0.0), (1.0, 0.0));
    }
    let fold_of = |w: &str| writers.iter().position(|x| *x == w).unwrap_or(0) % k;
    let mut za = vec![0.0; data.len()];
    let mut zc = vec![0.0; data.len()];
    for fold in 0..k {
        let train: Vec<&Prepared> = data
            .iter()
            .copied()
            .filter(|p| fold_of(&p.example.writer) != fold)
            .collect();
        let inner = Params {
            calibrate: false,
            ..params
        };
        let m = train_heads_only(&train, inner);
        for (i, p) in data.iter().enumerate() {
            if fold_of(&p.example.writer) == fold {
                let (a, c) = m.logits(&p.raw);
                za[i] = a;
                zc[i] = c;
            }
        }
    }
    let ya: Vec<bool> = data.iter().map(|p| p.example.alert).collect();
    let yc: Vec<bool> = data.iter().map(|p| p.example.called).collect();
    (platt(&za, &ya), platt(&zc, &yc))
}

/// Alert and called heads only, for calibration folds.
struct Pair {
    index: Index,
    idf: Vec<f32>,
    n: usize,
    alert: (Vec<f64>, f64),
    called: (Vec<f64>, f64),
}

impl Pair {
    fn logits(&self, raw: &Raw) -> (f64, f64) {
        let v = weigh(raw, &self.index, &self.idf, self.n);
        let z = |h: &(Vec<f64>, f64), v: &Vector| {
            v.idx
                .iter()
                .zip(&v.val)
                .fold(h.1, |s, (i, x)| s + h.0[*i as usize] * f64::from(*x))
        };
        (
            z(
                &self.alert,
                &weigh_plain(raw, &self.index, &self.idf, self.n),
            ),
            z(&self.called, &v),
        )
    }
}

fn train_heads_only(data: &[&Prepared], params: Params) -> Pair {
    let Design {
        hashes,
        index,
        idf,
        vectors,
        plain,
    } = design(data, params.min_df);
    let n = hashes.len();
    let all: Vec<usize> = (0..data.len()).collect();
    let dim = n + N_CUES;
    Pair {
        alert: fit(&plain, &all, |i| data[i].example.alert, dim, params.c_alert),
        called: fit(
            &vectors,
            &all,
            |i| data[i].example.called,
            dim,
            params.c_called,
        ),
        index,
        idf,
        n,
    }
}

/// Platt scaling: (a, b) with p = sigmoid(a z + b), fitted by Newton's
/// method on the log loss with Platt's smoothed targets.
fn platt(z: &[f64], y: &[bool]) -> (f64, f64) {
    let pos = y.iter().filter(|b| **b).count() as f64;
    let neg = y.len() as f64 - pos;
    let hi = (pos + 1.0) / (pos + 2.0);
    let lo = 1.0 / (neg + 2.0);
    let t: Vec<f64> = y.iter().map(|b| if *b { hi } else { lo }).collect();
    let (mut a, mut b) = (1.0, 0.0);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for (zi, ti) in z.iter().zip(&t) {
            let p = sigmoid(a * zi + b);
            let d = p - ti;
            ga += d * zi;
            gb += d;
            let w = p * (1.0 - p);
            haa += w * zi * zi;
            hab += w * zi;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() < 1e-10 && db.abs() < 1e-10 {
            break;
        }
    }
    (a, b)
}

/// L2-regularised logistic regression on the rows `rows` of `x` (labels
/// from `label`), by L-BFGS with a backtracking line search. Returns the
/// weights and the (unregularised) bias.
fn fit(
    x: &[Vector],
    rows: &[usize],
    label: impl Fn(usize) -> bool,
    dim: usize,
    c: f64,
) -> (Vec<f64>, f64) {
    fit_weighted(x, rows, label, dim, c, 1.0)
}

/// [`fit`] with the positive rows' loss weighed `pos_weight` times.
fn fit_weighted(
    x: &[Vector],
    rows: &[usize],
    label: impl Fn(usize) -> bool,
    dim: usize,
    c: f64,
    pos_weight: f64,
) -> (Vec<f64>, f64) {
    let y: Vec<f64> = rows
        .iter()
        .map(|&i| if label(i) { 1.0 } else { 0.0 })
        .collect();
    let lambda = 1.0 / c;
    // Parameters: weights then the bias at `dim`.
    let objective = |p: &[f64], grad: &mut [f64]| -> f64 {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut loss = 0.0;
        for (k, &i) in rows.iter().enumerate() {
            let v = &x[i];
            let mut z = p[dim];
            for (j, val) in v.idx.iter().zip(&v.val) {
                z += p[*j as usize] * f64::from(*val);
            }
            let w = if y[k] > 0.5 { pos_weight } else { 1.0 };
            // log(1 + e^z) - y z, computed stably.
            loss += w
                * (if z > 0.0 {
                    z + (-z).exp().ln_1p()
                } else {
                    z.exp().ln_1p()
                } - y[k] * z);
            let d = w * (sigmoid(z) - y[k]);
            for (j, val) in v.idx.iter().zip(&v.val) {
                grad[*j as usize] += d * f64::from(*val);
            }
            grad[dim] += d;
        }
        for j in 0..dim {
            loss += 0.5 * lambda * p[j] * p[j];
            grad[j] += lambda * p[j];
        }
        loss
    };
    let p = lbfgs(dim + 1, objective, 300);
    let bias = p[dim];
    let mut w = p;
    w.truncate(dim);
    (w, bias)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises a smooth convex function from zero by L-BFGS (memory 10).
fn lbfgs(n: usize, mut f: impl FnMut(&[f64], &mut [f64]) -> f64, iters: usize) -> Vec<f64> {
    const M: usize = 10;
    let mut x = vec![0.0; n];
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut xn = vec![0.0; n];
    let mut gn = vec![0.0; n];
    for it in 0..iters {
        let gnorm = dot(&g, &g).sqrt();
        if gnorm < 1e-6 * (1.0 + fx.abs()) {
            break;
        }
        // Two-loop recursion: d = -H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(s_hist.len());
        for (s, y) in s_hist.iter().zip(&y_hist).rev() {
            let rho = 1.0 / dot(y, s);
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push((a, rho));
        }
        if let (Some(s), Some(y)) = (s_hist.last(), y_hist.last()) {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|qi| *qi *= gamma);
        } else {
            let scale = 1.0 / gnorm;
            q.iter_mut().for_each(|qi| *qi *= scale);
        }
        for ((s, y), (a, rho)) in s_hist.iter().zip(&y_hist).zip(alphas.into_iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let d: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &d);
        let d = if slope >= 0.0 {
            // Not a descent direction: restart from the gradient.
            s_hist.clear();
            y_hist.clear();
            slope = -dot(&g, &g);
            g.iter().map(|v| -v).collect()
        } else {
            d
        };
        let mut step = 1.0;
        let mut fnew;
        let mut tries = 0;
        loop {
            for i in 0..n {
                xn[i] = x[i] + step * d[i];
            }
            fnew = f(&xn, &mut gn);
            if fnew <= fx + 1e-4 * step * slope || tries > 30 {
                break;
            }
            step *= 0.5;
            tries += 1;
        }
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        std::mem::swap(&mut x, &mut xn);
        std::mem::swap(&mut g, &mut gn);
        let improvement = fx - fnew;
        fx = fnew;
        if sy > 1e-12 {
            s_hist.push(s);
            y_hist.push(y);
            if s_hist.len() > M {
                s_hist.remove(0);
                y_hist.remove(0);
            }
        }
        if it > 5 && improvement.abs() < 1e-9 * (1.0 + fx.abs()) {
            break;
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RuleSet {
        RuleSet::compile(true, None, &["101".into(), "112".into()]).expect("rules")
    }

    fn ex(writer: &str, text: &str, alert: bool, called: bool) -> Example {
        Example {
            writer: writer.into(),
            text: text.into(),
            lang: "nl".into(),
            alert,
            called,
            categories: if alert {
                vec!["suspicious_person".into()]
            } else {
                vec![]
            },
            kind: String::new(),
            looks_only: false,
        }
    }

    fn tiny() -> Vec<Example> {
        let mut v = Vec::new();
        for (i, w) in ["a", "b", "c"].iter().enumerate() {
            v.push(ex(
                w,
                &format!("verdachte man in de straat {i}, 101 gebeld"),
                true,
                true,
            ));
            v.push(ex(
                w,
                &format!("verdachte wagen rijdt rond {i}"),
                true,
                false,
            ));
            v.push(ex(w, &format!("mooi weer vandaag {i}"), false, false));
            v.push(ex(
                w,
                &format!("wie komt er naar de barbecue {i}"),
                false,
                false,
            ));
        }
        v
    }

    #[test]
    fn the_same_data_gives_the_same_bytes() {
        let r = rules();
        let data = prepare(tiny(), &r);
        let refs: Vec<&Prepared> = data.iter().collect();
        let a = train(&refs, Params::default(), "x".into()).to_bytes();
        let b = train(&refs, Params::default(), "x".into()).to_bytes();
        assert_eq!(a, b);
    }

    #[test]
    fn a_model_file_reads_back_to_the_same_scores() {
        let r = rules();
        let data = prepare(tiny(), &r);
        let refs: Vec<&Prepared> = data.iter().collect();
        let m = train(&refs, Params::default(), "x".into());
        let back = Model::from_bytes(&m.to_bytes()).expect("reads back");
        let t = "verdachte man in de tuin";
        let n = normalize(t);
        assert_eq!(m.score(t, &n, &r), back.score(t, &n, &r));
        assert_eq!(back.header.writers.len(), 3);
    }

    #[test]
    fn the_model_learns_what_it_was_shown() {
        let r = rules();
        let data = prepare(tiny(), &r);
        let refs: Vec<&Prepared> = data.iter().collect();
        let m = train(
            &refs,
            Params {
                calibrate: false,
                ..Params::default()
            },
            "x".into(),
        );
        let s = |t: &str| m.score(t, &normalize(t), &r);
        assert!(s("verdachte man in de straat").alert > s("mooi weer vandaag").alert);
        assert!(s("verdachte man, 101 gebeld").called > s("verdachte man").called);
    }

    #[test]
    fn a_broken_file_is_refused_with_a_reason() {
        assert!(matches!(
            Model::from_bytes(b"nope"),
            Err(ModelError::Truncated)
        ));
        assert!(matches!(
            Model::from_bytes(b"XXXXXXXX\0\0\0\0"),
            Err(ModelError::Magic)
        ));
        let r = rules();
        let data = prepare(tiny(), &r);
        let refs: Vec<&Prepared> = data.iter().collect();
        let mut bytes = train(&refs, Params::default(), "x".into()).to_bytes();
        bytes.truncate(bytes.len() - 3);
        assert!(Model::from_bytes(&bytes).is_err());
    }

    #[test]
    fn platt_scaling_recovers_a_known_slope() {
        let z: Vec<f64> = (0..200).map(|i| f64::from(i - 100) / 20.0).collect();
        // Labels from sigmoid(2z): deterministic thresholds on a grid.
        let y: Vec<bool> = z
            .iter()
            .enumerate()
            .map(|(i, zi)| sigmoid(2.0 * zi) > f64::from((i * 37 % 100) as u32) / 100.0)
            .collect();
        let (a, b) = platt(&z, &y);
        assert!(a > 1.0 && a < 4.0, "a = {a}");
        assert!(b.abs() < 0.7, "b = {b}");
    }
}
