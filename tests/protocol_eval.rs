//! Measures the built-in protocol rules on the labelled data sets in
//! tests/data/ (written independently of the rules) and holds them to the
//! targets: F1 >= 0.95 for alert detection, accuracy >= 0.95 for "police
//! called". Run with `--nocapture` to see the tables (README figures).

use std::collections::BTreeMap;

use buurtrelay::protocol::RuleSet;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    text: String,
    lang: String,
    alert: bool,
    called: bool,
    categories: Vec<String>,
    trap: String,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: u32,
    fp: u32,
    fn_: u32,
    tn: u32,
}

impl Counts {
    fn add(&mut self, truth: bool, said: bool) {
        match (truth, said) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }
    fn n(&self) -> u32 {
        self.tp + self.fp + self.fn_ + self.tn
    }
    fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    fn accuracy(&self) -> f64 {
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

fn load(path: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(path).expect("data set present");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1)))
        .collect()
}

struct Report {
    alert: Counts,
    called: Counts,
    by_lang: BTreeMap<String, (Counts, Counts)>,
    by_trap: BTreeMap<String, (Counts, Counts)>,
    category_exact: u32,
    alerts_both: u32,
    misses: Vec<String>,
}

fn evaluate(cases: &[Case]) -> Report {
    let rules = RuleSet::compile(true, None, &["101".into(), "112".into()]).expect("rules");
    let mut r = Report {
        alert: Counts::default(),
        called: Counts::default(),
        by_lang: BTreeMap::new(),
        by_trap: BTreeMap::new(),
        category_exact: 0,
        alerts_both: 0,
        misses: Vec::new(),
    };
    for c in cases {
        let got = rules.classify(&c.text);
        r.alert.add(c.alert, got.alert);
        r.called.add(c.called, got.confirmed);
        let l = r.by_lang.entry(c.lang.clone()).or_default();
        l.0.add(c.alert, got.alert);
        l.1.add(c.called, got.confirmed);
        let t = r.by_trap.entry(c.trap.clone()).or_default();
        t.0.add(c.alert, got.alert);
        t.1.add(c.called, got.confirmed);
        if c.alert && got.alert {
            r.alerts_both += 1;
            let mut want = c.categories.clone();
            want.sort();
            let mut have = got.categories.clone();
            have.sort();
            if want == have {
                r.category_exact += 1;
            }
        }
        if c.alert != got.alert || c.called != got.confirmed {
            r.misses.push(format!(
                "  alert {}→{} called {}→{} [{}] {}",
                c.alert, got.alert, c.called, got.confirmed, c.trap, c.text
            ));
        }
    }
    r
}

fn print(name: &str, n: usize, r: &Report) {
    println!("\n== {name}: {n} messages ==");
    println!(
        "alert:  precision {:.3}  recall {:.3}  F1 {:.3}   | police called: accuracy {:.3}  precision {:.3}  recall {:.3}",
        r.alert.precision(),
        r.alert.recall(),
        r.alert.f1(),
        r.called.accuracy(),
        r.called.precision(),
        r.called.recall()
    );
    println!(
        "categories exactly right on {}/{} detected alerts",
        r.category_exact, r.alerts_both
    );
    println!("| axis | n | alert P | alert R | alert F1 | called acc |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (k, (a, c)) in r.by_lang.iter().chain(r.by_trap.iter()) {
        println!(
            "| {k} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            a.n(),
            a.precision(),
            a.recall(),
            a.f1(),
            c.accuracy()
        );
    }
    if !r.misses.is_empty() {
        println!("misses:");
        for m in &r.misses {
            println!("{m}");
        }
    }
}

/// Evaluates one labelled set, prints its tables and holds it to the targets.
fn meets_the_targets(path: &str, name: &str, at_least: usize) {
    let cases = load(path);
    assert!(
        cases.len() >= at_least,
        "at least {at_least} labelled messages in {path}"
    );
    let r = evaluate(&cases);
    print(name, cases.len(), &r);
    assert!(
        r.alert.f1() >= 0.95,
        "{name}: alert F1 {:.3} < 0.95",
        r.alert.f1()
    );
    assert!(
        r.called.accuracy() >= 0.95,
        "{name}: police-called accuracy {:.3} < 0.95",
        r.called.accuracy()
    );
}

#[test]
fn the_development_set_meets_the_targets() {
    meets_the_targets("tests/data/protocol_cases.jsonl", "development set", 150);
}

#[test]
fn the_second_development_set_meets_the_targets() {
    meets_the_targets(
        "tests/data/protocol_cases_2.jsonl",
        "second development set",
        150,
    );
}

/// Written by someone who never saw the rules, and never looked at while
/// writing them: the measure of how the rules generalise.
#[test]
fn the_held_out_set_meets_the_targets() {
    meets_the_targets("tests/data/protocol_holdout.jsonl", "held-out set", 50);
}
