//! The JSON of flags: `FeatureFlag` with its `environments` map of
//! `FeatureFlagConfig`, and the pieces (`Rule`, `Clause`, `Target`,
//! `VariationOrRolloutRep`) with every field the schemas require.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::model::{SimFlag, SimFlagConfig, SimRollout, SimRule, SimServe, SimTarget};
use crate::simulator::model::SimEnvironment;

fn link(href: String) -> Value {
    json!({"href": href, "type": "application/json"})
}

pub(crate) fn flags_path(project: &str) -> String {
    format!("/api/v2/flags/{project}")
}

/// The simulator's HTML page for an environment (what `_site` points at).
pub(crate) fn environment_page(project: &str, env: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("env", env)
        .append_pair("selected-env", env)
        .finish();
    format!("/projects/{project}/settings/environments?{query}")
}

/// A `FeatureFlag` with the configurations of `environments`. A `summary` leaves
/// out each configuration's targets, rules and prerequisites and adds `_summary`.
pub(crate) fn flag(
    project: &str,
    flag: &SimFlag,
    environments: &[(&SimEnvironment, &SimFlagConfig)],
    summary: bool,
) -> Value {
    let variations: Vec<Value> = flag
        .variations
        .iter()
        .map(|v| {
            let mut out = json!({"_id": v.id, "value": v.value});
            if let Some(name) = &v.name {
                out["name"] = json!(name);
            }
            out
        })
        .collect();
    let mut configs = Map::new();
    for (env, config) in environments {
        configs.insert(
            env.key.clone(),
            flag_config(project, flag, env, config, summary),
        );
    }
    json!({
        "_links": {
            "self": link(format!("{}/{}", flags_path(project), flag.key)),
            "parent": link(flags_path(project)),
        },
        "key": flag.key,
        "name": flag.name,
        "description": flag.description,
        "kind": flag.kind(),
        "_version": flag.version,
        "creationDate": flag.created_at.timestamp_millis(),
        "includeInSnippet": false,
        "clientSideAvailability": {"usingMobileKey": false, "usingEnvironmentId": false},
        "variations": variations,
        "temporary": flag.temporary,
        "tags": flag.tags,
        "goalIds": [],
        "experiments": {"baselineIdx": 0, "items": []},
        "customProperties": {},
        "archived": false,
        "deprecated": false,
        "defaults": {"onVariation": 0, "offVariation": flag.variations.len().saturating_sub(1)},
        "environments": configs,
    })
}

/// A stable per-(flag, environment) salt, as LaunchDarkly gives each configuration.
fn salt(env: &SimEnvironment, flag: &SimFlag) -> String {
    let digest = Sha256::digest(format!("{}/{}", env.id, flag.key).as_bytes());
    hex::encode(&digest[..16])
}

fn flag_config(
    project: &str,
    flag: &SimFlag,
    env: &SimEnvironment,
    config: &SimFlagConfig,
    summary: bool,
) -> Value {
    let mut out = json!({
        "on": config.on,
        "archived": false,
        "salt": salt(env, flag),
        "sel": salt(env, flag).chars().rev().collect::<String>(),
        "lastModified": config.last_modified.timestamp_millis(),
        "version": config.version,
        "offVariation": config.off_variation,
        "fallthrough": serve(&config.fallthrough()),
        "_site": {"href": environment_page(project, &env.key), "type": "text/html"},
        "_environmentName": env.name,
        "trackEvents": config.track_events,
        "trackEventsFallthrough": config.track_events_fallthrough,
    });
    if summary {
        out["_summary"] = summary_of(flag, config);
    } else {
        let (users, others): (Vec<&SimTarget>, Vec<&SimTarget>) = config
            .targets
            .iter()
            .partition(|t| t.context_kind == "user");
        out["targets"] = Value::Array(users.into_iter().map(target).collect());
        out["contextTargets"] = Value::Array(others.into_iter().map(target).collect());
        out["rules"] = Value::Array(config.rules.iter().map(rule).collect());
        out["prerequisites"] = json!([]);
    }
    out
}

/// `VariationOrRolloutRep`.
pub(crate) fn serve(serve: &SimServe) -> Value {
    match serve {
        SimServe::Variation(index) => json!({"variation": index}),
        SimServe::Rollout(rollout) => json!({"rollout": rollout_json(rollout)}),
    }
}

fn rollout_json(rollout: &SimRollout) -> Value {
    let variations: Vec<Value> = rollout
        .variations
        .iter()
        .map(|(variation, weight)| json!({"variation": variation, "weight": weight}))
        .collect();
    let mut out = json!({"variations": variations});
    if let Some(by) = &rollout.bucket_by {
        out["bucketBy"] = json!(by);
    }
    if let Some(kind) = &rollout.context_kind {
        out["contextKind"] = json!(kind);
    }
    out
}

pub(crate) fn target(target: &SimTarget) -> Value {
    json!({"values": target.values, "variation": target.variation, "contextKind": target.context_kind})
}

pub(crate) fn rule(rule: &SimRule) -> Value {
    let clauses: Vec<Value> = rule
        .clauses
        .iter()
        .map(|c| {
            json!({
                "_id": c.id, "contextKind": c.context_kind, "attribute": c.attribute,
                "op": c.op, "values": c.values, "negate": c.negate,
            })
        })
        .collect();
    let mut out = json!({"_id": rule.id, "clauses": clauses, "trackEvents": rule.track_events});
    if let Some(description) = &rule.description {
        out["description"] = json!(description);
    }
    match &rule.serve {
        SimServe::Variation(index) => out["variation"] = json!(index),
        SimServe::Rollout(rollout) => out["rollout"] = rollout_json(rollout),
    }
    out
}

/// `FlagSummary`: per variation, how many rules and targets serve it.
fn summary_of(flag: &SimFlag, config: &SimFlagConfig) -> Value {
    let mut variations = Map::new();
    for index in 0..flag.variations.len() {
        let rules = config
            .rules
            .iter()
            .filter(|r| r.serve == SimServe::Variation(index))
            .count();
        let count = |user: bool| -> usize {
            config
                .targets
                .iter()
                .filter(|t| t.variation == index && (t.context_kind == "user") == user)
                .map(|t| t.values.len())
                .sum()
        };
        let mut entry = json!({
            "rules": rules, "nullRules": 0, "targets": count(true), "contextTargets": count(false),
        });
        if config.fallthrough() == SimServe::Variation(index) {
            entry["isFallthrough"] = json!(true);
        }
        if config.off_variation == index {
            entry["isOff"] = json!(true);
        }
        variations.insert(index.to_string(), entry);
    }
    json!({"variations": variations, "prerequisites": 0})
}
