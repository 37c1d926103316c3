//! Semantic patches (`Content-Type: application/json;
//! domain-model=launchdarkly.semanticpatch`): `{environmentKey, instructions,
//! comment}`, each instruction `{kind, ...}` with LaunchDarkly's kinds and
//! parameters. All or nothing: the caller applies them to a copy.

use serde_json::{Map, Value};

use super::input::{
    array, clauses, invalid, object, optional_bool, optional_string, semantic_rollout, string,
    strings, variation_id,
};
use super::model::{SimFlag, SimFlagConfig, SimRule, SimServe, SimTarget};
use crate::simulator::error::ApiError;
use crate::simulator::model::SimProject;

/// Instructions on one environment's configuration (they need `environmentKey`).
pub const ENVIRONMENT_INSTRUCTIONS: &[&str] = &[
    "turnFlagOn",
    "turnFlagOff",
    "updateOffVariation",
    "updateFallthroughVariationOrRollout",
    "addRule",
    "removeRule",
    "replaceRules",
    "updateRuleVariationOrRollout",
    "addTargets",
    "removeTargets",
    "clearTargets",
    "replaceTargets",
    "addUserTargets",
    "removeUserTargets",
    "clearUserTargets",
    "replaceUserTargets",
];

/// Instructions on the flag itself (every environment).
pub const FLAG_INSTRUCTIONS: &[&str] =
    &["updateName", "updateDescription", "addTags", "removeTags"];

/// Kinds LaunchDarkly documents that the simulator does not implement: a 400
/// that says so, rather than "unknown".
const NOT_SIMULATED: &[&str] = &[
    "addClauses",
    "addPrerequisite",
    "addValuesToClause",
    "addVariation",
    "removeClauses",
    "removePrerequisite",
    "removeValuesFromClause",
    "removeVariation",
    "reorderRules",
    "replacePrerequisites",
    "updateClause",
    "updateDefaultVariation",
    "updatePrerequisite",
    "updateRuleDescription",
    "updateRuleTrackEvents",
    "updateTrackEvents",
    "updateTrackEventsFallthrough",
    "updateVariation",
    "addCustomProperties",
    "makeFlagPermanent",
    "makeFlagTemporary",
    "removeCustomProperties",
    "removeMaintainer",
    "replaceCustomProperties",
    "turnOffClientSideAvailability",
    "turnOnClientSideAvailability",
    "updateMaintainerMember",
    "updateMaintainerTeam",
    "archiveFlag",
    "deleteFlag",
    "deprecateFlag",
    "restoreDeprecatedFlag",
    "restoreFlag",
];

/// Applies a semantic patch to flag `flag_key` of `project` (which must exist).
pub(crate) fn apply(
    project: &mut SimProject,
    flag_key: &str,
    body: &Value,
) -> Result<(), ApiError> {
    let body = object(body, "the semantic patch")?;
    let instructions = array(body, "instructions")?;
    if instructions.is_empty() {
        return Err(invalid("instructions must not be empty"));
    }
    optional_string(body, "comment")?;
    let env_key = optional_string(body, "environmentKey")?;
    if let Some(key) = &env_key {
        if project.environment(key).is_none() {
            return Err(invalid(format!("Unknown environment key {key:?}")));
        }
    }
    let flag_index = project
        .flags
        .iter()
        .position(|f| f.key == flag_key)
        .ok_or_else(|| invalid(format!("Unknown flag key {flag_key:?}")))?;
    let mut touched = false;
    for (i, instruction) in instructions.iter().enumerate() {
        let instruction = object(instruction, &format!("instructions[{i}]"))?;
        let kind = string(instruction, "kind")
            .map_err(|e| invalid(format!("instructions[{i}]: {}", e.message)))?;
        let in_context =
            |e: ApiError| invalid(format!("instructions[{i}] ({kind}): {}", e.message));
        if FLAG_INSTRUCTIONS.contains(&kind) {
            flag_level(&mut project.flags[flag_index], kind, instruction).map_err(in_context)?;
            continue;
        }
        if !ENVIRONMENT_INSTRUCTIONS.contains(&kind) {
            return Err(if NOT_SIMULATED.contains(&kind) {
                invalid(format!(
                    "instructions[{i}]: kind {kind:?} is not supported by the LaunchDarkly simulator"
                ))
            } else {
                invalid(format!(
                    "instructions[{i}]: unknown instruction kind {kind:?}"
                ))
            });
        }
        let Some(env_key) = env_key.as_deref() else {
            return Err(invalid(format!(
                "environmentKey is required for instruction {kind:?}"
            )));
        };
        let flag = project.flags[flag_index].clone();
        let env = project
            .environment_mut(env_key)
            .ok_or_else(|| invalid(format!("Unknown environment key {env_key:?}")))?;
        let config = env
            .flags
            .entry(flag.key.clone())
            .or_insert_with(|| flag.default_config());
        environment_level(&flag, config, kind, instruction).map_err(in_context)?;
        touched = true;
    }
    if touched {
        if let Some(config) = env_key
            .as_deref()
            .and_then(|k| project.environment_mut(k))
            .and_then(|e| e.flags.get_mut(flag_key))
        {
            config.touch();
        }
    }
    project.flags[flag_index].version += 1;
    Ok(())
}

