//! Flags: the project-wide definition (variations) and the per-environment
//! configuration (on/off, off variation, fallthrough, rules, individual targets)
//! LaunchDarkly's `FeatureFlag` and `FeatureFlagConfig` describe.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// A flag's simple targeting state in one environment: on/off, the fallthrough
/// variation and the off variation. What tests and the seed set; an environment
/// holds the whole [`SimFlagConfig`] it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFlagState {
    /// Targeting on or off.
    pub on: bool,
    /// The variation served when targeting is on and no rule matches.
    pub fallthrough_variation: usize,
    /// The variation served when targeting is off.
    pub off_variation: usize,
}

impl Default for SimFlagState {
    /// A new boolean flag: off, serving `false` (variation 1).
    fn default() -> Self {
        Self {
            on: false,
            fallthrough_variation: 0,
            off_variation: 1,
        }
    }
}

/// A percentage rollout: `(variation index, weight in thousandths of a percent)`,
/// weights summing to 100,000.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRollout {
    pub variations: Vec<(usize, u32)>,
    /// The context attribute hashed into a bucket (`key` when `None`).
    pub bucket_by: Option<String>,
    /// The context kind bucketed (`user` when `None`).
    pub context_kind: Option<String>,
}

/// What a rule or the fallthrough serves: one variation or a rollout.
#[derive(Debug, Clone, PartialEq)]
pub enum SimServe {
    Variation(usize),
    Rollout(SimRollout),
}

/// One condition of a rule, as LaunchDarkly's `Clause`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimClause {
    pub id: String,
    /// `user` unless said otherwise.
    pub context_kind: String,
    pub attribute: String,
    /// `in`, `startsWith`, `endsWith`, `contains` (others never match).
    pub op: String,
    pub values: Vec<Value>,
    pub negate: bool,
}

/// A targeting rule: when every clause matches, serve `serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRule {
    pub id: String,
    pub description: Option<String>,
    pub clauses: Vec<SimClause>,
    pub serve: SimServe,
    pub track_events: bool,
}

/// Individual targets: these context keys of `context_kind` get `variation`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimTarget {
    pub context_kind: String,
    pub variation: usize,
    pub values: Vec<String>,
}

/// A flag's whole configuration in one environment (LaunchDarkly's
/// `FeatureFlagConfig`): what cloning copies and patches change.
#[derive(Debug, Clone, PartialEq)]
pub struct SimFlagConfig {
    pub on: bool,
    /// The variation served when targeting is off.
    pub off_variation: usize,
    /// The fallthrough's variation (ignored while `fallthrough_rollout` is set).
    pub fallthrough_variation: usize,
    /// A percentage rollout on the fallthrough, instead of one variation.
    pub fallthrough_rollout: Option<SimRollout>,
    pub rules: Vec<SimRule>,
    /// Individual targets of every context kind (`targets` for `user`,
    /// `contextTargets` for the others in LaunchDarkly's representation).
    pub targets: Vec<SimTarget>,
    pub track_events: bool,
    pub track_events_fallthrough: bool,
    /// Bumped by every change in this environment.
    pub version: i64,
    pub last_modified: DateTime<Utc>,
}

impl SimFlagConfig {
    /// What the fallthrough serves.
    pub fn fallthrough(&self) -> SimServe {
        match &self.fallthrough_rollout {
            Some(rollout) => SimServe::Rollout(rollout.clone()),
            None => SimServe::Variation(self.fallthrough_variation),
        }
    }

    /// Records a change: a new version and modification time.
    pub fn touch(&mut self) {
        self.version += 1;
        self.last_modified = Utc::now();
    }
}

impl From<SimFlagState> for SimFlagConfig {
    fn from(state: SimFlagState) -> Self {
        Self {
            on: state.on,
            off_variation: state.off_variation,
            fallthrough_variation: state.fallthrough_variation,
            fallthrough_rollout: None,
            rules: Vec::new(),
            targets: Vec::new(),
            track_events: false,
            track_events_fallthrough: false,
            version: 1,
            last_modified: Utc::now(),
        }
    }
}

/// One of a flag's variations (LaunchDarkly's `Variation`).
#[derive(Debug, Clone, PartialEq)]
pub struct SimVariation {
    /// `_id`: a UUID, what semantic patches name a variation by.
    pub id: String,
    pub value: Value,
    pub name: Option<String>,
}

impl SimVariation {
    pub fn new(value: Value) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            value,
            name: None,
        }
    }
}

/// A flag as defined on its project (the variations are shared by every environment).
#[derive(Debug, Clone, PartialEq)]
pub struct SimFlag {
    pub key: String,
    pub name: String,
    pub description: String,
    pub variations: Vec<SimVariation>,
    pub tags: Vec<String>,
    pub temporary: bool,
    /// `_version`: bumped by every change to the flag or one of its configurations.
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

impl SimFlag {
    fn with_variations(key: &str, name: &str, variations: Vec<SimVariation>) -> Self {
        Self {
            key: key.to_owned(),
            name: name.to_owned(),
            description: String::new(),
            variations,
            tags: Vec::new(),
            temporary: true,
            version: 1,
            created_at: Utc::now(),
        }
    }

    /// A boolean flag: variation 0 is `true`, 1 is `false`.
    pub fn boolean(key: &str, name: &str) -> Self {
        Self::with_variations(
            key,
            name,
            vec![
                SimVariation::new(Value::Bool(true)),
                SimVariation::new(Value::Bool(false)),
            ],
        )
    }

    /// A multivariate flag with string variations, in order.
    pub fn multivariate(key: &str, name: &str, values: &[&str]) -> Self {
        let variations = values
            .iter()
            .map(|v| SimVariation::new(Value::String((*v).to_owned())))
            .collect();
        Self::with_variations(key, name, variations)
    }

    /// `boolean` when the variations are exactly `true`, `false`; else `multivariate`.
    pub fn kind(&self) -> &'static str {
        let values: Vec<&Value> = self.variations.iter().map(|v| &v.value).collect();
        if values == [&Value::Bool(true), &Value::Bool(false)] {
            "boolean"
        } else {
            "multivariate"
        }
    }

    /// The index of the variation with `_id` `id`.
    pub fn variation_index(&self, id: &str) -> Option<usize> {
        self.variations.iter().position(|v| v.id == id)
    }

    /// The configuration a new, uncloned environment starts with: off, serving
    /// the last variation.
    pub fn default_config(&self) -> SimFlagConfig {
        SimFlagConfig::from(SimFlagState {
            on: false,
            fallthrough_variation: 0,
            off_variation: self.variations.len().saturating_sub(1),
        })
    }
}
