//! Free text we accept (names, templates, tokens): refused when it holds a
//! character Postgres cannot store (NUL, in `text` and in `jsonb`) or that
//! has no business in a one-line value (any other control character), so
//! bad input is a 400 naming the field before anything is written or sent
//! to LaunchDarkly.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must not contain control characters (found U+{found:04X})")]
pub struct InvalidText {
    /// The field's name as the caller knows it (`display_name`, `name`, ...).
    pub field: &'static str,
    /// The first offending character's code point.
    pub found: u32,
}

/// Whether `c` is refused in free text: NUL (Postgres cannot store it), the
/// other C0 and C1 control characters and DEL.
pub fn is_refused(c: char) -> bool {
    c.is_control()
}

/// Checks one field's value.
pub fn check(field: &'static str, value: &str) -> Result<(), InvalidText> {
    match value.chars().find(|c| is_refused(*c)) {
        Some(c) => Err(InvalidText {
            field,
            found: u32::from(c),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nul_and_control_characters_are_refused_with_the_field_named() {
        for bad in [
            "a\0b",
            "\u{1}",
            "tab\there",
            "line\nbreak",
            "del\u{7f}",
            "c1\u{85}",
        ] {
            let err = check("display_name", bad).unwrap_err();
            assert_eq!(err.field, "display_name");
            assert!(err.to_string().starts_with("display_name "), "{err}");
        }
        assert_eq!(check("name", "x\0").unwrap_err().found, 0);
    }

    #[test]
    fn ordinary_text_in_any_script_is_accepted() {
        for good in [
            "Acme Corp",
            "Préview {ephemeral_id}",
            "日本語",
            "emoji 🚀",
            "",
        ] {
            assert!(check("name", good).is_ok(), "{good}");
        }
    }
}
