//! The activity page: the tenant's audit log, newest first, a page at a time.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{self, Layout, Nav};
use super::pages::require_tenant;
use super::{CustomerSession, PageResult};
use crate::app::AppState;
use crate::pagination;
use crate::store::audit::{self, AuditEvent};

/// Rows per page.
pub const PAGE_SIZE: i64 = 25;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActivityQuery {
    /// The id of the last row of the previous page.
    before: Option<String>,
}

pub struct ActivityRow {
    pub when_relative: String,
    pub when_iso: String,
    pub when_human: String,
    pub actor: String,
    pub summary: String,
    pub action: String,
    pub environment: String,
    pub details: String,
    pub tone: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "activity.html")]
pub struct ActivityPage {
    pub layout: Layout,
    pub rows: Vec<ActivityRow>,
    pub older: Option<i64>,
    pub is_first_page: bool,
}

#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn show_activity(
    State(state): State<AppState>,
    session: CustomerSession,
    Query(query): Query<ActivityQuery>,
) -> PageResult<ActivityPage> {
    let tenant = require_tenant(&state, &session).await?;
    // A garbled cursor shows the first page rather than an error.
    let before = query.before.and_then(|b| b.parse::<i64>().ok());
    let rows = audit::list(
        &state.db,
        &tenant.id,
        before,
        pagination::fetch_size(PAGE_SIZE),
    )
    .await?;
    let (events, older) = pagination::page(rows, PAGE_SIZE, |e| e.id);
    let now = state.now();
    let rows = events.iter().map(|e| row(e, now)).collect();
    Ok(ActivityPage {
        layout: Layout::for_tenant(&state, &session, &tenant, Nav::Activity).await?,
        rows,
        older,
        is_first_page: before.is_none(),
    })
}

fn row(event: &AuditEvent, now: chrono::DateTime<chrono::Utc>) -> ActivityRow {
    ActivityRow {
        when_relative: layout::relative(event.occurred_at, now),
        when_iso: layout::iso(event.occurred_at),
        when_human: layout::human(event.occurred_at),
        actor: actor(&event.actor),
        summary: summary(&event.action),
        action: event.action.clone(),
        environment: match (&event.environment_key, &event.ephemeral_id) {
            (Some(key), Some(eph)) => format!("{key} ({eph})"),
            (Some(key), None) => key.clone(),
            (None, Some(eph)) => eph.clone(),
            (None, None) => String::new(),
        },
        details: details(&event.details),
        tone: tone(&event.action),
    }
}

/// Who did it, for people.
fn actor(raw: &str) -> String {
    match raw {
        "browser" => "You, in this app".to_owned(),
        "system" | "worker" => "Automatically".to_owned(),
        other => match other.split_once(':') {
            Some(("api", name)) => format!("API ({name})"),
            Some((kind, name)) => format!("{kind} ({name})"),
            None => other.to_owned(),
        },
    }
}

/// What happened, for people. Unknown actions read as their words.
fn summary(action: &str) -> String {
    let known = match action {
        "tenant.created" => "Account registered",
        "tenant.offboarding" => "Offboarding started",
        "connect_link.opened" => "Connect link opened",
        "connection.connected" | "connection.created" => "Connected to LaunchDarkly",
        "connection.oauth_connected" => "Connected to LaunchDarkly with OAuth",
        "connection.api_token_connected" => "Connected to LaunchDarkly with an API token",
        "connection.disconnected" => "Disconnected from LaunchDarkly",
        "connection.needs_reconnect" => "LaunchDarkly connection needs reconnecting",
        "connection.oauth_denied" => "LaunchDarkly authorization was declined",
        "settings.updated" | "settings.saved" => "Settings saved",
        "environment.requested" | "environment.create_requested" => "Environment requested",
        "environment.retry_requested" => "Retry requested",
        "environment.delete_refused" => "Deletion refused by LaunchDarkly",
        "environment.orphan_deleted" => "Leftover environment cleaned up",
        "environment.created" | "environment.ready" => "Environment created",
        "environment.adopted" => "Existing environment adopted",
        "environment.delete_requested" => "Deletion requested",
        "environment.deleted" => "Environment deleted",
        "environment.recreate_requested" => "Re-creation requested",
        "environment.recreated" => "Environment re-created",
        "environment.failed" => "Environment failed",
        "environment.expired" => "Environment expired",
        "environment.keys_revealed" => "SDK keys revealed",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    let words = action.replace(['.', '_'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn tone(action: &str) -> &'static str {
    if action.ends_with("failed")
        || action.ends_with("needs_reconnect")
        || action.ends_with("denied")
    {
        "bad"
    } else if action.contains("delete")
        || action.contains("disconnect")
        || action.contains("expired")
    {
        "warn"
    } else if action.ends_with("created")
        || action.ends_with("ready")
        || action.contains("connected")
        || action.ends_with("recreated")
    {
        "good"
    } else {
        "neutral"
    }
}

/// A short `key: value` line of the event's details (never secrets: the
/// audit log holds none).
fn details(value: &Value) -> String {
    let Value::Object(map) = value else {
        return String::new();
    };
    map.iter()
        .filter_map(|(k, v)| {
            let shown = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                // `adopted: false` and the like say nothing.
                Value::Bool(false) => return None,
                Value::Bool(true) => "yes".to_owned(),
                Value::Array(items) => items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => return None,
            };
            Some(format!("{}: {shown}", k.replace('_', " ")))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_actions_still_read_as_words() {
        assert_eq!(summary("environment.deleted"), "Environment deleted");
        assert_eq!(
            summary("webhook.delivery_failed"),
            "Webhook delivery failed"
        );
        assert_eq!(actor("api:vendor-backend"), "API (vendor-backend)");
    }

    #[test]
    fn details_are_one_line() {
        let v = serde_json::json!({"status": "ready", "tags": ["a", "b"], "nested": {"x": 1}, "adopted": false});
        assert_eq!(details(&v), "status: ready · tags: a, b");
    }
}
