//! Typed identifiers, parsed once at the edge so the rest of the code cannot
//! hold an invalid one.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be {rule}")]
pub struct InvalidId {
    pub what: &'static str,
    pub rule: &'static str,
}

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $what:literal, $rule:literal, $re:literal) => {
        typed_id!($(#[$meta])* $name, $what, $rule, $re, dots_allowed = true);
    };
    ($(#[$meta:meta])* $name:ident, $what:literal, $rule:literal, $re:literal, dots_allowed = $dots:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, InvalidId> {
                static PATTERN: LazyLock<Regex> = LazyLock::new(|| {
                    #[allow(clippy::expect_used)]
                    Regex::new($re).expect("static regex")
                });
                // `.` and `..` match the patterns but name no resource in a
                // URL path (`/environments/../delete`).
                let dots = raw == "." || raw == "..";
                if PATTERN.is_match(raw) && ($dots || !dots) {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(InvalidId { what: $what, rule: $rule })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(raw: String) -> Result<Self, InvalidId> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

typed_id!(
    /// The vendor's opaque id for one customer organisation.
    TenantId,
    "tenant_id",
    "1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-', other than '.' and '..'",
    r"^[A-Za-z0-9._:-]{1,128}$",
    dots_allowed = false
);

typed_id!(
    /// The vendor's id for one ephemeral (preview) environment.
    EphemeralId,
    "ephemeral_id",
    "1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-', other than '.' and '..'",
    r"^[A-Za-z0-9._:-]{1,128}$",
    dots_allowed = false
);

typed_id!(
    /// A LaunchDarkly project key.
    ProjectKey,
    "project key",
    "1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
    r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$"
);

typed_id!(
    /// A LaunchDarkly environment key.
    EnvironmentKey,
    "environment key",
    "1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
    r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$"
);

typed_id!(
    /// A LaunchDarkly feature flag key.
    FlagKey,
    "flag key",
    "1-256 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
    r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,255}$"
);

typed_id!(
    /// A LaunchDarkly tag.
    Tag,
    "tag",
    "1-64 characters of letters, digits, '.', '_' or '-'",
    r"^[a-zA-Z0-9_.-]{1,64}$"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_follow_the_documented_rule() {
        assert!(TenantId::parse("acme-corp:eu.1_x").is_ok());
        assert!(TenantId::parse(&"a".repeat(128)).is_ok());
        assert!(TenantId::parse(&"a".repeat(129)).is_err());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("has space").is_err());
        assert!(TenantId::parse("slash/no").is_err());
        assert!(TenantId::parse("nul\0").is_err());
    }

    #[test]
    fn dot_and_dot_dot_are_not_ids() {
        for raw in [".", ".."] {
            assert!(TenantId::parse(raw).is_err());
            assert!(EphemeralId::parse(raw).is_err());
        }
        assert!(EphemeralId::parse("...").is_ok());
        assert!(EphemeralId::parse(".a").is_ok());
    }

    #[test]
    fn environment_keys_must_start_with_a_letter_or_digit() {
        assert!(EnvironmentKey::parse("eph-pr-1.a_b").is_ok());
        assert!(EnvironmentKey::parse("-lead").is_err());
        assert!(EnvironmentKey::parse("a b").is_err());
    }
}
