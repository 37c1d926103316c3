//! Feature flags, as LaunchDarkly's OpenAPI schemas describe them (`FeatureFlag`,
//! `FeatureFlagConfig`, `Variation`, `VariationOrRolloutRep`, `Rule`, `Target`),
//! the semantic-patch instructions ld-eaas sends, and the flag calls' errors.
//!
//! As with the other models, only what ld-eaas reads is required; LaunchDarkly
//! adding fields never breaks decoding.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::LdError;

/// `FeatureFlag`: the flag, its variations and its configuration in the
/// environments asked for.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FeatureFlag {
    pub key: String,
    pub name: String,
    /// `boolean` or `multivariate`.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default, rename = "_version")]
    pub version: Option<i64>,
    pub variations: Vec<Variation>,
    /// Environment key → configuration (only the environments asked for).
    #[serde(default)]
    pub environments: HashMap<String, FlagConfig>,
}

/// `Variation`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Variation {
    /// What semantic patches name the variation by.
    #[serde(default, rename = "_id")]
    pub id: Option<String>,
    pub value: Value,
    #[serde(default)]
    pub name: Option<String>,
}

/// `FeatureFlagConfig`: the flag in one environment. A summary (from a list)
/// leaves out rules, targets and prerequisites; a single flag has them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagConfig {
    pub on: bool,
    #[serde(default)]
    pub off_variation: Option<usize>,
    #[serde(default)]
    pub fallthrough: Option<VariationOrRollout>,
    #[serde(default)]
    pub rules: Vec<FlagRule>,
    /// Individual targets of kind `user`.
    #[serde(default)]
    pub targets: Vec<FlagTarget>,
    /// Individual targets of the other kinds.
    #[serde(default)]
    pub context_targets: Vec<FlagTarget>,
    #[serde(default)]
    pub prerequisites: Vec<Value>,
    #[serde(default)]
    pub version: Option<i64>,
}

/// `VariationOrRolloutRep`: one variation, or a percentage rollout.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VariationOrRollout {
    #[serde(default)]
    pub variation: Option<usize>,
    #[serde(default)]
    pub rollout: Option<Value>,
}

/// `Rule`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FlagRule {
    #[serde(default, rename = "_id")]
    pub id: Option<String>,
    #[serde(default)]
    pub variation: Option<usize>,
    #[serde(default)]
    pub rollout: Option<Value>,
    #[serde(default)]
    pub clauses: Vec<Value>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `Target`: these context keys get `variation`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagTarget {
    #[serde(default)]
    pub values: Vec<String>,
    pub variation: usize,
    #[serde(default)]
    pub context_kind: Option<String>,
}

impl FeatureFlag {
    /// The variation whose value is `value` (JSON equality: `true` is not `"true"`).
    pub fn variation_for(&self, value: &Value) -> Option<(usize, &Variation)> {
        self.variations
            .iter()
            .enumerate()
            .find(|(_, v)| v.value == *value)
    }

    /// The flag's configuration in `environment`, if the answer holds it.
    pub fn environment(&self, environment: &str) -> Option<&FlagConfig> {
        self.environments.get(environment)
    }

    /// Whether `environment` serves `value` to every context: targeting off with
    /// that off variation, or on with no individual targets, no rules and no
    /// prerequisites, falling through to it. Needs a full configuration (from
    /// [`get_feature_flag`](super::LdClient::get_feature_flag)), not a summary.
    pub fn serves_everyone(&self, environment: &str, value: &Value) -> bool {
        let (Some((index, _)), Some(config)) =
            (self.variation_for(value), self.environment(environment))
        else {
            return false;
        };
        if !config.on {
            return config.off_variation == Some(index);
        }
        let untargeted = config
            .targets
            .iter()
            .chain(&config.context_targets)
            .all(|t| t.values.is_empty());
        let fallthrough = config
            .fallthrough
            .as_ref()
            .is_some_and(|f| f.variation == Some(index) && f.rollout.is_none());
        untargeted && config.rules.is_empty() && config.prerequisites.is_empty() && fallthrough
    }
}

/// One semantic-patch instruction, with LaunchDarkly's `kind` and parameter
/// names (`Content-Type: application/json; domain-model=launchdarkly.semanticpatch`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Instruction {
    TurnFlagOn,
    TurnFlagOff,
    UpdateOffVariation {
        variation_id: String,
    },
    UpdateFallthroughVariationOrRollout {
        variation_id: String,
    },
    RemoveRule {
        rule_id: String,
    },
    /// LaunchDarkly's rule objects; an empty list removes every rule.
    ReplaceRules {
        rules: Vec<Value>,
    },
    /// Removes every individual target (of any kind) of one variation.
    ClearTargets {
        variation_id: String,
    },
    RemoveTargets {
        context_kind: String,
        variation_id: String,
        values: Vec<String>,
    },
    /// Replaces all individual targets; an empty list removes them all.
    ReplaceTargets {
        targets: Vec<TargetInput>,
    },
}

