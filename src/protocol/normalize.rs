//! Text normalisation before classification: the rules are written against
//! this form, so members' spelling habits do not defeat them.
//!
//! - lowercase, accents removed (`appelé` → `appele`), `’` → `'`;
//! - a run of three or more equal letters becomes one (`verdaaacht` → `verdacht`);
//! - emoji and punctuation become spaces, except `?` and `!` (questions and
//!   imperatives matter), `.`/`;`/`:` at the end of a clause, and `,`;
//! - every line break becomes a sentence end (`\n`);
//! - white space is folded.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// Normalises a message for the rule sets (see the module docs).
///
/// One pass over the characters into one buffer, then one pass that
/// shortens runs and trims lines into the result: no intermediate
/// `Vec<char>`s. ASCII characters skip the Unicode decomposition (they are
/// their own NFD form), which is most of every message.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // The mapping of a `.` looks at the character after it, so each
    // character is mapped when its successor is known.
    let mut pending: Option<char> = None;
    let mut feed = |c: char| {
        if let Some(p) = pending.replace(c) {
            map_char(&mut out, p, Some(c));
        }
    };
    for c in text.chars() {
        if c.is_ascii() {
            feed(c.to_ascii_lowercase());
        } else {
            // NFD without combining marks is each character's own
            // decomposition without its marks: canonical reordering only
            // moves marks (characters of a non-zero combining class, which
            // are all combining marks; a test checks this for every char).
            decompose_canonical(c, |d| {
                if !is_combining_mark(d) {
                    for l in d.to_lowercase() {
                        feed(l);
                    }
                }
            });
        }
    }
    if let Some(p) = pending {
        map_char(&mut out, p, None);
    }
    shorten_runs_and_trim_lines(&out)
}

/// Maps one lowercased, unaccented character (see the module docs) and
/// appends it with [`push_folded`].
fn map_char(out: &mut String, c: char, next: Option<char>) {
    let m = match c {
        'a'..='z' | '0'..='9' => c,
        'ß' => 's',
        'æ' => 'a',
        'œ' => 'o',
        'ø' => 'o',
        '\'' | '’' | '‘' | '`' | '´' => ' ',
        '?' | '¿' => '?',
        '!' | '¡' => '!',
        ',' => ',',
        // A dot inside a number or an abbreviation is not a sentence end.
        '.' | ';' | ':' | '…' => match next {
            None => '.',
            Some(n) if n.is_whitespace() || n == '.' => '.',
            Some(_) => ' ',
        },
        '\n' | '\r' => '\n',
        c if c.is_alphabetic() => c,
        _ => ' ',
    };
    push_folded(out, m);
}

/// Collapses runs of 3+ equal letters (and repeated marks), then trims
/// white space at line edges and drops empty lines, in one pass.
fn shorten_runs_and_trim_lines(mapped: &str) -> String {
    let mut lines = Lines {
        out: String::with_capacity(mapped.len()),
        line_start: 0,
        line_empty: true,
    };
    let mut chars = mapped.chars().peekable();
    while let Some(c) = chars.next() {
        let mut run = 1;
        while chars.next_if_eq(&c).is_some() {
            run += 1;
        }
        // Stretched letters and repeated marks count once.
        if (run >= 3 && c.is_alphabetic()) || matches!(c, '?' | '!' | '.' | ',' | '\n') {
            lines.push(c);
        } else {
            for _ in 0..run {
                lines.push(c);
            }
        }
    }
    lines.end_line();
    lines.out
}

/// Builds `text.split('\n').map(str::trim).filter(non-empty).join("\n")`
/// character by character.
struct Lines {
    out: String,
    /// Where the current line's text starts in `out`.
    line_start: usize,
    /// No character but white space on the current line yet.
    line_empty: bool,
}

impl Lines {
    fn push(&mut self, c: char) {
        if c == '\n' {
            self.end_line();
            return;
        }
        if self.line_empty {
            if c.is_whitespace() {
                return;
            }
            if !self.out.is_empty() {
                self.out.push('\n');
            }
            self.line_start = self.out.len();
            self.line_empty = false;
        }
        self.out.push(c);
    }

