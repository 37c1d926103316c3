//! Request and response shapes, following LaunchDarkly's OpenAPI schemas
//! (`Project`, `Projects`, `Environment`, `Environments`, `EnvironmentPost`,
//! `SourceEnv`, `CallerIdentityRep`).
//!
//! Only the fields ld-eaas relies on are required; everything else is optional or
//! ignored so that LaunchDarkly adding fields never breaks decoding.

use std::collections::HashMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// `Link`: a related resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Link {
    #[serde(default)]
    pub href: Option<String>,
    #[serde(default, rename = "type")]
    pub media_type: Option<String>,
}

/// `CallerIdentityRep`: who a token belongs to. `accountId` names the rate-limit
/// account; `scopes` tells a `reader` token from a `writer` one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallerIdentity {
    pub account_id: Option<String>,
    pub auth_kind: Option<String>,
    pub token_kind: Option<String>,
    pub client_id: Option<String>,
    pub token_name: Option<String>,
    pub token_id: Option<String>,
    pub member_id: Option<String>,
    pub service_token: Option<bool>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `Project`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Project {
    #[serde(rename = "_id")]
    pub id: String,
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, rename = "_links")]
    pub links: HashMap<String, Link>,
}

/// `Environment`. The SDK keys are secrets: `Debug` redacts them, and they are read
/// through [`Environment::sdk_keys`] only.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// The client-side id.
    #[serde(rename = "_id")]
    pub id: String,
    pub key: String,
    pub name: String,
    pub color: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Critical environments are never deleted by ld-eaas.
    #[serde(default)]
    pub critical: bool,
    #[serde(default, rename = "_links")]
    pub links: HashMap<String, Link>,
    api_key: SecretString,
    mobile_key: SecretString,
}

/// The three credentials an application needs to reach one environment.
#[derive(Debug, Clone)]
pub struct SdkKeys {
    /// Server-side SDK key (`sdk-...`). Secret.
    pub server: SecretString,
    /// Mobile key (`mob-...`). Not strictly secret, but stored sealed all the same.
    pub mobile: SecretString,
    /// Client-side id; public by design.
    pub client_side_id: String,
}

impl Environment {
    /// The environment's default SDK credentials.
    ///
    /// The one place that knows where they come from: LaunchDarkly has announced that
    /// the environment-level `apiKey` / `mobileKey` fields will be deprecated in a
    /// future API version (environments can hold several SDK keys now), so only this
    /// function should change when that happens.
    pub fn sdk_keys(&self) -> SdkKeys {
        SdkKeys {
            server: self.api_key.clone(),
            mobile: self.mobile_key.clone(),
            client_side_id: self.id.clone(),
        }
    }

    /// Whether the environment carries every one of `tags` (LaunchDarkly compares
    /// tags case-insensitively in filters; so do we).
    pub fn has_tags(&self, tags: &[&str]) -> bool {
        tags.iter()
            .all(|wanted| self.tags.iter().any(|t| t.eq_ignore_ascii_case(wanted)))
    }
}

/// `SourceEnv`: the environment a new one is cloned from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceEnv {
    pub key: String,
    /// Optimistic lock on the source's version; normally unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

impl SourceEnv {
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            version: None,
        }
    }
}

/// `EnvironmentPost`: the body of a create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentPost {
    pub key: String,
    pub name: String,
    /// Six hex digits, no `#`.
    pub color: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceEnv>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure_mode: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_track_events: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_changes: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_comments: Option<bool>,
}

impl EnvironmentPost {
    /// A plain create with the three required fields; set the rest as needed.
    pub fn new(key: impl Into<String>, name: impl Into<String>, color: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            name: name.into(),
            color: color.into(),
            source: None,
            tags: Vec::new(),
            critical: None,
            default_ttl: None,
            secure_mode: None,
            default_track_events: None,
            confirm_changes: None,
            require_comments: None,
        }
    }
}

/// How a delete ended. A missing environment is an outcome, not an error: the goal
/// ("it is gone") is met either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// 204: we deleted it.
    Deleted,
    /// 404: it was already gone.
    AlreadyGone,
}

/// One page of `Projects` or `Environments`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub total_count: Option<u64>,
    #[serde(default, rename = "_links")]
    pub links: HashMap<String, Link>,
}

/// LaunchDarkly's error body: `{"code", "message"}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const ENVIRONMENT: &str = r#"{
        "_links": {"self": {"href": "/api/v2/projects/p/environments/e", "type": "application/json"}},
        "_id": "57be1db38b75bf0772d11384", "key": "e", "name": "E",
        "apiKey": "sdk-secret", "mobileKey": "mob-secret", "color": "F5A623",
        "defaultTtl": 5, "secureMode": true, "defaultTrackEvents": false,
        "requireComments": true, "confirmChanges": true, "tags": ["ops"],
        "critical": true, "somethingNew": {"nested": 1}
    }"#;

    #[test]
    fn environments_decode_with_unknown_fields_and_hide_their_keys() -> serde_json::Result<()> {
        let env: Environment = serde_json::from_str(ENVIRONMENT)?;
        assert!(env.critical);
        assert!(env.has_tags(&["OPS"]));
        let keys = env.sdk_keys();
        assert_eq!(keys.server.expose_secret(), "sdk-secret");
        assert_eq!(keys.mobile.expose_secret(), "mob-secret");
        assert_eq!(keys.client_side_id, "57be1db38b75bf0772d11384");
        let printed = format!("{env:?} {keys:?}");
        assert!(!printed.contains("sdk-secret") && !printed.contains("mob-secret"));
        Ok(())
    }

    #[test]
    fn a_create_body_has_only_what_was_set() -> serde_json::Result<()> {
        let mut post = EnvironmentPost::new("k", "N", "00FF00");
        post.source = Some(SourceEnv::new("staging"));
        post.tags = vec!["ld-eaas".into()];
        let json = serde_json::to_value(&post)?;
        assert_eq!(
            json,
            serde_json::json!({
                "key": "k", "name": "N", "color": "00FF00",
                "source": {"key": "staging"}, "tags": ["ld-eaas"]
            })
        );
        Ok(())
    }
}
