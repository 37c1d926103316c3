//! The JSON representations: `Project`, `Environment`, `Environments`,
//! `CallerIdentityRep`, with every field the schemas require.

use serde_json::{Value, json};

use super::auth::{Caller, CallerKind};
use super::listing::ListQuery;
use super::model::{SimEnvironment, SimProject};

fn link(href: String) -> Value {
    json!({"href": href, "type": "application/json"})
}

pub(crate) fn environments_path(project: &str) -> String {
    format!("/api/v2/projects/{project}/environments")
}

pub(crate) fn environment(project: &str, env: &SimEnvironment) -> Value {
    json!({
        "_links": {
            "self": link(format!("{}/{}", environments_path(project), env.key)),
            "project": link(format!("/api/v2/projects/{project}")),
        },
        "_id": env.id,
        "key": env.key,
        "name": env.name,
        "apiKey": env.api_key,
        "mobileKey": env.mobile_key,
        "color": env.color,
        "defaultTtl": env.default_ttl,
        "secureMode": env.secure_mode,
        "defaultTrackEvents": env.default_track_events,
        "requireComments": env.require_comments,
        "confirmChanges": env.confirm_changes,
        "tags": env.tags,
        "critical": env.critical,
    })
}

/// One page of environments (`Environments`).
pub(crate) fn environments(project: &str, all: Vec<&SimEnvironment>, query: &ListQuery) -> Value {
    let total = all.len();
    let links = query.links(&environments_path(project), total);
    let items: Vec<Value> = query
        .page(all)
        .into_iter()
        .map(|e| environment(project, e))
        .collect();
    json!({"_links": links, "totalCount": total, "items": items})
}

/// A `Project`; with `expand=environments`, the first page of its environments.
pub(crate) fn project(project: &SimProject, expand_environments: bool) -> Value {
    let mut value = json!({
        "_links": {
            "self": link(format!("/api/v2/projects/{}", project.key)),
            "environments": link(environments_path(&project.key)),
            "flagDefaults": link(format!("/api/v2/projects/{}/flag-defaults", project.key)),
        },
        "_id": project.id,
        "key": project.key,
        "includeInSnippetByDefault": project.include_in_snippet_by_default,
        "defaultClientSideAvailability": {
            "usingMobileKey": false,
            "usingEnvironmentId": project.include_in_snippet_by_default,
        },
        "name": project.name,
        "tags": project.tags,
    });
    if expand_environments {
        let all = project.environments.iter().collect();
        value["environments"] = environments(&project.key, all, &ListQuery::first_page());
    }
    value
}

/// `CallerIdentityRep`.
pub(crate) fn caller_identity(caller: &Caller) -> Value {
    match &caller.kind {
        CallerKind::Token {
            token_id,
            name,
            role,
            service,
            ..
        } => {
            let mut value = json!({
                "accountId": caller.account_id,
                "authKind": "token",
                "tokenKind": if *service { "service" } else { "personal" },
                "tokenId": token_id,
                "tokenName": name,
                "serviceToken": service,
                "scopes": [role.as_str()],
            });
            // Service tokens belong to no member.
            if !service {
                value["memberId"] = Value::String(caller.member_id.clone());
            }
            value
        }
        CallerKind::OAuth { client_id, scope } => json!({
            "accountId": caller.account_id,
            "authKind": "oauth",
            "tokenKind": "oauth",
            "clientId": client_id,
            "memberId": caller.member_id,
            "serviceToken": false,
            "scopes": [scope.as_str()],
        }),
    }
}
