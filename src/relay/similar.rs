//! One incident, one fan-out: is a new alert a second report of an alert
//! the network already has?
//!
//! The same incident reaches the relay twice when it is posted in two groups,
//! or when a coordinator still copies by hand ("[Veulen] Jan: ...",
//! "doorgestuurd: ...", with small edits). Two texts report the same
//! incident when, over their normalised words without stop words and
//! forwarding marks:
//!
//! - at least [`MIN_SHARED`] informative words are shared, and
//! - the shared words cover at least [`MIN_CONTAINMENT`] of the shorter text
//!   (containment: a hand copy adds a prefix, a second witness adds detail),
//! - and no anchor contradicts: for each kind of anchor both texts name, they
//!   share one. Anchors are streets (…straat, …weg, rue …), number plates,
//!   other numbers (house numbers, ages), colours, nationalities (of a
//!   number plate) and car makes. Two grey vans in different streets, or a
//!   white van and a black BMW in the same street, are two incidents,
//!   however alike the words. A witness who says "silver" where the first
//!   said "grey" is missed: a miss repeats a report, a false merge loses one.
//!
//! Only alerts from another group, forwarded, not retracted and younger than
//! `relay.merge_window` are compared. The figures on the labelled pairs in
//! `tests/data/incident_pairs.jsonl` are in docs/groups.md (`cargo test --test
//! incident_eval -- --nocapture` prints them).

use std::collections::BTreeSet;

use super::Thread;
use crate::config::{Config, Group};
use crate::protocol::normalize;

/// Shared informative words needed, at least.
pub const MIN_SHARED: usize = 3;
/// Share of the shorter text's words that must be shared.
pub const MIN_CONTAINMENT: f64 = 0.6;

/// Words that say nothing about an incident (Dutch, French, English), and
/// the marks of a forward done by hand.
const STOP: &[&str] = &[
    // Dutch
    "de",
    "het",
    "een",
    "en",
    "in",
    "op",
    "aan",
    "van",
    "met",
    "door",
    "voor",
    "naar",
    "bij",
    "te",
    "is",
    "was",
    "zijn",
    "er",
    "die",
    "dat",
    "deze",
    "dit",
    "hier",
    "daar",
    "nu",
    "net",
    "al",
    "nog",
    "ook",
    "om",
    "rond",
    "u",
    "uur",
    "ik",
    "we",
    "wij",
    "je",
    "jij",
    "hij",
    "zij",
    "ze",
    "mijn",
    "onze",
    "ons",
    "zijn",
    "haar",
    "hun",
    "heb",
    "heeft",
    "hebben",
    "wordt",
    "werd",
    "kan",
    "mag",
    "moet",
    "gaat",
    "gaan",
    "aan",
    "t",
    "s",
    "n",
    "of",
    "maar",
    "dan",
    "als",
    "wat",
    "wie",
    "waar",
    "even",
    "zo",
    "zeer",
    "heel",
    "wel",
    "niet",
    "geen",
    "iets",
    "iemand",
    "opgelet",
    "let",
    "pas",
    "op",
    "graag",
    "aub",
    "allemaal",
    "iedereen",
    "buren",
    // French
    "le",
    "la",
    "les",
    "un",
    "une",
    "des",
    "du",
    "et",
    "dans",
    "sur",
    "au",
    "aux",
    "avec",
    "par",
    "pour",
    "est",
    "sont",
    "il",
    "elle",
    "ils",
    "on",
    "je",
    "nous",
    "vous",
    "ce",
    "cette",
    "qui",
    "que",
    "a",
    "ai",
    "en",
    "y",
    "ici",
    "la",
    "vers",
    "rue",
    "pas",
    "ne",
    "de",
    "d",
    "l",
    "attention",
    // English
    "the",
    "a",
    "an",
    "and",
    "in",
    "on",
    "at",
    "of",
    "to",
    "by",
    "for",
    "with",
    "is",
    "are",
    "was",
    "were",
    "there",
    "here",
    "now",
    "just",
    "i",
    "we",
    "he",
    "she",
    "they",
    "it",
    "my",
    "our",
    "has",
    "have",
    "had",
    "be",
    "been",
    "this",
    "that",
    "near",
    "around",
    "street",
    "road",
    "careful",
    "everyone",
    "all",
    // The forward marks and the emergency words every report shares.
    "doorgestuurd",
    "doorgestuurd:",
    "fwd",
    "fw",
    "forwarded",
    "transfere",
    "transferé",
    "gekopieerd",
    "copie",
    "uit",
    "via",
    "groep",
    "bericht",
    "melding",
    "gemeld",
    "101",
    "112",
    "gebeld",
    "verwittigd",
    "politie",
    "police",
    "called",
    "appele",
    "verdacht",
    "verdachte",
    "suspect",
    "suspecte",
    "suspicious",
];

