//! Reading the pieces of a flag change from JSON, checked the way LaunchDarkly
//! checks them: a clear 400 (`invalid_request`) that names the field at fault.

use serde_json::{Map, Value};

use super::model::{SimClause, SimFlag, SimRollout};
use crate::simulator::error::ApiError;

pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid_request(message)
}

pub(crate) fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| invalid(format!("{what} must be an object")))
}

pub(crate) fn string<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(invalid(format!("{field} is required"))),
        Some(_) => Err(invalid(format!("{field} must be a string"))),
    }
}

pub(crate) fn optional_string(
    obj: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{field} must be a string"))),
    }
}

pub(crate) fn optional_bool(obj: &Map<String, Value>, field: &str) -> Result<bool, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(format!("{field} must be a boolean"))),
    }
}

pub(crate) fn array<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a [Value], ApiError> {
    match obj.get(field) {
        Some(Value::Array(items)) => Ok(items),
        None | Some(Value::Null) => Err(invalid(format!("{field} is required"))),
        Some(_) => Err(invalid(format!("{field} must be an array"))),
    }
}

/// An array of strings (context keys, tags).
pub(crate) fn strings(obj: &Map<String, Value>, field: &str) -> Result<Vec<String>, ApiError> {
    array(obj, field)?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("{field} must be an array of strings")))
        })
        .collect()
}

/// A variation index that exists on `flag`.
pub(crate) fn variation_index(
    flag: &SimFlag,
    obj: &Map<String, Value>,
    field: &str,
) -> Result<usize, ApiError> {
    let index = match obj.get(field) {
        Some(Value::Number(n)) => n.as_u64(),
        None | Some(Value::Null) => return Err(invalid(format!("{field} is required"))),
        Some(_) => None,
    };
    index
        .and_then(|i| usize::try_from(i).ok())
        .filter(|i| *i < flag.variations.len())
        .ok_or_else(|| {
            invalid(format!(
                "{field} must be the index of one of the flag's {} variations",
                flag.variations.len()
            ))
        })
}

/// The index of the variation whose `_id` is `obj[field]`.
pub(crate) fn variation_id(
    flag: &SimFlag,
    obj: &Map<String, Value>,
    field: &str,
) -> Result<usize, ApiError> {
    let id = string(obj, field)?;
    flag.variation_index(id).ok_or_else(|| {
        invalid(format!(
            "Unknown variation ID {id:?}: flag {:?} has no such variation",
            flag.key
        ))
    })
}

/// A weight in thousandths of a percent.
fn weight(value: &Value) -> Result<u32, ApiError> {
    value
        .as_u64()
        .and_then(|w| u32::try_from(w).ok())
        .filter(|w| *w <= 100_000)
        .ok_or_else(|| invalid("a rollout weight must be an integer from 0 to 100000"))
}

/// Checks that a rollout's weights add up to 100%.
pub(crate) fn checked_rollout(rollout: SimRollout) -> Result<SimRollout, ApiError> {
    let total: u64 = rollout.variations.iter().map(|(_, w)| u64::from(*w)).sum();
    if total != 100_000 {
        return Err(invalid(format!(
            "rollout weights must add up to 100000 (100%), not {total}"
        )));
    }
    Ok(rollout)
}

/// A rollout in a semantic patch: `rolloutWeights` (variation id → weight),
/// `rolloutBucketBy`, `rolloutContextKind`.
pub(crate) fn semantic_rollout(
    flag: &SimFlag,
    obj: &Map<String, Value>,
) -> Result<SimRollout, ApiError> {
    let weights = object(
        obj.get("rolloutWeights").unwrap_or(&Value::Null),
        "rolloutWeights",
    )?;
    let mut variations = Vec::new();
    for (id, w) in weights {
        let index = flag.variation_index(id).ok_or_else(|| {
            invalid(format!(
                "Unknown variation ID {id:?} in rolloutWeights: flag {:?} has no such variation",
                flag.key
            ))
        })?;
        variations.push((index, weight(w)?));
    }
    variations.sort_unstable();
    checked_rollout(SimRollout {
        variations,
        bucket_by: optional_string(obj, "rolloutBucketBy")?,
        context_kind: optional_string(obj, "rolloutContextKind")?,
    })
}

/// A `Rollout` as LaunchDarkly represents it: `variations: [{variation, weight}]`.
pub(crate) fn rollout(flag: &SimFlag, value: &Value) -> Result<SimRollout, ApiError> {
    let obj = object(value, "rollout")?;
    let mut variations = Vec::new();
    for item in array(obj, "variations")? {
        let item = object(item, "rollout.variations[]")?;
        let index = variation_index(flag, item, "variation")?;
        let w = item
            .get("weight")
            .ok_or_else(|| invalid("weight is required"))?;
        variations.push((index, weight(w)?));
    }
    checked_rollout(SimRollout {
        variations,
        bucket_by: optional_string(obj, "bucketBy")?,
        context_kind: optional_string(obj, "contextKind")?,
    })
}

/// A `Clause`; a new one gets an id.
pub(crate) fn clause(value: &Value) -> Result<SimClause, ApiError> {
    let obj = object(value, "a clause")?;
    let values = array(obj, "values")?.to_vec();
    Ok(SimClause {
        id: optional_string(obj, "_id")?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        context_kind: optional_string(obj, "contextKind")?.unwrap_or_else(|| "user".to_owned()),
        attribute: string(obj, "attribute")?.to_owned(),
        op: string(obj, "op")?.to_owned(),
        values,
        negate: optional_bool(obj, "negate")?,
    })
}

pub(crate) fn clauses(obj: &Map<String, Value>) -> Result<Vec<SimClause>, ApiError> {
    match obj.get("clauses") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(clause).collect(),
        Some(_) => Err(invalid("clauses must be an array")),
    }
}
