//! The REST operations: getCallerIdentity, getProjects, getProject,
//! getEnvironmentsByProject, getEnvironment, postEnvironment, deleteEnvironment.
//! (The flag operations live in `flags/api.rs`.)

use std::cmp::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::auth::Caller;
use super::error::ApiError;
use super::listing::{ListQuery, has_all_tags, matches_query, sort_by, wanted_tags};
use super::model::{SimEnvironment, SimProject};
use super::state::{SharedState, SimState};
use super::validate;
use super::{listing, render};

/// LaunchDarkly refuses to clone a source environment with more segments than this.
pub const MAX_CLONE_SEGMENTS: usize = 1_000;

type ApiResult = Result<Response, ApiError>;

fn project_not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("Unknown project key {key:?}"))
}

fn environment_not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("Unknown environment key {key:?}"))
}

/// The caller's project `key`: 403 if its token may not see it, 404 if missing.
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

/// `GET /api/v2/caller-identity`
pub(crate) async fn get_caller_identity(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(render::caller_identity(&caller))
}

/// `GET /api/v2/projects`
pub(crate) async fn list_projects(
    State(shared): State<SharedState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let query = ListQuery::parse(
        query.as_deref(),
        shared.settings.max_page_limit,
        &["query", "tags", "keys"],
        &["name", "createdOn"],
    )?;
    let state = shared.lock();
    let Some(account) = state.account(&caller.account_id) else {
        return Err(ApiError::unauthorized());
    };
    let mut projects: Vec<&SimProject> = account
        .projects
        .iter()
        .filter(|p| caller.sees_project(&p.key))
        .filter(|p| {
            query
                .filter("query")
                .all(|q| matches_query(q, &p.key, &p.name))
        })
        .filter(|p| {
            query
                .filter("tags")
                .all(|t| has_all_tags(&p.tags, &wanted_tags(t)))
        })
        .filter(|p| {
            query
                .filter("keys")
                .all(|keys| keys.split('|').any(|k| k.eq_ignore_ascii_case(&p.key)))
        })
        .collect();
    sort_by(&mut projects, &query.sort, |field, a, b| match field {
        "name" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
        "createdOn" => a.created_at.cmp(&b.created_at),
        _ => Ordering::Equal,
    });
    let total = projects.len();
    let links = query.links("/api/v2/projects", total);
    let expand = query.expands("environments");
    let items: Vec<Value> = query
        .page(projects)
        .into_iter()
        .map(|p| render::project(p, expand))
        .collect();
    let body = serde_json::json!({"_links": links, "totalCount": total, "items": items});
    Ok(Json(body).into_response())
}

/// `GET /api/v2/projects/{projectKey}`
pub(crate) async fn get_project(
    State(shared): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(project_key): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let expand = listing::expand_of(query.as_deref(), &["environments"])?;
    let state = shared.lock();
    let project = visible_project(&state, &caller, &project_key)?;
    let expand_environments = expand.iter().any(|e| e == "environments");
    Ok(Json(render::project(project, expand_environments)).into_response())
}

/// `GET /api/v2/projects/{projectKey}/environments`
pub(crate) async fn list_environments(
    State(shared): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(project_key): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let query = ListQuery::parse(
        query.as_deref(),
        shared.settings.max_page_limit,
        &["query", "tags"],
        &["createdOn", "critical", "name"],
    )?;
    let state = shared.lock();
    let project = visible_project(&state, &caller, &project_key)?;
    let mut envs: Vec<&SimEnvironment> = project
        .environments
        .iter()
        .filter(|e| {
            query
                .filter("query")
                .all(|q| matches_query(q, &e.key, &e.name))
        })
        .filter(|e| {
            query
                .filter("tags")
                .all(|t| has_all_tags(&e.tags, &wanted_tags(t)))
        })
        .collect();
    sort_by(&mut envs, &query.sort, |field, a, b| match field {
        "name" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
        "critical" => a.critical.cmp(&b.critical),
        "createdOn" => a.created_at.cmp(&b.created_at),
        _ => Ordering::Equal,
    });
    Ok(Json(render::environments(&project.key, envs, &query)).into_response())
}

/// `GET /api/v2/projects/{projectKey}/environments/{environmentKey}`
pub(crate) async fn get_environment(
    State(shared): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path((project_key, env_key)): Path<(String, String)>,
) -> ApiResult {
    let state = shared.lock();
    let project = visible_project(&state, &caller, &project_key)?;
    let env = project
        .environment(&env_key)
        .ok_or_else(|| environment_not_found(&env_key))?;
    Ok(Json(render::environment(&project.key, env)).into_response())
}

/// `POST /api/v2/projects/{projectKey}/environments`: creates, or with `source`
/// clones (each flag's whole configuration in the source is copied: on/off,
/// off variation, fallthrough, rules and individual targets).
pub(crate) async fn create_environment(
    State(shared): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(project_key): Path<String>,
    body: Bytes,
) -> ApiResult {
    caller.require_writer()?;
    let mut state = shared.lock();
    visible_project(&state, &caller, &project_key)?;
    let post = validate::environment_post(&body)?;
    let project = state
        .account_mut(&caller.account_id)
        .and_then(|a| a.project_mut(&project_key))
        .ok_or_else(|| project_not_found(&project_key))?;
    if project.environment(&post.key).is_some() {
        return Err(ApiError::conflict(format!(
            "An environment with key {:?} already exists in project {:?}",
            post.key, project_key
        )));
    }
    let flags = match &post.source {
        None => project.default_flag_states(),
        Some(source_key) => {
            let source = project.environment(source_key).ok_or_else(|| {
                ApiError::not_found(format!("Unknown source environment key {source_key:?}"))
            })?;
            if source.segment_count > MAX_CLONE_SEGMENTS {
                return Err(ApiError::invalid_request(format!(
                    "Cannot clone environment {source_key:?}: it has {} segments; environments with more than {MAX_CLONE_SEGMENTS} segments cannot be cloned",
                    source.segment_count
                )));
            }
            source.flags.clone()
        }
    };
    let mut env = SimEnvironment::new(&post.key, &post.name, &post.color);
    env.default_ttl = post.default_ttl;
    env.secure_mode = post.secure_mode;
    env.default_track_events = post.default_track_events;
    env.confirm_changes = post.confirm_changes;
    env.require_comments = post.require_comments;
    env.tags = post.tags;
    env.critical = post.critical;
    env.flags = flags;
    let body = render::environment(&project.key, &env);
    project.environments.push(env);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /api/v2/projects/{projectKey}/environments/{environmentKey}`. Like
/// LaunchDarkly, a writer may delete any environment, critical or not.
pub(crate) async fn delete_environment(
    State(shared): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path((project_key, env_key)): Path<(String, String)>,
) -> ApiResult {
    caller.require_writer()?;
    let mut state = shared.lock();
    visible_project(&state, &caller, &project_key)?;
    let project = state
        .account_mut(&caller.account_id)
        .and_then(|a| a.project_mut(&project_key))
        .ok_or_else(|| project_not_found(&project_key))?;
    let before = project.environments.len();
    project.environments.retain(|e| e.key != env_key);
    if project.environments.len() == before {
        return Err(environment_not_found(&env_key));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