/// Street name endings (normalised, so without accents).
const STREET: &[&str] = &[
    "straat", "steenweg", "weg", "laan", "plein", "baan", "dreef", "hof", "pad", "veld", "kouter",
    "wal", "dijk", "berg", "singel", "kaai", "markt", "lei",
];
/// Ordinary words with a street ending: "politie is onderweg" names no street.
const NOT_STREETS: &[&str] = &[
    "onderweg",
    "halfweg",
    "snelweg",
    "autosnelweg",
    "supermarkt",
    "fietspad",
    "voetpad",
    "wandelpad",
    "kerkhof",
    "voetbalveld",
    "speelveld",
    "rijbaan",
    "loopbaan",
];
/// Words that name a street after them (French, English).
const STREET_BEFORE: &[&str] = &["rue", "chemin", "avenue", "place", "chaussee", "route"];
const STREET_AFTER: &[&str] = &["street", "road", "lane", "avenue", "drive"];

/// Colours, by the name every language's word is counted as.
const COLOURS: &[(&str, &[&str])] = &[
    (
        "white",
        &[
            "wit", "witte", "blanc", "blanche", "blanches", "blancs", "white",
        ],
    ),
    (
        "black",
        &[
            "zwart", "zwarte", "noir", "noire", "noirs", "noires", "black",
        ],
    ),
    (
        "grey",
        &["grijs", "grijze", "gris", "grise", "grises", "grey", "gray"],
    ),
    (
        "blue",
        &["blauw", "blauwe", "bleu", "bleue", "bleus", "blue"],
    ),
    ("red", &["rood", "rode", "rouge", "rouges", "red"]),
    ("green", &["groen", "groene", "vert", "verte", "green"]),
    ("yellow", &["geel", "gele", "jaune", "yellow"]),
    (
        "silver",
        &[
            "zilver",
            "zilveren",
            "zilverkleurig",
            "zilverkleurige",
            "argent",
            "argente",
            "argentee",
            "silver",
        ],
    ),
    (
        "brown",
        &["bruin", "bruine", "brun", "brune", "marron", "brown"],
    ),
    ("orange", &["oranje", "orange"]),
];
/// Nationalities (of a number plate), likewise.
const COUNTRIES: &[(&str, &[&str])] = &[
    (
        "nl",
        &[
            "nederlandse",
            "nederlands",
            "hollandse",
            "neerlandaise",
            "neerlandais",
            "dutch",
        ],
    ),
    (
        "pl",
        &["poolse", "pools", "polonaise", "polonais", "polish"],
    ),
    (
        "de",
        &["duitse", "duits", "allemande", "allemand", "german"],
    ),
    (
        "fr",
        &["franse", "frans", "francaise", "francais", "french"],
    ),
    (
        "ro",
        &["roemeense", "roemeens", "roumaine", "roumain", "romanian"],
    ),
    ("bg", &["bulgaarse", "bulgaars", "bulgare", "bulgarian"]),
    (
        "lt",
        &[
            "litouwse",
            "litouws",
            "lituanienne",
            "lituanien",
            "lithuanian",
        ],
    ),
    ("be", &["belgische", "belgisch", "belge", "belgian"]),
    (
        "gb",
        &[
            "engelse",
            "britse",
            "anglaise",
            "britannique",
            "british",
            "english",
        ],
    ),
];
/// Car makes (a model names its make: "golf" is a volkswagen).
const MAKES: &[(&str, &[&str])] = &[
    (
        "vw",
        &[
            "vw",
            "volkswagen",
            "golf",
            "polo",
            "passat",
            "caddy",
            "transporter",
        ],
    ),
    ("bmw", &["bmw"]),
    ("audi", &["audi"]),
    ("mercedes", &["mercedes", "vito", "sprinter"]),
    ("opel", &["opel", "corsa", "astra", "vivaro"]),
    ("peugeot", &["peugeot", "partner"]),
    (
        "renault",
        &["renault", "clio", "kangoo", "megane", "trafic"],
    ),
    ("ford", &["ford", "transit", "fiesta", "focus"]),
    ("citroen", &["citroen", "berlingo"]),
    ("toyota", &["toyota"]),
    ("volvo", &["volvo"]),
    ("skoda", &["skoda", "octavia"]),
    ("kia", &["kia"]),
    ("hyundai", &["hyundai"]),
    ("nissan", &["nissan"]),
    ("fiat", &["fiat"]),
    ("dacia", &["dacia"]),
    ("tesla", &["tesla"]),
    ("porsche", &["porsche"]),
];