/// One entry of [`Instruction::ReplaceTargets`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetInput {
    pub context_kind: String,
    pub variation_id: String,
    pub values: Vec<String>,
}

impl Instruction {
    /// The instructions that make an environment serve variation `variation_id`
    /// to every context, whatever it had: targeting on, the fallthrough and the
    /// off variation (served when a prerequisite fails) set to it, every rule and
    /// individual target removed. Needs the custom-role actions `updateOn`,
    /// `updateFallthrough`, `updateOffVariation`, `updateRules` and `updateTargets`.
    pub fn serve_to_everyone(variation_id: &str) -> Vec<Instruction> {
        vec![
            Instruction::TurnFlagOn,
            Instruction::UpdateFallthroughVariationOrRollout {
                variation_id: variation_id.to_owned(),
            },
            Instruction::UpdateOffVariation {
                variation_id: variation_id.to_owned(),
            },
            Instruction::ReplaceRules { rules: Vec::new() },
            Instruction::ReplaceTargets {
                targets: Vec::new(),
            },
        ]
    }
}

/// The body of a semantic patch.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SemanticPatch<'a> {
    pub environment_key: &'a str,
    pub instructions: &'a [Instruction],
}

/// What went wrong reading or changing a flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlagError {
    /// 404: the project has no flag with this key (or the project itself is gone
    /// or invisible to the token).
    #[error("LaunchDarkly has no flag {flag:?} in project {project:?}")]
    FlagNotFound { project: String, flag: String },
    /// The flag came back without a configuration for the environment: the
    /// project has no such environment.
    #[error("LaunchDarkly has no environment {environment:?} in project {project:?}")]
    EnvironmentNotFound {
        project: String,
        environment: String,
    },
    /// Anything else, as for every other call (a 400 carries LaunchDarkly's
    /// explanation, e.g. an unknown variation id).
    #[error(transparent)]
    Ld(#[from] LdError),
}

impl FlagError {
    /// Whether the same request may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Ld(e) if e.is_retryable())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn instructions_serialize_with_launchdarkly_kinds_and_parameters() -> serde_json::Result<()> {
        let body = serde_json::to_value(SemanticPatch {
            environment_key: "preview",
            instructions: &Instruction::serve_to_everyone("v-1"),
        })?;
        assert_eq!(
            body,
            json!({
                "environmentKey": "preview",
                "instructions": [
                    {"kind": "turnFlagOn"},
                    {"kind": "updateFallthroughVariationOrRollout", "variationId": "v-1"},
                    {"kind": "updateOffVariation", "variationId": "v-1"},
                    {"kind": "replaceRules", "rules": []},
                    {"kind": "replaceTargets", "targets": []},
                ]
            })
        );
        let remove = Instruction::RemoveTargets {
            context_kind: "user".into(),
            variation_id: "v".into(),
            values: vec!["k".into()],
        };
        assert_eq!(
            serde_json::to_value(remove)?,
            json!({"kind": "removeTargets", "contextKind": "user", "variationId": "v", "values": ["k"]})
        );
        Ok(())
    }

    #[test]
    fn a_flag_serves_everyone_only_without_targets_rules_or_a_rollout() -> serde_json::Result<()> {
        let mut flag: FeatureFlag = serde_json::from_value(json!({
            "key": "f", "name": "F", "kind": "boolean", "_version": 3, "somethingNew": 1,
            "variations": [{"_id": "t", "value": true}, {"_id": "f", "value": false}],
            "environments": {"e": {
                "on": true, "offVariation": 1, "fallthrough": {"variation": 0},
                "rules": [], "targets": [],
                "contextTargets": [{"contextKind": "user", "variation": 1, "values": []}],
                "prerequisites": [], "salt": "s", "_site": {"href": "/x"}
            }}
        }))?;
        assert!(flag.serves_everyone("e", &json!(true)));
        assert!(!flag.serves_everyone("e", &json!(false)));
        assert!(!flag.serves_everyone("e", &json!("true")));
        assert!(!flag.serves_everyone("other", &json!(true)));
        let config = flag.environments.get_mut("e").map(|c| {
            c.targets.push(FlagTarget {
                values: vec!["k".into()],
                variation: 1,
                context_kind: None,
            });
        });
        assert!(config.is_some());
        assert!(!flag.serves_everyone("e", &json!(true)));
        Ok(())
    }
}
