//! The protocol traps, as sentences. The labelled data set in
//! `tests/data/` measures the rules as a whole; these pin the hard cases.

use super::*;

static RULES: std::sync::LazyLock<RuleSet> = std::sync::LazyLock::new(|| {
    RuleSet::compile(true, None, &["101".to_string(), "112".to_string()])
        .expect("built-in rules compile")
});

fn rules() -> &'static RuleSet {
    &RULES
}

fn confirmed(text: &str) -> bool {
    rules().classify(text).confirmed
}

fn alert(text: &str) -> bool {
    rules().classify(text).alert
}

#[test]
fn the_reference_alert_is_an_alert_about_a_vehicle_and_confirmed() {
    let c = rules()
        .classify("Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd");
    assert!(c.alert);
    assert!(c.confirmed);
    assert_eq!(c.categories, vec!["suspicious_vehicle".to_string()]);
}

#[test]
fn the_same_alert_without_the_call_is_not_confirmed() {
    let c = rules().classify("Verdachte grijze bestelwagen rijdt traag door de Kerkstraat");
    assert!(c.alert);
    assert!(!c.confirmed);
}

#[test]
fn a_question_about_101_is_not_a_confirmation() {
    assert!(!confirmed("iemand al 101 gebeld?"));
    assert!(!confirmed("Quelqu'un a appelé la police ?"));
    assert!(!confirmed("Has anyone called 101?"));
    assert!(!confirmed("Heeft iemand, toevallig, 101 gebeld?"));
}

#[test]
fn an_imperative_is_not_a_confirmation() {
    assert!(!confirmed("Bel 101!"));
    assert!(!confirmed("Appelez le 101 !"));
    assert!(!confirmed("Call 112 now"));
}

#[test]
fn a_negation_is_not_a_confirmation() {
    assert!(!confirmed("Verdachte man, nog niet gebeld"));
    assert!(!confirmed("Politie niet verwittigd"));
    assert!(!confirmed("Je n'ai pas encore appelé la police"));
    assert!(!confirmed("haven't called the police yet"));
}

#[test]
fn an_intention_is_not_a_confirmation() {
    assert!(!confirmed("Ik ga 101 bellen"));
    assert!(!confirmed("Je vais appeler le 101"));
    assert!(!confirmed("I'll call the police"));
}

#[test]
fn a_confirmation_next_to_a_question_still_counts() {
    assert!(confirmed(
        "Verdachte man in de Dorpsstraat. 101 is verwittigd. Heeft iemand camerabeelden?"
    ));
}

#[test]
fn flemish_words_for_informing_the_police_count() {
    assert!(confirmed("Politie ingelicht"));
    assert!(confirmed("de politie is op de hoogte"));
    assert!(confirmed("politie ter plaatse"));
    assert!(confirmed("Combi is onderweg"));
    assert!(confirmed("ja, gebeld"));
}

#[test]
fn suspiciously_nice_weather_is_chit_chat() {
    assert!(!alert("Verdacht lekker weer vandaag"));
    assert!(!alert("Onze kat is weg"));
    assert!(!alert("👍 bedankt"));
}

#[test]
fn police_advice_is_not_an_alert_and_not_a_confirmation() {
    let c =
        rules().classify("Tip van de politie: bel altijd eerst 101 bij een verdachte situatie.");
    assert!(!c.alert);
    assert!(!c.confirmed);
    assert!(c.advisory);
}

#[test]
fn a_missing_dog_is_not_a_missing_person() {
    assert!(!alert("Onze hond wordt vermist sinds vanmorgen"));
    assert!(alert("Onze zoon van 9 wordt vermist sinds vanmorgen"));
}

#[test]
fn emergency_numbers_follow_the_network() {
    let dutch = RuleSet::compile(true, None, &["112".to_string()]).expect("compile");
    assert!(dutch.classify("Verdachte man, 112 gebeld").confirmed);
    assert!(!dutch.confirms(&normalize("heb 0900 gebeld")));
}

