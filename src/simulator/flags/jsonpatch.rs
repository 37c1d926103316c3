//! JSON patches on a flag: an array of RFC 6902 operations, or LaunchDarkly's
//! `PatchWithComment` (`{"patch": [...], "comment": "..."}`), applied to the
//! flag's `FeatureFlag` representation. The simulator lets them change the flag's
//! `name` and `description` and, per environment, `on`, `offVariation`,
//! `fallthrough`, `rules`, `targets` and `contextTargets`; `test` may look anywhere.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::input::{
    array, clauses, invalid, object, optional_bool, optional_string, rollout, strings,
    variation_index,
};
use super::model::{SimFlag, SimFlagConfig, SimRule, SimServe, SimTarget};
use super::render;
use crate::simulator::error::ApiError;
use crate::simulator::model::SimProject;

static EDITABLE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"^/(name|description|environments/[^/]+/(on|offVariation|fallthrough|rules|targets|contextTargets)(/.*)?)$",
    )
    .ok()
});

fn editable(path: &str) -> bool {
    EDITABLE.as_ref().is_some_and(|re| re.is_match(path))
}

/// The operations of a JSON patch body.
fn operations(body: &Value) -> Result<&[Value], ApiError> {
    match body {
        Value::Array(ops) => Ok(ops),
        Value::Object(obj) => {
            optional_string(obj, "comment")?;
            array(obj, "patch")
        }
        _ => Err(invalid(
            "Invalid request body: expected a JSON patch array or {\"patch\": [...]}",
        )),
    }
}

/// Applies a JSON patch to flag `flag_key` of `project` (which must exist).
pub(crate) fn apply(
    project: &mut SimProject,
    flag_key: &str,
    body: &Value,
) -> Result<(), ApiError> {
    let ops = operations(body)?;
    if ops.is_empty() {
        return Err(invalid("patch must not be empty"));
    }
    let flag_index = project
        .flags
        .iter()
        .position(|f| f.key == flag_key)
        .ok_or_else(|| invalid(format!("Unknown flag key {flag_key:?}")))?;
    let flag = project.flags[flag_index].clone();
    let configs: Vec<_> = project
        .environments
        .iter()
        .filter_map(|e| e.flags.get(flag_key).map(|c| (e, c)))
        .collect();
    let mut doc = render::flag(&project.key, &flag, &configs, false);
    for (i, op) in ops.iter().enumerate() {
        apply_op(&mut doc, op).map_err(|e| invalid(format!("patch[{i}]: {}", e.message)))?;
    }

    let doc = object(&doc, "the flag")?;
    let name = doc.get("name").and_then(Value::as_str);
    let description = doc.get("description").and_then(Value::as_str);
    let (Some(name), Some(description)) = (name, description) else {
        return Err(invalid("name and description must stay strings"));
    };
    let mut changed = name != flag.name || description != flag.description;
    let envs = object(
        doc.get("environments").unwrap_or(&Value::Null),
        "environments",
    )?;
    for env in &mut project.environments {
        let (Some(patched), Some(current)) = (envs.get(&env.key), env.flags.get(flag_key)) else {
            continue;
        };
        let config = decode_config(&flag, current, patched)
            .map_err(|e| invalid(format!("environments/{}: {}", env.key, e.message)))?;
        if config != *current {
            let mut config = config;
            config.touch();
            env.flags.insert(flag_key.to_owned(), config);
            changed = true;
        }
    }
    let flag = &mut project.flags[flag_index];
    flag.name = name.to_owned();
    flag.description = description.to_owned();
    if changed {
        flag.version += 1;
    }
    Ok(())
}

