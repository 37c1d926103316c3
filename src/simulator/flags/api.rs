//! The flag operations: getFeatureFlags, getFeatureFlag, patchFeatureFlag.

use std::cmp::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::model::{SimFlag, SimFlagConfig};
use super::{jsonpatch, render, semantic};
use crate::simulator::auth::Caller;
use crate::simulator::error::ApiError;
use crate::simulator::listing::{ListQuery, has_all_tags, matches_query, sort_by, wanted_tags};
use crate::simulator::model::{SimEnvironment, SimProject};
use crate::simulator::state::{SharedState, SimState};

type ApiResult = Result<Response, ApiError>;

/// What `expand` may name on the flag operations (accepted; nothing extra to show).
const EXPAND_FIELDS: &[&str] = &["codeReferences", "evaluation", "migrationSettings"];

/// The media-type parameter that makes a PATCH body a semantic patch.
pub const SEMANTIC_PATCH_PARAMETER: &str = "domain-model=launchdarkly.semanticpatch";

fn project_not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("Unknown project key {key:?}"))
}

fn flag_not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("Unknown flag key {key:?}"))
}

fn visible_project<'a>(
    state: &'a SimState,
    caller: &Caller,
    key: &str,
) -> Result<&'a SimProject, ApiError> {
    caller.require_project(key)?;
    state
        .account(&caller.account_id)
        .and_then(|a| a.project(key))
        .ok_or_else(|| project_not_found(key))
}

/// The `env` parameters (repeatable), and whether `summary` was turned off.
fn env_and_summary(query: Option<&str>) -> Result<(Vec<String>, bool), ApiError> {
    let mut envs = Vec::new();
    let mut summary = true;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "env" => envs.push(value.into_owned()),
            "summary" => {
                summary = match value.as_ref() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    other => {
                        return Err(ApiError::invalid_request(format!(
                            "Invalid query parameter summary: {other:?} is not a boolean"
                        )));
                    }
                }
            }
            _ => {}
        }
    }
    Ok((envs, summary))
}

/// The configurations of `flag` in the environments named (every one if none;
/// unknown keys are left out, as a filter leaves them out).
fn configs<'a>(
    project: &'a SimProject,
    flag: &SimFlag,
    envs: &[String],
) -> Vec<(&'a SimEnvironment, &'a SimFlagConfig)> {
    project
        .environments
        .iter()
        .filter(|e| envs.is_empty() || envs.contains(&e.key))
        .filter_map(|e| e.flags.get(&flag.key).map(|c| (e, c)))
        .collect()
}

/// `GET /api/v2/flags/{projectKey}`
pub(crate) async fn list_flags(
    State(shared): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(project_key): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let mut query = ListQuery::parse_with(
        raw.as_deref(),
        shared.settings.max_page_limit,
        &["query", "tags"],
        &["key", "name", "creationDate"],
        EXPAND_FIELDS,
    )?;
    let (envs, summary) = env_and_summary(raw.as_deref())?;
    let tag = url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "tag")
        .map(|(_, value)| value.into_owned());
    query.keep = envs.iter().map(|e| ("env".to_owned(), e.clone())).collect();
    if !summary {
        query.keep.push(("summary".to_owned(), "0".to_owned()));
    }
    let state = shared.lock();
    let project = visible_project(&state, &caller, &project_key)?;
    let mut flags: Vec<&SimFlag> = project
        .flags
        .iter()
        .filter(|f| {
            query
                .filter("query")
                .all(|q| matches_query(q, &f.key, &f.name))
        })
        .filter(|f| {
            query
                .filter("tags")
                .all(|t| has_all_tags(&f.tags, &wanted_tags(t)))
        })
        .filter(|f| {
            tag.as_ref()
                .is_none_or(|t| has_all_tags(&f.tags, std::slice::from_ref(t)))
        })
        .collect();
    sort_by(&mut flags, &query.sort, |field, a, b| match field {
        "key" => a.key.cmp(&b.key),
        "name" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
        "creationDate" => a.created_at.cmp(&b.created_at),
        _ => Ordering::Equal,
    });
    // Without `env`, LaunchDarkly keeps to the summary whatever `summary` says.
    let full = !summary && !envs.is_empty();
    let total = flags.len();
    let links = query.links(&render::flags_path(&project.key), total);
    let items: Vec<Value> = query
        .page(flags)
        .into_iter()
        .map(|f| render::flag(&project.key, f, &configs(project, f, &envs), !full))
        .collect();
    Ok(Json(json!({"_links": links, "totalCount": total, "items": items})).into_response())
}

/// `GET /api/v2/flags/{projectKey}/{featureFlagKey}`
pub(crate) async fn get_flag(
    State(shared): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path((project_key, flag_key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    crate::simulator::listing::expand_of(raw.as_deref(), EXPAND_FIELDS)?;
    let (envs, _) = env_and_summary(raw.as_deref())?;
    let state = shared.lock();
    let project = visible_project(&state, &caller, &project_key)?;
    let flag = project
        .flag(&flag_key)
        .ok_or_else(|| flag_not_found(&flag_key))?;
    let body = render::flag(&project.key, flag, &configs(project, flag, &envs), false);
    Ok(Json(body).into_response())
}

/// Whether the request's `Content-Type` asks for a semantic patch.
fn is_semantic(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .skip(1)
                .any(|p| p.trim().eq_ignore_ascii_case(SEMANTIC_PATCH_PARAMETER))
        })
}

fn is_merge_patch(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim().starts_with("application/merge-patch+json"))
}

/// `PATCH /api/v2/flags/{projectKey}/{featureFlagKey}`: a semantic patch or a
/// JSON patch, all or nothing; `dryRun=true` answers the result without keeping it.
pub(crate) async fn patch_flag(
    State(shared): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path((project_key, flag_key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require_writer()?;
    let dry_run = url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
        .any(|(name, value)| name == "dryRun" && (value == "true" || value == "1"));
    let mut state = shared.lock();
    visible_project(&state, &caller, &project_key)?
        .flag(&flag_key)
        .ok_or_else(|| flag_not_found(&flag_key))?;
    if is_merge_patch(&headers) {
        return Err(ApiError::invalid_request(
            "JSON merge patch is not supported by the LaunchDarkly simulator; use a JSON patch or a semantic patch",
        ));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid_request(format!("Invalid request body: not valid JSON ({e})"))
    })?;
    let project = state
        .account_mut(&caller.account_id)
        .and_then(|a| a.project_mut(&project_key))
        .ok_or_else(|| project_not_found(&project_key))?;
    let mut patched = project.clone();
    if is_semantic(&headers) {
        semantic::apply(&mut patched, &flag_key, &value)?;
    } else {
        jsonpatch::apply(&mut patched, &flag_key, &value)?;
    }
    let flag = patched
        .flag(&flag_key)
        .ok_or_else(|| flag_not_found(&flag_key))?;
    let answer = render::flag(&patched.key, flag, &configs(&patched, flag, &[]), false);
    if !dry_run {
        *project = patched;
    }
    Ok(Json(answer).into_response())
}
