//! The simulator's HTML page for an environment, where ld-eaas links its
//! "Open in LaunchDarkly" (`/projects/{project}/settings/environments?env=...`):
//! project, environment name, key, tags, and each flag with its targeting state
//! and served value. Like LaunchDarkly's UI page it is for a browser, so it takes
//! no API token; it never shows SDK keys.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::model::{SimFlag, SimFlagConfig, SimServe};
use super::render::environment_page;
use crate::simulator::model::{SimEnvironment, SimProject};
use crate::simulator::state::SharedState;

#[derive(Template)]
#[template(path = "simulator/environment.html")]
struct EnvironmentPage {
    project_name: String,
    project_key: String,
    env: Option<EnvironmentView>,
    environments: Vec<EnvironmentLink>,
}

struct EnvironmentView {
    name: String,
    key: String,
    color: String,
    /// The color, only when it is six hex digits (it goes into a style attribute).
    swatch: Option<String>,
    tags: Vec<String>,
    critical: bool,
    flags: Vec<FlagRow>,
}

struct EnvironmentLink {
    name: String,
    key: String,
    href: String,
}

struct FlagRow {
    key: String,
    name: String,
    on: bool,
    served: String,
    detail: String,
}

fn value_text(flag: &SimFlag, index: usize) -> String {
    flag.variations
        .get(index)
        .map_or_else(|| "(no such variation)".to_owned(), |v| v.value.to_string())
}

/// The value a context no target or rule matches gets.
fn served(flag: &SimFlag, config: &SimFlagConfig) -> String {
    if !config.on {
        return value_text(flag, config.off_variation);
    }
    match config.fallthrough() {
        SimServe::Variation(index) => value_text(flag, index),
        SimServe::Rollout(rollout) => {
            let parts: Vec<String> = rollout
                .variations
                .iter()
                .map(|(index, weight)| {
                    format!(
                        "{}% {}",
                        f64::from(*weight) / 1000.0,
                        value_text(flag, *index)
                    )
                })
                .collect();
            format!("rollout: {}", parts.join(", "))
        }
    }
}

fn detail(config: &SimFlagConfig) -> String {
    let rules = config.rules.len();
    let targets: usize = config.targets.iter().map(|t| t.values.len()).sum();
    match (rules, targets) {
        (0, 0) => "none".to_owned(),
        _ => format!(
            "{rules} rule{}, {targets} individual target{}",
            if rules == 1 { "" } else { "s" },
            if targets == 1 { "" } else { "s" }
        ),
    }
}

fn view(project: &SimProject, env: &SimEnvironment) -> EnvironmentView {
    let flags = project
        .flags
        .iter()
        .filter_map(|flag| {
            env.flags.get(&flag.key).map(|config| FlagRow {
                key: flag.key.clone(),
                name: flag.name.clone(),
                on: config.on,
                served: served(flag, config),
                detail: detail(config),
            })
        })
        .collect();
    let swatch = (env.color.len() == 6 && env.color.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| env.color.clone());
    EnvironmentView {
        name: env.name.clone(),
        key: env.key.clone(),
        color: env.color.clone(),
        swatch,
        tags: env.tags.clone(),
        critical: env.critical,
        flags,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn not_found(message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found · LaunchDarkly simulator</title></head><body><h1>Not found</h1><p>{}</p></body></html>",
        escape(message)
    );
    (StatusCode::NOT_FOUND, Html(html)).into_response()
}

/// `GET /projects/{projectKey}/settings/environments?env={env}&selected-env={env}`
pub(crate) async fn environment_page_html(
    State(shared): State<SharedState>,
    Path(project_key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let wanted = url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "selected-env" || name == "env")
        .map(|(_, value)| value.into_owned())
        .next();
    let page = {
        let state = shared.lock();
        // The account a browser here would be signed in to, else any that has it.
        let preferred = shared.consenting_account(&state);
        let project = preferred
            .as_deref()
            .and_then(|id| state.account(id))
            .and_then(|a| a.project(&project_key))
            .or_else(|| {
                state
                    .accounts
                    .values()
                    .find_map(|a| a.project(&project_key))
            });
        let Some(project) = project else {
            return not_found(&format!("There is no project {project_key:?}."));
        };
        let env = match &wanted {
            None => None,
            Some(key) => match project.environment(key) {
                Some(env) => Some(view(project, env)),
                None => {
                    return not_found(&format!(
                        "Project {project_key:?} has no environment {key:?}."
                    ));
                }
            },
        };
        EnvironmentPage {
            project_name: project.name.clone(),
            project_key: project.key.clone(),
            environments: project
                .environments
                .iter()
                .filter(|e| Some(&e.key) != wanted.as_ref())
                .map(|e| EnvironmentLink {
                    name: e.name.clone(),
                    key: e.key.clone(),
                    href: environment_page(&project.key, &e.key),
                })
                .collect(),
            env,
        }
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "simulator: rendering the environment page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}
