//! What the simulated LaunchDarkly holds: accounts, projects, environments, flags
//! and the per-environment configuration of each flag.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rand::RngCore;

pub use super::flags::model::{
    SimClause, SimFlag, SimFlagConfig, SimFlagState, SimRollout, SimRule, SimServe, SimTarget,
    SimVariation,
};

/// One environment, with the same fields as LaunchDarkly's `Environment` plus the
/// simulator's view of its flags and segments.
#[derive(Debug, Clone, PartialEq)]
pub struct SimEnvironment {
    /// `_id`, the client-side id: 24 hex digits like LaunchDarkly's.
    pub id: String,
    pub key: String,
    pub name: String,
    pub color: String,
    /// Server-side SDK key, `sdk-<uuid>`.
    pub api_key: String,
    /// Mobile key, `mob-<uuid>`.
    pub mobile_key: String,
    pub default_ttl: i64,
    pub secure_mode: bool,
    pub default_track_events: bool,
    pub require_comments: bool,
    pub confirm_changes: bool,
    pub tags: Vec<String>,
    pub critical: bool,
    /// Flag key → configuration in this environment.
    pub flags: BTreeMap<String, SimFlagConfig>,
    /// How many segments the environment holds (cloning refuses over 1,000).
    pub segment_count: usize,
    pub created_at: DateTime<Utc>,
}

impl SimEnvironment {
    /// A fresh environment with new keys and LaunchDarkly's defaults.
    pub fn new(key: &str, name: &str, color: &str) -> Self {
        Self {
            id: object_id(),
            key: key.to_owned(),
            name: name.to_owned(),
            color: color.to_owned(),
            api_key: format!("sdk-{}", uuid::Uuid::new_v4()),
            mobile_key: format!("mob-{}", uuid::Uuid::new_v4()),
            default_ttl: 0,
            secure_mode: false,
            default_track_events: false,
            require_comments: false,
            confirm_changes: false,
            tags: Vec::new(),
            critical: false,
            flags: BTreeMap::new(),
            segment_count: 0,
            created_at: Utc::now(),
        }
    }
}

/// A project and its environments, in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct SimProject {
    pub id: String,
    pub key: String,
    pub name: String,
    pub tags: Vec<String>,
    pub include_in_snippet_by_default: bool,
    pub flags: Vec<SimFlag>,
    pub environments: Vec<SimEnvironment>,
    pub created_at: DateTime<Utc>,
}

impl SimProject {
    pub fn new(key: &str, name: &str) -> Self {
        Self {
            id: object_id(),
            key: key.to_owned(),
            name: name.to_owned(),
            tags: Vec::new(),
            include_in_snippet_by_default: false,
            flags: Vec::new(),
            environments: Vec::new(),
            created_at: Utc::now(),
        }
    }

    pub fn environment(&self, key: &str) -> Option<&SimEnvironment> {
        self.environments.iter().find(|e| e.key == key)
    }

    pub fn environment_mut(&mut self, key: &str) -> Option<&mut SimEnvironment> {
        self.environments.iter_mut().find(|e| e.key == key)
    }

    /// Every flag of the project in its default (off) state: what a new,
    /// uncloned environment starts with.
    pub fn default_flag_states(&self) -> BTreeMap<String, SimFlagConfig> {
        self.flags
            .iter()
            .map(|f| (f.key.clone(), f.default_config()))
            .collect()
    }

    pub fn flag(&self, key: &str) -> Option<&SimFlag> {
        self.flags.iter().find(|f| f.key == key)
    }
}

/// An account: the unit LaunchDarkly rate-limits and tokens belong to.
#[derive(Debug, Clone, PartialEq)]
pub struct SimAccount {
    pub id: String,
    /// The member who consents on the OAuth page and owns personal tokens.
    pub member_id: String,
    pub projects: Vec<SimProject>,
}

impl SimAccount {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            member_id: object_id(),
            projects: Vec::new(),
        }
    }

    pub fn project(&self, key: &str) -> Option<&SimProject> {
        self.projects.iter().find(|p| p.key == key)
    }

    pub fn project_mut(&mut self, key: &str) -> Option<&mut SimProject> {
        self.projects.iter_mut().find(|p| p.key == key)
    }
}

/// A MongoDB-style ObjectID like LaunchDarkly's ids: 4 bytes of seconds since the
/// epoch, then 8 random bytes, as 24 lowercase hex digits.
pub fn object_id() -> String {
    let mut bytes = [0u8; 12];
    let secs = u32::try_from(Utc::now().timestamp()).unwrap_or(u32::MAX);
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    rand::thread_rng().fill_bytes(&mut bytes[4..]);
    hex::encode(bytes)
}

/// A random URL-safe secret with a recognisable prefix.
pub fn secret(prefix: &str) -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}