#[test]
fn no_text_makes_the_classifier_panic() {
    let r = rules();
    let mut rng = fastrand::Rng::with_seed(11);
    let alphabet: Vec<char> = "aeiouvdchtn 101112?!.,;:\n'’éèçñßæœ🚓👍\u{200d}\u{0301}ÅİIJ"
        .chars()
        .collect();
    for _ in 0..3_000 {
        let len = rng.usize(0..200);
        let text: String = (0..len)
            .map(|_| alphabet[rng.usize(0..alphabet.len())])
            .collect();
        let c = r.classify(&text);
        assert!(c.alert || c.categories.is_empty());
    }
}

#[test]
fn a_red_car_is_not_prowling_but_rode_in_french_is() {
    assert!(!alert("Mooie rode auto van de nieuwe buren, proficiat!"));
    assert!(alert("Un homme rôde autour des maisons rue du Moulin"));
}

#[test]
fn looking_for_a_plumber_or_losing_a_loved_one_is_not_a_missing_person() {
    assert!(!alert("Ik ben al een week op zoek naar een loodgieter"));
    assert!(!alert(
        "We hebben vorige maand onze moeder verloren, bedankt voor de steun"
    ));
    assert!(alert("Onze dochter van 12 is sinds vanmiddag zoek"));
}

#[test]
fn a_hypothetical_question_about_what_to_do_is_not_an_alert() {
    assert!(!alert("Moet ik 101 bellen als ik een verdachte wagen zie?"));
    assert!(!alert(
        "Wat een inbraak op mijn portemonnee, die belastingen"
    ));
}

#[test]
fn flemish_and_sms_spellings_confirm() {
    assert!(confirmed("ingebroke bij ons vannacht, flikke zijn gewees"));
    assert!(confirmed("ik heb 101 gebelt"));
    assert!(confirmed("cops r on their way"));
}

#[test]
fn a_call_that_did_not_get_through_or_is_only_planned_is_not_a_confirmation() {
    assert!(!confirmed(
        "Verdachte man, heb 101 gebeld maar het was bezet"
    ));
    assert!(!confirmed("Ik ga de politie op de hoogte brengen"));
    assert!(!confirmed("Has the police been called yet"));
}

#[test]
fn a_negation_before_but_does_not_cancel_the_confirmation_after_it() {
    assert!(confirmed(
        "Je n'ai pas pu joindre le 101 tout de suite mais c'est fait maintenant, la police arrive."
    ));
    assert!(confirmed(
        "Nee ik heb niet gebeld, maar mijn vrouw hing al aan de lijn met 101."
    ));
    assert!(!confirmed("Heb 101 gebeld maar niemand nam op"));
    assert!(!confirmed("Politie gebeld? Nee, nog niet, maar ik twijfel"));
}

#[test]
fn a_report_that_starts_with_someone_is_a_statement_not_a_question() {
    assert!(confirmed(
        "Iemand heeft mijn fiets gestolen, ik heb de politie gebeld."
    ));
    assert!(confirmed(
        "Quelqu'un a volé mon vélo, j'ai appelé la police."
    ));
    assert!(!confirmed("Iemand al 101 gebeld"));
    assert!(!confirmed(
        "Quelqu'un a prévenu la police, pour le gars dans le jardin"
    ));
}

#[test]
fn the_police_as_a_pronoun_or_on_the_line_confirm_but_almost_calling_does_not() {
    assert!(confirmed("Yes I rang them, they're on their way."));
    assert!(confirmed("Moi je les ai appelés il y a dix minutes."));
    assert!(confirmed("Doorgegeven, ze sturen een patrouille."));
    assert!(confirmed("Voilà, j'ai eu la police au bout du fil."));
    assert!(!confirmed(
        "Ik had bijna de politie gebeld, bleek het de postbode."
    ));
    assert!(!confirmed(
        "We did not call the police, it was the neighbour."
    ));
}