/// The editable fields of one environment's patched `FeatureFlagConfig`.
fn decode_config(
    flag: &SimFlag,
    current: &SimFlagConfig,
    patched: &Value,
) -> Result<SimFlagConfig, ApiError> {
    let obj = object(patched, "the configuration")?;
    let on = match obj.get("on") {
        Some(Value::Bool(on)) => *on,
        _ => return Err(invalid("on must be a boolean")),
    };
    let mut config = current.clone();
    config.on = on;
    config.off_variation = variation_index(flag, obj, "offVariation")?;
    let fallthrough = object(
        obj.get("fallthrough").unwrap_or(&Value::Null),
        "fallthrough",
    )?;
    match serve(flag, fallthrough)? {
        SimServe::Variation(index) => {
            config.fallthrough_variation = index;
            config.fallthrough_rollout = None;
        }
        SimServe::Rollout(r) => config.fallthrough_rollout = Some(r),
    }
    config.rules = array(obj, "rules")?
        .iter()
        .map(|r| {
            let r = object(r, "a rule")?;
            Ok(SimRule {
                id: optional_string(r, "_id")?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                description: optional_string(r, "description")?,
                clauses: clauses(r)?,
                serve: serve(flag, r)?,
                track_events: optional_bool(r, "trackEvents")?,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    let mut targets = Vec::new();
    for (field, default_kind) in [("targets", "user"), ("contextTargets", "")] {
        for t in array(obj, field)? {
            let t = object(t, "a target")?;
            let kind =
                optional_string(t, "contextKind")?.unwrap_or_else(|| default_kind.to_owned());
            if kind.is_empty() {
                return Err(invalid("contextTargets[].contextKind is required"));
            }
            targets.push(SimTarget {
                context_kind: kind,
                variation: variation_index(flag, t, "variation")?,
                values: strings(t, "values")?,
            });
        }
    }
    config.targets = targets;
    Ok(config)
}

/// `{variation}` or `{rollout}` (a `VariationOrRolloutRep`, or a rule).
fn serve(flag: &SimFlag, obj: &Map<String, Value>) -> Result<SimServe, ApiError> {
    match (obj.get("variation"), obj.get("rollout")) {
        (Some(v), _) if !v.is_null() => Ok(SimServe::Variation(variation_index(
            flag,
            obj,
            "variation",
        )?)),
        (_, Some(r)) if !r.is_null() => Ok(SimServe::Rollout(rollout(flag, r)?)),
        _ => Err(invalid("variation or rollout is required")),
    }
}

/// One RFC 6902 operation.
fn apply_op(doc: &mut Value, op: &Value) -> Result<(), ApiError> {
    let op = object(op, "an operation")?;
    let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
    let path = op
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("path is required"))?;
    let value = || {
        op.get("value")
            .cloned()
            .ok_or_else(|| invalid(format!("value is required for {kind:?}")))
    };
    let from = || {
        op.get("from")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("from is required for {kind:?}")))
    };
    if kind != "test" && !editable(path) {
        return Err(invalid(format!(
            "path {path:?} cannot be patched in the LaunchDarkly simulator"
        )));
    }
    match kind {
        "add" => add(doc, path, value()?),
        "remove" => remove(doc, path).map(drop),
        "replace" => {
            remove(doc, path)?;
            add(doc, path, value()?)
        }
        "move" => {
            let from = from()?;
            if !editable(from) {
                return Err(invalid(format!("path {from:?} cannot be patched")));
            }
            let moved = remove(doc, from)?;
            add(doc, path, moved)
        }
        "copy" => {
            let copied = doc
                .pointer(from()?)
                .cloned()
                .ok_or_else(|| invalid("from does not exist"))?;
            add(doc, path, copied)
        }
        "test" => match doc.pointer(path) {
            Some(actual) if *actual == value()? => Ok(()),
            _ => Err(invalid(format!("test failed at {path:?}"))),
        },
        other => Err(invalid(format!("unknown op {other:?}"))),
    }
}

/// `(parent pointer, last token)` of a JSON pointer, the token unescaped.
fn split(path: &str) -> Result<(&str, String), ApiError> {
    let at = path
        .rfind('/')
        .ok_or_else(|| invalid(format!("{path:?} is not a JSON pointer")))?;
    let token = path[at + 1..].replace("~1", "/").replace("~0", "~");
    Ok((&path[..at], token))
}

fn array_index(token: &str, len: usize, inserting: bool) -> Result<usize, ApiError> {
    if inserting && token == "-" {
        return Ok(len);
    }
    let index: usize = token
        .parse()
        .map_err(|_| invalid(format!("{token:?} is not an array index")))?;
    let limit = if inserting {
        len
    } else {
        len.saturating_sub(1)
    };
    if index > limit || (!inserting && len == 0) {
        return Err(invalid(format!("array index {index} is out of range")));
    }
    Ok(index)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    let (parent, token) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(token, value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            let index = array_index(&token, items.len(), true)?;
            items.insert(index, value);
            Ok(())
        }
        _ => Err(invalid(format!("path {path:?} does not exist"))),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (parent, token) = split(path)?;
    let missing = || invalid(format!("path {path:?} does not exist"));
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&token).ok_or_else(missing),
        Some(Value::Array(items)) => {
            let index = array_index(&token, items.len(), false)?;
            Ok(items.remove(index))
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rfc6902_operations_change_only_what_they_name() -> Result<(), String> {
        let mut doc = json!({"a": {"b": [1, 2]}, "environments": {}});
        let ops = [
            json!({"op": "add", "path": "/a/b/-", "value": 3}),
            json!({"op": "add", "path": "/a/b/0", "value": 0}),
            json!({"op": "remove", "path": "/a/b/1"}),
            json!({"op": "test", "path": "/a/b", "value": [0, 2, 3]}),
        ];
        for op in &ops {
            let kind = op["op"].as_str().unwrap_or_default();
            let path = op["path"].as_str().unwrap_or_default();
            // Paths outside the editable set are refused before any change...
            assert!(apply_op(&mut doc.clone(), op).is_ok() == (kind == "test"));
            // ...so exercise the mechanics directly.
            match kind {
                "add" => add(&mut doc, path, op["value"].clone()),
                "remove" => remove(&mut doc, path).map(drop),
                _ => apply_op(&mut doc, op),
            }
            .map_err(|e| e.message)?;
        }
        assert_eq!(doc["a"]["b"], json!([0, 2, 3]));
        assert!(remove(&mut doc, "/a/b/9").is_err());
        assert!(add(&mut doc, "/nowhere/x", json!(1)).is_err());
        assert!(editable("/environments/e~1x/rules/0/clauses"));
        assert!(!editable("/environments/e/salt") && !editable("/key"));
        Ok(())
    }
}