fn flag_level(flag: &mut SimFlag, kind: &str, obj: &Map<String, Value>) -> Result<(), ApiError> {
    match kind {
        "updateName" => flag.name = string(obj, "value")?.to_owned(),
        "updateDescription" => flag.description = string(obj, "value")?.to_owned(),
        "addTags" => {
            for tag in strings(obj, "values")? {
                if !flag.tags.contains(&tag) {
                    flag.tags.push(tag);
                }
            }
        }
        _ => {
            let remove = strings(obj, "values")?;
            flag.tags.retain(|t| !remove.contains(t));
        }
    }
    Ok(())
}

/// `variationId`, or a rollout (`rolloutWeights`, ...).
fn serve_of(flag: &SimFlag, obj: &Map<String, Value>) -> Result<SimServe, ApiError> {
    if obj.get("variationId").is_some_and(|v| !v.is_null()) {
        return Ok(SimServe::Variation(variation_id(flag, obj, "variationId")?));
    }
    if obj.get("rolloutWeights").is_some_and(|v| !v.is_null()) {
        return Ok(SimServe::Rollout(semantic_rollout(flag, obj)?));
    }
    Err(invalid("variationId or rolloutWeights is required"))
}

/// A rule of `addRule` / `replaceRules`.
fn new_rule(flag: &SimFlag, obj: &Map<String, Value>) -> Result<SimRule, ApiError> {
    Ok(SimRule {
        id: uuid::Uuid::new_v4().to_string(),
        description: optional_string(obj, "description")?,
        clauses: clauses(obj)?,
        serve: serve_of(flag, obj)?,
        track_events: optional_bool(obj, "trackEvents")?,
    })
}

fn context_kind(obj: &Map<String, Value>) -> Result<String, ApiError> {
    Ok(optional_string(obj, "contextKind")?.unwrap_or_else(|| "user".to_owned()))
}

/// Adds `values` as targets of `variation`; a key already targeted at another
/// variation of the same kind is an error, as in LaunchDarkly.
fn add_targets(
    config: &mut SimFlagConfig,
    kind: String,
    variation: usize,
    values: Vec<String>,
) -> Result<(), ApiError> {
    for value in &values {
        let elsewhere = config.targets.iter().any(|t| {
            t.context_kind == kind && t.variation != variation && t.values.contains(value)
        });
        if elsewhere {
            return Err(invalid(format!(
                "{kind} {value:?} is already targeted by another variation"
            )));
        }
    }
    let position = config
        .targets
        .iter()
        .position(|t| t.context_kind == kind && t.variation == variation);
    let target = match position {
        Some(i) => &mut config.targets[i],
        None => {
            config.targets.push(SimTarget {
                context_kind: kind,
                variation,
                values: Vec::new(),
            });
            let last = config.targets.len() - 1;
            &mut config.targets[last]
        }
    };
    for value in values {
        if !target.values.contains(&value) {
            target.values.push(value);
        }
    }
    Ok(())
}

