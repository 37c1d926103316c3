//! The optional body of a PUT, checked and put in one canonical form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EnvironmentError;
use crate::ids::{EnvironmentKey, FlagKey, ProjectKey, Tag};
use crate::naming::OWNER_TAG;
use crate::settings::{MAX_TTL_SECONDS, MIN_TTL_SECONDS};

/// The optional body of a PUT: what may differ from the tenant's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentRequest {
    /// The LaunchDarkly environment's name (default: the settings' template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Create the environment in this project instead of the settings' one
    /// (requires `source_environment_key`: source keys belong to a project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_key: Option<String>,
    /// Clone from this environment instead of the settings' source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_environment_key: Option<String>,
    /// Delete it this long after creation (default: the settings' TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    /// More LaunchDarkly tags, besides the ownership tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Flag key → the JSON value of one of its variations, served to every
    /// context in the new environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flags: BTreeMap<String, Value>,
}

/// At most this many flag choices in one request.
pub const MAX_REQUEST_FLAGS: usize = 50;
/// A flag value's JSON text is at most this long.
const MAX_FLAG_VALUE_BYTES: usize = 4096;
const MAX_REQUEST_TAGS: usize = 20;
const MAX_NAME_CHARS: usize = 128;

impl EnvironmentRequest {
    /// Checks the request and puts it in one canonical form, so that a repeat
    /// of the same request compares equal whatever its spelling.
    pub fn normalized(self) -> Result<Self, EnvironmentError> {
        let name = match self.name.as_deref().map(str::trim) {
            None => None,
            // The length as sent, as the OpenAPI document's `maxLength` counts.
            Some(n)
                if n.is_empty()
                    || self
                        .name
                        .as_ref()
                        .is_some_and(|raw| raw.chars().count() > MAX_NAME_CHARS) =>
            {
                return Err(EnvironmentError::InvalidRequest(format!(
                    "name must be 1-{MAX_NAME_CHARS} characters"
                )));
            }
            Some(n) => {
                crate::text::check("name", n)?;
                Some(n.to_owned())
            }
        };
        if let Some(project) = &self.project_key {
            ProjectKey::parse(project)
                .map_err(|e| EnvironmentError::InvalidRequest(format!("project_key: the {e}")))?;
            if self.source_environment_key.is_none() {
                return Err(EnvironmentError::InvalidRequest(
                    "project_key needs source_environment_key too: source environments belong \
                     to a project"
                        .to_owned(),
                ));
            }
        }
        if let Some(source) = &self.source_environment_key {
            EnvironmentKey::parse(source).map_err(|e| {
                EnvironmentError::InvalidRequest(format!("source_environment_key: the source {e}"))
            })?;
        }
        if let Some(ttl) = self.ttl_seconds {
            if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl) {
                return Err(EnvironmentError::InvalidRequest(format!(
                    "ttl_seconds must be between {} and {}",
                    MIN_TTL_SECONDS, MAX_TTL_SECONDS
                )));
            }
        }
        if self.tags.len() > MAX_REQUEST_TAGS {
            return Err(EnvironmentError::InvalidRequest(format!(
                "at most {MAX_REQUEST_TAGS} tags"
            )));
        }
        let mut tags: Vec<String> = Vec::with_capacity(self.tags.len());
        for tag in self.tags {
            Tag::parse(&tag)
                .map_err(|e| EnvironmentError::InvalidRequest(format!("tags: every {e}")))?;
            // Ownership tags are ours to set: a request must not forge them.
            if tag.to_ascii_lowercase().starts_with(OWNER_TAG) {
                return Err(EnvironmentError::InvalidRequest(format!(
                    "tags: '{tag}' is reserved (tags starting with '{}' mark ownership)",
                    OWNER_TAG
                )));
            }
            if !tags.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
                tags.push(tag);
            }
        }
        tags.sort();
        check_flags(&self.flags)?;
        Ok(Self {
            name,
            project_key: self.project_key,
            source_environment_key: self.source_environment_key,
            ttl_seconds: self.ttl_seconds,
            tags,
            flags: self.flags,
        })
    }
}

/// Flag choices: a bounded number, valid keys, bounded non-null values.
fn check_flags(flags: &BTreeMap<String, Value>) -> Result<(), EnvironmentError> {
    if flags.len() > MAX_REQUEST_FLAGS {
        return Err(EnvironmentError::InvalidRequest(format!(
            "flags: at most {MAX_REQUEST_FLAGS} flags"
        )));
    }
    for (key, value) in flags {
        FlagKey::parse(key)
            .map_err(|e| EnvironmentError::InvalidRequest(format!("flags: every {e}")))?;
        if value.is_null() {
            return Err(EnvironmentError::InvalidRequest(format!(
                "flags: '{key}' needs the value of one of the flag's variations, not null"
            )));
        }
        if value.to_string().len() > MAX_FLAG_VALUE_BYTES {
            return Err(EnvironmentError::InvalidRequest(format!(
                "flags: the value for '{key}' is longer than {MAX_FLAG_VALUE_BYTES} bytes"
            )));
        }
    }
    Ok(())
}