#[test]
fn new_incident_words_are_alerts() {
    assert!(alert(
        "Vannacht is de katalysator onder mijn auto uitgezaagd en weggehaald."
    ));
    assert!(alert(
        "Someone siphoned the diesel out of our van overnight."
    ));
    assert!(alert("Un drone survole les jardins depuis une heure."));
    assert!(alert(
        "Kindje van een jaar of vier loopt helemaal alleen langs de Steenweg."
    ));
    assert!(alert(
        "Er staat een oude man in pyjama aan de bushalte, hij weet niet waar hij woont."
    ));
    assert!(alert(
        "Vechtpartij voor het café, er wordt gevochten met messen."
    ));
    assert!(alert(
        "Two men claiming to be from the water company, no ID, very pushy."
    ));
    assert!(alert(
        "Deux hommes qui se disent de la commune font du porte-à-porte."
    ));
}

#[test]
fn fireworks_thrown_at_a_door_are_an_attack_but_fireworks_admired_are_not() {
    assert!(alert("Ze hebben vuurwerk tegen onze voordeur gegooid!"));
    assert!(!alert("Wat een prachtig vuurwerk gisteren op de kermis!"));
    assert!(!alert("The kids had a water fight in the garden."));
}

#[test]
fn jokes_false_alarms_and_animals_are_not_alerts() {
    assert!(!alert("Die 'inbreker' was gewoon de kat van de buren 😂"));
    assert!(!alert("Wie is de dief van mijn parasol? Grapje!"));
    assert!(!alert(
        "Very suspicious character at my bird feeder. A squirrel."
    ));
    assert!(!alert("Verdacht figuur gespot: de Sint op zijn paard!"));
    assert!(!alert("Ons dochter heeft ingebroken in de koelkast."));
    assert!(!alert(
        "Gisteren een spannende film gezien over een overval."
    ));
    assert!(!alert("Mijn kersen zijn gestolen door de merels."));
}

#[test]
fn an_institution_heading_or_a_trend_is_a_bulletin() {
    assert!(!alert(
        "Vanuit de gemeente: de politie controleert extra op fietsdiefstal."
    ));
    assert!(!alert(
        "From the local police zone: catalytic converter thefts are on the rise."
    ));
    assert!(!alert(
        "Appel à témoins de la police : un vol avec violence a eu lieu hier."
    ));
}

#[test]
fn without_anchors_removes_only_anchors() {
    assert_eq!(
        without_anchors(r"^(?:ja|ok)\b[ ,]*gebeld(?:\s*[.!]|$)").as_deref(),
        Some(r"(?:ja|ok)\b[ ,]*gebeld(?:\s*[.!]|)")
    );
    assert_eq!(
        without_anchors(r"\A[^.!?\n]*[$^]\^\$\p{^Greek}[]^][[:alpha:]^]x\z").as_deref(),
        Some(r"[^.!?\n]*[$^]\^\$\p{^Greek}[]^][[:alpha:]^]x")
    );
    // Comments in verbose patterns could hide a bracket: no relaxed form.
    assert_eq!(without_anchors(r"(?x) ^gebeld # [ comment"), None);
}

/// Every text of the corpus and the incident pairs (never a held-out or
/// blind set).
pub(super) fn dev_texts() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
    let mut out: Vec<String> = corpus::load(std::path::Path::new(&format!("{dir}corpus")))
        .expect("corpus")
        .into_iter()
        .map(|e| e.text)
        .collect();
    for file in ["incident_pairs.jsonl"] {
        let data = std::fs::read_to_string(format!("{dir}{file}")).expect("data set");
        for line in data.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json line");
            for key in ["text", "a", "b"] {
                if let Some(t) = v[key].as_str() {
                    out.push(t.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn skipping_the_sentences_when_no_called_pattern_matches_changes_nothing() {
    assert!(rules().called_anywhere.is_some());
    for t in dev_texts() {
        let n = normalize(&t);
        assert_eq!(rules().confirms_whole(&n), rules().confirms(&n), "{t}");
    }
    // Anchored `called` patterns matching a clause in the middle of a text.
    for t in [
        "Verdachte man. Ja, gebeld",
        "inbraak, zijn er al.",
        "ok. they came",
    ] {
        let n = normalize(t);
        assert!(rules().confirms(&n), "{t}");
        assert!(rules().confirms_whole(&n), "{t}");
    }
}
