//! The body of `postEnvironment` (`EnvironmentPost`), checked the way LaunchDarkly
//! checks it: required `name`, `key`, `color`; key and tag character rules; typed
//! optional fields. Unknown fields are ignored, as LaunchDarkly ignores them.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::error::ApiError;

static KEY: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$").ok());
static TAG: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9_.-]{1,64}$").ok());
static COLOR: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[0-9a-fA-F]{6}$").ok());

fn is_match(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(s))
}

/// A resource key as LaunchDarkly allows it.
pub(crate) fn valid_key(key: &str) -> bool {
    is_match(&KEY, key)
}

pub(crate) fn valid_tag(tag: &str) -> bool {
    is_match(&TAG, tag)
}

/// A checked `EnvironmentPost`.
#[derive(Debug, Clone)]
pub(crate) struct NewEnvironment {
    pub key: String,
    pub name: String,
    pub color: String,
    pub default_ttl: i64,
    pub secure_mode: bool,
    pub default_track_events: bool,
    pub confirm_changes: bool,
    pub require_comments: bool,
    pub tags: Vec<String>,
    pub source: Option<String>,
    pub critical: bool,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid_request(message)
}

fn required_string(body: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Err(invalid(format!("{field} is required"))),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(invalid(format!("{field} must not be empty")))
        }
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(invalid(format!("{field} must be a string"))),
    }
}

fn optional_bool(body: &Map<String, Value>, field: &str) -> Result<bool, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(format!("{field} must be a boolean"))),
    }
}

/// Parses and checks a create body.
pub(crate) fn environment_post(bytes: &[u8]) -> Result<NewEnvironment, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("Invalid request body: not valid JSON ({e})")))?;
    let Value::Object(body) = value else {
        return Err(invalid("Invalid request body: expected a JSON object"));
    };
    let name = required_string(&body, "name")?;
    let key = required_string(&body, "key")?;
    let color = required_string(&body, "color")?;
    if !valid_key(&key) {
        return Err(invalid(format!(
            "Invalid key {key:?}: keys must start with a letter or digit and contain only letters, digits, '.', '_' and '-'"
        )));
    }
    if !is_match(&COLOR, &color) {
        return Err(invalid(format!(
            "Invalid color {color:?}: expected six hexadecimal digits without '#'"
        )));
    }
    let default_ttl = match body.get("defaultTtl") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|ttl| *ttl >= 0)
            .ok_or_else(|| invalid("defaultTtl must be a non-negative integer (minutes)"))?,
        Some(_) => return Err(invalid("defaultTtl must be an integer")),
    };
    let tags = match body.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut tags = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(tag) if valid_tag(tag) => tags.push(tag.clone()),
                    Value::String(tag) => {
                        return Err(invalid(format!(
                            "Invalid tag {tag:?}: tags are 1-64 characters of letters, digits, '.', '_' and '-'"
                        )));
                    }
                    _ => return Err(invalid("tags must be an array of strings")),
                }
            }
            tags.dedup();
            tags
        }
        Some(_) => return Err(invalid("tags must be an array of strings")),
    };
    let source = match body.get("source") {
        None | Some(Value::Null) => None,
        Some(Value::Object(source)) => match source.get("key") {
            Some(Value::String(key)) if !key.is_empty() => Some(key.clone()),
            _ => return Err(invalid("source.key is required when source is given")),
        },
        Some(_) => return Err(invalid("source must be an object with a key")),
    };
    Ok(NewEnvironment {
        key,
        name,
        color,
        default_ttl,
        secure_mode: optional_bool(&body, "secureMode")?,
        default_track_events: optional_bool(&body, "defaultTrackEvents")?,
        confirm_changes: optional_bool(&body, "confirmChanges")?,
        require_comments: optional_bool(&body, "requireComments")?,
        tags,
        source,
        critical: optional_bool(&body, "critical")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_of_keys_tags_and_colors_hold() {
        assert!(
            valid_key("a")
                && valid_key("9a.b_c-d")
                && !valid_key("-a")
                && !valid_key("a b")
                && !valid_key("")
        );
        assert!(valid_tag("ld-eaas.default") && !valid_tag(&"x".repeat(65)) && !valid_tag("a+b"));
        let ok = environment_post(
            br#"{"key":"k","name":"N","color":"00ff00","tags":["a"],"source":{"key":"s"}}"#,
        );
        assert!(matches!(ok, Ok(ref e) if e.source.as_deref() == Some("s") && e.tags == ["a"]));
        for bad in [
            &br##"{"key":"k","name":"N","color":"#00ff00"}"##[..],
            br#"{"key":"k","name":"N"}"#,
            br#"{"key":"_k","name":"N","color":"000000"}"#,
            br#"{"key":"k","name":"N","color":"000000","tags":[""]}"#,
            br#"{"key":"k","name":"N","color":"000000","source":{}}"#,
            br#"{"key":1,"name":"N","color":"000000"}"#,
            b"not json",
            b"[]",
        ] {
            assert!(
                environment_post(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