fn replace_targets(
    flag: &SimFlag,
    config: &mut SimFlagConfig,
    obj: &Map<String, Value>,
    users_only: bool,
) -> Result<(), ApiError> {
    let mut replaced = config.clone();
    replaced
        .targets
        .retain(|t| users_only && t.context_kind != "user");
    for item in array(obj, "targets")? {
        let item = object(item, "targets[]")?;
        let kind = if users_only {
            "user".to_owned()
        } else {
            context_kind(item)?
        };
        let variation = variation_id(flag, item, "variationId")?;
        add_targets(&mut replaced, kind, variation, strings(item, "values")?)?;
    }
    config.targets = replaced.targets;
    Ok(())
}

fn environment_level(
    flag: &SimFlag,
    config: &mut SimFlagConfig,
    kind: &str,
    obj: &Map<String, Value>,
) -> Result<(), ApiError> {
    match kind {
        "turnFlagOn" => config.on = true,
        "turnFlagOff" => config.on = false,
        "updateOffVariation" => config.off_variation = variation_id(flag, obj, "variationId")?,
        "updateFallthroughVariationOrRollout" => match serve_of(flag, obj)? {
            SimServe::Variation(index) => {
                config.fallthrough_variation = index;
                config.fallthrough_rollout = None;
            }
            SimServe::Rollout(rollout) => config.fallthrough_rollout = Some(rollout),
        },
        "addRule" => {
            let rule = new_rule(flag, obj)?;
            match optional_string(obj, "beforeRuleId")? {
                None => config.rules.push(rule),
                Some(before) => {
                    let at = config
                        .rules
                        .iter()
                        .position(|r| r.id == before)
                        .ok_or_else(|| invalid(format!("Unknown rule ID {before:?}")))?;
                    config.rules.insert(at, rule);
                }
            }
        }
        // Like LaunchDarkly: removing a rule that is not there does nothing.
        "removeRule" => {
            let id = string(obj, "ruleId")?;
            config.rules.retain(|r| r.id != id);
        }
        "replaceRules" => {
            config.rules = array(obj, "rules")?
                .iter()
                .map(|r| new_rule(flag, object(r, "rules[]")?))
                .collect::<Result<_, _>>()?;
        }
        "updateRuleVariationOrRollout" => {
            let id = string(obj, "ruleId")?;
            let serve = serve_of(flag, obj)?;
            let rule = config
                .rules
                .iter_mut()
                .find(|r| r.id == id)
                .ok_or_else(|| invalid(format!("Unknown rule ID {id:?}")))?;
            rule.serve = serve;
        }
        "addTargets" | "addUserTargets" => {
            let kind = if kind == "addTargets" {
                context_kind(obj)?
            } else {
                "user".to_owned()
            };
            let variation = variation_id(flag, obj, "variationId")?;
            add_targets(config, kind, variation, strings(obj, "values")?)?;
        }
        "removeTargets" | "removeUserTargets" => {
            let kind = if kind == "removeTargets" {
                context_kind(obj)?
            } else {
                "user".to_owned()
            };
            let variation = variation_id(flag, obj, "variationId")?;
            let values = strings(obj, "values")?;
            for target in config
                .targets
                .iter_mut()
                .filter(|t| t.context_kind == kind && t.variation == variation)
            {
                target.values.retain(|v| !values.contains(v));
            }
            config.targets.retain(|t| !t.values.is_empty());
        }
        "clearTargets" | "clearUserTargets" => {
            let variation = variation_id(flag, obj, "variationId")?;
            let users_only = kind == "clearUserTargets";
            config
                .targets
                .retain(|t| t.variation != variation || (users_only && t.context_kind != "user"));
        }
        "replaceTargets" => replace_targets(flag, config, obj, false)?,
        _ => replace_targets(flag, config, obj, true)?,
    }
    Ok(())
}