/// The kinds of anchors; two texts that both name one kind must share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Anchor {
    Street,
    Plate,
    Number,
    Colour,
    Country,
    Make,
}

/// What two texts have in common.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlap {
    pub shared: usize,
    /// Shared words over the shorter text's words.
    pub containment: f64,
    /// A kind of anchor both name, with none in common.
    pub anchors_differ: bool,
}

impl Overlap {
    pub fn same_incident(&self) -> bool {
        !self.anchors_differ && self.shared >= MIN_SHARED && self.containment >= MIN_CONTAINMENT
    }
}

fn words(text: &str) -> Vec<String> {
    normalize(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The informative words of a text.
pub fn tokens(text: &str) -> BTreeSet<String> {
    words(text)
        .into_iter()
        .filter(|w| !STOP.contains(&w.as_str()))
        .filter(|w| w.chars().count() > 1 || w.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

fn canonical(table: &[(&'static str, &[&str])], word: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(_, words)| words.contains(&word))
        .map(|(name, _)| *name)
}

/// The anchors a text names (see the module docs).
pub fn anchors(text: &str) -> BTreeSet<(Anchor, String)> {
    let w = words(text);
    let mut out = BTreeSet::new();
    let digits = |s: Option<&String>, n: std::ops::RangeInclusive<usize>| {
        s.is_some_and(|s| n.contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit()))
    };
    let mut in_plate = BTreeSet::new();
    for (i, word) in w.iter().enumerate() {
        if word.len() > 5
            && !NOT_STREETS.contains(&word.as_str())
            && STREET
                .iter()
                .any(|s| word.ends_with(s) && word.len() > s.len() + 2)
        {
            out.insert((Anchor::Street, word.clone()));
        }
        if STREET_BEFORE.contains(&word.as_str()) {
            // "rue de la station" → "rue station"
            if let Some(name) = w[i + 1..]
                .iter()
                .take(3)
                .find(|n| !STOP.contains(&n.as_str()) && n.len() > 2)
            {
                out.insert((Anchor::Street, format!("{word} {name}")));
            }
        }
        if STREET_AFTER.contains(&word.as_str()) && i > 0 {
            out.insert((Anchor::Street, format!("{} {word}", w[i - 1])));
        }
        // Belgian plates "1-ABC-234" normalise to "1 abc 234"; also "abc 123".
        if word.len() == 3
            && word.chars().all(|c| c.is_ascii_alphabetic())
            && digits(w.get(i + 1), 3..=3)
        {
            let before = i.checked_sub(1).and_then(|j| w.get(j));
            let plate = if digits(before, 1..=1) {
                in_plate.insert(i - 1);
                format!("{}{word}{}", w[i - 1], w[i + 1])
            } else {
                format!("{word}{}", w[i + 1])
            };
            in_plate.insert(i + 1);
            out.insert((Anchor::Plate, plate));
        }
        if let Some(c) = canonical(COLOURS, word) {
            out.insert((Anchor::Colour, c.to_string()));
        }
        if let Some(c) = canonical(COUNTRIES, word) {
            out.insert((Anchor::Country, c.to_string()));
        }
        if let Some(c) = canonical(MAKES, word) {
            out.insert((Anchor::Make, c.to_string()));
        }
    }
    // Other numbers: house numbers, ages (not the emergency numbers).
    for (i, word) in w.iter().enumerate() {
        if !in_plate.contains(&i)
            && (1..=4).contains(&word.len())
            && word.chars().all(|c| c.is_ascii_digit())
            && !STOP.contains(&word.as_str())
        {
            out.insert((Anchor::Number, word.clone()));
        }
    }
    out
}

/// Does a kind of anchor that both name have no value in common?
fn contradict(a: &BTreeSet<(Anchor, String)>, b: &BTreeSet<(Anchor, String)>) -> bool {
    let kinds: BTreeSet<Anchor> = a.iter().map(|(k, _)| *k).collect();
    kinds.into_iter().any(|k| {
        let va: BTreeSet<&String> = a.iter().filter(|(x, _)| *x == k).map(|(_, v)| v).collect();
        let vb: BTreeSet<&String> = b.iter().filter(|(x, _)| *x == k).map(|(_, v)| v).collect();
        !vb.is_empty() && va.is_disjoint(&vb)
    })
}

/// How much two texts overlap (see the module docs).
pub fn overlap(a: &str, b: &str) -> Overlap {
    let (ta, tb) = (tokens(a), tokens(b));
    let shared = ta.intersection(&tb).count();
    let smaller = ta.len().min(tb.len());
    let containment = if smaller == 0 {
        0.0
    } else {
        shared as f64 / smaller as f64
    };
    let anchors_differ = contradict(&anchors(a), &anchors(b));
    Overlap {
        shared,
        containment,
        anchors_differ,
    }
}

/// Do two texts report the same incident?
pub fn same_incident(a: &str, b: &str) -> bool {
    overlap(a, b).same_incident()
}

/// A new report, prepared once to be compared with many earlier ones.
pub struct Fingerprint {
    tokens: BTreeSet<String>,
    anchors: BTreeSet<(Anchor, String)>,
}

impl Fingerprint {
    pub fn of(text: &str) -> Self {
        Self {
            tokens: tokens(text),
            anchors: anchors(text),
        }
    }

    /// [`same_incident`] of this report and `earlier`, the cheap test first:
    /// anchors are read only from texts that share enough words.
    pub fn same_incident_as(&self, earlier: &str) -> bool {
        self.same_incident_as_words(earlier, &tokens(earlier))
    }

    /// [`Fingerprint::same_incident_as`], with `earlier`'s [`tokens`]
    /// worked out already (an earlier report is compared with every new
    /// one: its words are worth keeping).
    pub fn same_incident_as_words(&self, earlier: &str, tb: &BTreeSet<String>) -> bool {
        let shared = self.tokens.intersection(tb).count();
        let smaller = self.tokens.len().min(tb.len());
        if smaller == 0 || shared < MIN_SHARED || (shared as f64 / smaller as f64) < MIN_CONTAINMENT
        {
            return false;
        }
        !contradict(&self.anchors, &anchors(earlier))
    }
}

/// The thread of an earlier report of the incident `text` (posted in
/// `group`), if the network has one: the newest matching alert of another
/// group, within the merge window, forwarded and not retracted. (A held
/// alert is not merged into: its copies may never go out.)
pub fn earlier_report<'a>(
    cfg: &Config,
    group: &Group,
    text: &str,
    recent: &'a [Thread],
    now_ms: u64,
) -> Option<&'a Thread> {
    let window = cfg.relay.merge_window.as_millis() as u64;
    if window == 0 {
        return None;
    }
    recent.iter().find(|t| {
        t.alert.group != group.id
            && !t.alert.retracted
            && !t.reached.is_empty()
            && t.held.is_none()
            && now_ms.saturating_sub(t.alert.at_ms) <= window
            && same_incident(text, &t.alert.text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_decides_as_the_plain_comparison_does() {
        let pairs = [
            (
                "Grijze bestelwagen 1-ABC-234 in de Kerkstraat",
                "[Veulen] Grijze bestelwagen 1-ABC-234 rijdt in de Kerkstraat",
            ),
            (
                "Grijze bestelwagen in de Kerkstraat",
                "Grijze bestelwagen in de Molenstraat",
            ),
            ("Inbraak", "Inbraak in de Molenstraat"),
        ];
        for (a, b) in pairs {
            assert_eq!(
                Fingerprint::of(a).same_incident_as(b),
                same_incident(a, b),
                "{a} / {b}"
            );
        }
    }

    #[test]
    fn a_hand_copy_with_a_village_prefix_is_the_same_incident() {
        let a = "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd";
        let b = "[Veulen] Jan: verdachte grijze bestelwagen rijdt traag door de kerkstraat. 101 verwittigd";
        assert!(same_incident(a, b), "{:?}", overlap(a, b));
    }

    #[test]
    fn a_forward_with_small_edits_is_the_same_incident() {
        let a = "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd";
        let b = "Doorgestuurd: grijze bestelwagen rijdt heel traag door Kerkstraat Veulen!!";
        assert!(same_incident(a, b), "{:?}", overlap(a, b));
    }

    #[test]
    fn two_grey_vans_in_different_streets_are_two_incidents() {
        let a = "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd";
        let b = "Verdachte grijze bestelwagen rijdt traag door de Molenstraat, 101 is verwittigd";
        let o = overlap(a, b);
        assert!(o.anchors_differ && !o.same_incident(), "{o:?}");
    }

    #[test]
    fn different_plates_make_different_incidents() {
        let a = "Witte BMW met nummerplaat 1-ABC-234 rijdt rond, politie verwittigd";
        let b = "Witte BMW met nummerplaat 2-XYZ-987 rijdt rond, politie verwittigd";
        assert!(!same_incident(a, b), "{:?}", anchors(a));
        assert!(
            anchors(a).contains(&(Anchor::Plate, "1abc234".to_string())),
            "{:?}",
            anchors(a)
        );
    }

    #[test]
    fn on_the_way_is_no_street() {
        assert!(anchors("politie is onderweg").is_empty());
    }

    #[test]
    fn a_white_van_and_a_black_bmw_in_one_street_are_two_incidents() {
        assert!(!same_incident(
            "Witte bestelwagen rijdt traag door de Kerkstraat, 101 gebeld",
            "Zwarte BMW rijdt traag door de Kerkstraat, 101 gebeld"
        ));
    }

    #[test]
    fn a_short_report_shares_too_few_words_to_be_merged() {
        assert!(!same_incident("Inbraak!", "Inbraak bezig"));
    }

    #[test]
    fn french_streets_are_anchors_too() {
        assert!(
            anchors("voiture suspecte rue de la Station")
                .contains(&(Anchor::Street, "rue station".to_string()))
        );
    }
}
