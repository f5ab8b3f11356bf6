//! Reading an answer from a model's text and matching it exactly: pure functions, no I/O.

use crate::config::{Extract, ExtractRule};

/// The answer `how` reads from `text`, or `None` when its rule finds nothing.
pub fn extract(text: &str, how: &Extract) -> Option<String> {
    let text = match how.after.as_deref().filter(|m| !m.is_empty()) {
        Some(marker) => &text[text.rfind(marker)? + marker.len()..],
        None => text,
    };
    match how.rule {
        ExtractRule::LastNumber => last_number(text),
        ExtractRule::FirstLine => text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| l.trim_end_matches('.').trim().to_string()),
        ExtractRule::Whole => Some(text.trim().to_string()).filter(|t| !t.is_empty()),
    }
}

/// The last number in `text`: digits with an optional sign, thousands commas and a decimal
/// part (`-1,234.50` → `-1234.50`); a final period is the sentence's.
fn last_number(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut end = b.len();
    loop {
        // The last digit at or before `end`.
        let last = b[..end].iter().rposition(u8::is_ascii_digit)?;
        let mut start = last;
        while start > 0
            && (b[start - 1].is_ascii_digit() || b[start - 1] == b',' || b[start - 1] == b'.')
        {
            start -= 1;
        }
        let raw = text[start..=last].trim_start_matches([',', '.']);
        let negative = start > 0 && b[start - 1] == b'-';
        let digits: String = raw.chars().filter(|c| *c != ',').collect();
        if !digits.is_empty() {
            return Some(match negative {
                true => format!("-{digits}"),
                false => digits,
            });
        }
        end = start;
    }
}

/// Whether an extracted answer is the expected one: numbers by value under `LastNumber`
/// (`42.0` is `42`, `1,000` is `1000`), text ignoring case and surrounding space otherwise.
pub fn matches(got: Option<&str>, expected: &str, rule: ExtractRule) -> bool {
    let Some(got) = got else {
        return false;
    };
    if rule == ExtractRule::LastNumber {
        let num = |s: &str| s.trim().replace(',', "").parse::<f64>().ok();
        if let (Some(a), Some(b)) = (num(got), num(expected)) {
            return (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        }
    }
    got.trim().eq_ignore_ascii_case(expected.trim())
}

/// An answer that is not `right`: a number plus one, else a word no answer is.
pub fn wrong_answer(right: &str) -> String {
    match right.trim().replace(',', "").parse::<i64>() {
        Ok(n) => (n + 1).to_string(),
        Err(_) => match right.trim().parse::<f64>() {
            Ok(x) => (x + 1.0).to_string(),
            Err(_) => format!("not {right}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(rule: ExtractRule, after: Option<&str>) -> Extract {
        Extract {
            rule,
            after: after.map(str::to_string),
        }
    }

    #[test]
    fn the_last_number_is_read_with_its_sign_commas_and_decimals() {
        let n = |t: &str| extract(t, &Extract::default());
        assert_eq!(n("The answer is 42.").as_deref(), Some("42"));
        assert_eq!(n("3 apples and 1,234 pears").as_deref(), Some("1234"));
        assert_eq!(n("it is -17 degrees").as_deref(), Some("-17"));
        assert_eq!(n("pi is 3.14.").as_deref(), Some("3.14"));
        assert_eq!(n("no digits here"), None);
        assert_eq!(n("").as_deref(), None);
        let gsm = rule(ExtractRule::LastNumber, Some("####"));
        assert_eq!(extract("2 + 3 = 5\n#### 5", &gsm).as_deref(), Some("5"));
        assert_eq!(extract("2 + 3 = 5", &gsm), None);
    }

    #[test]
    fn lines_and_whole_texts_compare_ignoring_case() {
        let first = rule(ExtractRule::FirstLine, None);
        assert_eq!(
            extract("\n  Paris.\nIt is.", &first).as_deref(),
            Some("Paris")
        );
        assert!(matches(Some("paris"), "Paris", ExtractRule::FirstLine));
        assert_eq!(extract("  \n ", &rule(ExtractRule::Whole, None)), None);
        assert!(matches(Some("42.0"), "42", ExtractRule::LastNumber));
        assert!(matches(Some("1000"), "1,000", ExtractRule::LastNumber));
        assert!(!matches(Some("43"), "42", ExtractRule::LastNumber));
        assert!(!matches(None, "42", ExtractRule::LastNumber));
        assert_eq!(wrong_answer("41"), "42");
        assert_eq!(wrong_answer("blue"), "not blue");
        assert!(!matches(
            Some(&wrong_answer("2.5")),
            "2.5",
            ExtractRule::LastNumber
        ));
    }
}