    fn end_line(&mut self) {
        if !self.line_empty {
            let kept = self.out[self.line_start..].trim_end().len();
            self.out.truncate(self.line_start + kept);
        }
        self.line_empty = true;
    }
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

/// The first implementation of [`normalize`], kept as the reference the
/// faster one is tested against.
#[cfg(test)]
fn normalize_reference(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = unicode_normalization::UnicodeNormalization::nfd(text)
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

    /// Texts whose normalisation is easy to get subtly wrong.
    const TRICKY: &[&str] = &[
        "",
        " ",
        "\n",
        "\r\n\r\n",
        "🚨🚨🚨",
        "👮‍♂️",
        "Quelqu’un a APPELÉ la police ?",
        "VERDAAAACHT!!!",
        "verdaaacht",
        "aáa àÀa",
        "Wat??? Echt?!?! ...",
        "om 10.30u, 1.5 km verder...",
        "einde.",
        "einde. ",
        "einde.\nnieuw",
        "a;b: c…d… e.",
        "Tip: bel 101",
        "line one\r\nline two \r\n  \n three",
        "  leading and trailing  ",
        "İstanbul IĞDIR ıi",
        "Straße STRASSE ß ẞ",
        "æble œuvre øre Æ Œ Ø",
        "Müller, Köln, Übermaß, Ärger",
        "ﬁnd ﬂat ﬀ ﬃ",
        "Ⅻ ② ¹ ½",
        "𝐁𝐨𝐥𝐝 𝕯𝖔𝖚𝖇𝖑𝖊",
        "Ελληνικά ΣΊΣΥΦΟΣ",
        "Русский ТЕКСТ ёЁ",
        "한국어 텍스트",
        "日本語のテキスト",
        "עברית العربية",
        "e\u{301}\u{301}\u{323}e\u{323}\u{301}",
        "\u{301}start with a mark",
        "a\u{a0}b\u{2028}c\u{2029}d\u{3000}e\te",
        "K Å Ω ǅ ǈ",
        "'quoted' `back` ´acute´ ‘single’",
        "¿Qué? ¡Sí!",
        ",,, , ,",
        "a , b ,c",
        "....",
        ". . .",
        "x\n\n\ny",
        "eee\u{301}e",
        "sßs ææa",
        "1000 0000 !!! aa aaa",
    ];

    fn check(text: &str) {
        assert_eq!(normalize(text), normalize_reference(text), "{text:?}");
    }

    #[test]
    fn the_fast_normalisation_equals_the_reference_on_tricky_texts() {
        for t in TRICKY {
            check(t);
        }
    }

    #[test]
    fn the_fast_normalisation_equals_the_reference_on_the_data_sets() {
        let texts = crate::protocol::tests::dev_texts();
        for t in &texts {
            check(t);
        }
        let n = texts.len();
        assert!(n > 500, "only {n} texts");
    }

    #[test]
    fn the_fast_normalisation_equals_the_reference_on_random_texts() {
        // Short texts from an alphabet of the characters that take a
        // special path: runs, marks, dots before all kinds of successors.
        let alphabet: Vec<char> = "aAeE zZs.;:…,?!¿¡'’`´\n\r\t -1\u{a0}\u{301}\u{323}éÉèßẞæœøİıIﬁ①ΣσςЁ한🚨\u{200d}\u{2028}"
            .chars()
            .collect();
        let mut rng = fastrand::Rng::with_seed(101);
        for _ in 0..200_000 {
            let len = rng.usize(0..12);
            let t: String = (0..len)
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            check(&t);
        }
    }

    #[test]
    fn marks_are_the_only_characters_canonical_ordering_moves() {
        // normalize drops combining marks instead of running full NFD,
        // which is the same only if every character with a non-zero
        // combining class (the ones NFD reorders) is a combining mark.
        use unicode_normalization::char::canonical_combining_class;
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            if canonical_combining_class(c) != 0 {
                assert!(is_combining_mark(c), "{c:?}");
            }
        }
    }

    #[test]
    fn question_marks_repeated_stay_with_their_sentence() {
        let n = normalize("Iemand al gebeld??? ja");
        assert_eq!(sentences(&n), vec!["iemand al gebeld?", "ja"]);
    }
}
