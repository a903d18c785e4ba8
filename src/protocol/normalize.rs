//! Text normalisation before classification: the rules are written against
//! this form, so members' spelling habits do not defeat them.
//!
//! - lowercase, accents removed (`appelé` → `appele`), `’` → `'`;
//! - a run of three or more equal letters becomes one (`verdaaacht` → `verdacht`);
//! - emoji and punctuation become spaces, except `?` and `!` (questions and
//!   imperatives matter), `.`/`;`/`:` at the end of a clause, and `,`;
//! - every line break becomes a sentence end (`\n`);
//! - white space is folded.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Normalises a message for the rule sets (see the module docs).
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let mapped: Option<char> = match c {
            'a'..='z' | '0'..='9' => Some(c),
            'ß' => Some('s'),
            'æ' => Some('a'),
            'œ' => Some('o'),
            'ø' => Some('o'),
            '\'' | '’' | '‘' | '`' | '´' => Some(' '),
            '?' | '¿' => Some('?'),
            '!' | '¡' => Some('!'),
            ',' => Some(','),
            // A dot inside a number or an abbreviation is not a sentence end.
            '.' | ';' | ':' | '…' => match next {
                None => Some('.'),
                Some(n) if n.is_whitespace() || n == '.' => Some('.'),
                Some(_) => Some(' '),
            },
            '\n' | '\r' => Some('\n'),
            c if c.is_alphabetic() => Some(c),
            _ => Some(' '),
        };
        if let Some(m) = mapped {
            push_folded(&mut out, m);
        }
        i += 1;
    }
    // Collapse runs of 3+ equal letters, fold spaces around separators.
    let mut folded = String::with_capacity(out.len());
    let v: Vec<char> = out.chars().collect();
    let mut j = 0;
    while j < v.len() {
        let c = v[j];
        let mut k = j;
        while k < v.len() && v[k] == c {
            k += 1;
        }
        let run = k - j;
        // Stretched letters and repeated marks count once.
        if (c.is_alphabetic() && run >= 3) || matches!(c, '?' | '!' | '.' | ',' | '\n') {
            folded.push(c);
        } else {
            for _ in 0..run {
                folded.push(c);
            }
        }
        j = k;
    }
    // Trim spaces at line edges.
    folded
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn push_folded(out: &mut String, c: char) {
    if c == ' ' {
        if !out.ends_with(' ') && !out.ends_with('\n') && !out.is_empty() {
            out.push(' ');
        }
        return;
    }
    if matches!(c, '?' | '!' | '.' | ',' | '\n') && out.ends_with(' ') {
        out.pop();
    }
    out.push(c);
    if matches!(c, '?' | '!' | '.' | ',') {
        out.push(' ');
    }
}

/// Splits normalised text into sentences, each with its end mark (`?`, `!`, `.`).
pub fn sentences(normalized: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in normalized.char_indices() {
        if matches!(c, '?' | '!' | '.' | '\n') {
            let end = i + c.len_utf8();
            // Keep `??`, `?!` together with the sentence they close.
            let s = normalized[start..end].trim();
            let s = s.trim_start_matches(['?', '!', '.', '\n', ' ']);
            if !s.is_empty() && s != "\n" {
                out.push(s.trim_end_matches('\n').trim());
            }
            start = end;
        }
    }
    let tail = normalized[start..].trim();
    if !tail.is_empty() {
        out.push(tail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_case_and_apostrophes_are_folded() {
        assert_eq!(
            normalize("Quelqu’un a APPELÉ la police ?"),
            "quelqu un a appele la police?"
        );
    }

    #[test]
    fn stretched_letters_are_shortened() {
        assert_eq!(normalize("VERDAAAACHT!!!"), "verdacht!");
        assert_eq!(normalize("gebeeeeld"), "gebeld");
        // Two equal letters are real Dutch spelling and stay.
        assert_eq!(normalize("verwittigd, heel snel"), "verwittigd, heel snel");
    }

    #[test]
    fn emoji_disappear_and_numbers_stay() {
        assert_eq!(normalize("🚨 101 gebeld 👮‍♂️"), "101 gebeld");
        assert_eq!(normalize("plaat 1-ABC-234"), "plaat 1 abc 234");
        assert_eq!(normalize("om 10.30u"), "om 10 30u");
    }

    #[test]
    fn a_message_splits_into_sentences_with_their_marks() {
        let n = normalize("Verdachte man gezien. 101 is verwittigd!\nHeeft iemand beelden?");
        assert_eq!(
            sentences(&n),
            vec![
                "verdachte man gezien.",
                "101 is verwittigd!",
                "heeft iemand beelden?"
            ]
        );
    }

    #[test]
    fn question_marks_repeated_stay_with_their_sentence() {
        let n = normalize("Iemand al gebeld??? ja");
        assert_eq!(sentences(&n), vec!["iemand al gebeld?", "ja"]);
    }
}
