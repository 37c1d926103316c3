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
    /// Readable `(label, value)` pairs of the event's details.
    pub details: Vec<(String, String)>,
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

/// The event's details for people: known fields get their own words (times
/// in UTC, auth kinds spelled out), others read as their words; nested
/// objects and `false` flags say nothing and are left out. Never secrets:
/// the audit log holds none.
fn details(value: &Value) -> Vec<(String, String)> {
    let Value::Object(map) = value else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| {
            let shown = match (k.as_str(), v) {
                // Who the tenant is, the page already says.
                ("tenant_id", _) => return None,
                ("auth_kind", Value::String(kind)) => match kind.as_str() {
                    "oauth" => "LaunchDarkly sign-in (OAuth)".to_owned(),
                    "api_token" => "API access token".to_owned(),
                    other => other.to_owned(),
                },
                ("default_ttl_seconds" | "ttl_seconds", Value::Number(n)) => {
                    n.as_i64().map_or_else(|| n.to_string(), layout::duration)
                }
                ("default_ttl_seconds" | "ttl_seconds", Value::Null) => "no limit".to_owned(),
                ("color", Value::String(hex)) if hex.len() == 6 => format!("#{hex}"),
                (_, Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(s) {
                    Ok(at) => layout::human(at.with_timezone(&chrono::Utc)),
                    Err(_) => s.clone(),
                },
                (_, Value::Number(n)) => n.to_string(),
                (_, Value::Bool(true)) => "yes".to_owned(),
                (_, Value::Array(items)) => {
                    let words: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                    if words.is_empty() {
                        return None;
                    }
                    words.join(", ")
                }
                _ => return None,
            };
            Some((label(k), shown))
        })
        .collect()
}

/// A detail's name for people.
fn label(key: &str) -> String {
    let known = match key {
        "auth_kind" => "Connected with",
        "account_id" => "LaunchDarkly account",
        "project_key" => "Project",
        "source_environment_key" => "Cloned from",
        "expires_at" => "Expires",
        "generation" => "Generation",
        "previous_generation" => "Replaces generation",
        "previous_environment_key" => "Previous key",
        "previous_error" => "Previous error",
        "client_side_id" => "Client-side ID",
        "name_template" => "Name",
        "key_prefix" => "Key prefix",
        "color" => "Colour",
        "default_ttl_seconds" => "Default lifetime",
        "ttl_seconds" => "Lifetime",
        "left_untouched" => "Left untouched",
        "adopted" => "Adopted an existing environment",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    let words = key.replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
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
    fn details_read_as_words_not_dumps() {
        let v = serde_json::json!({
            "status": "ready", "tags": ["a", "b"], "nested": {"x": 1}, "adopted": false,
            "expires_at": "2026-12-01T10:00:00Z", "auth_kind": "oauth", "default_ttl_seconds": 172_800,
        });
        let shown: Vec<(String, String)> = details(&v);
        let pairs: Vec<(&str, &str)> = shown
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert!(
            pairs.contains(&("Expires", "Dec 1, 2026 10:00 UTC")),
            "{pairs:?}"
        );
        assert!(
            pairs.contains(&("Connected with", "LaunchDarkly sign-in (OAuth)")),
            "{pairs:?}"
        );
        assert!(pairs.contains(&("Default lifetime", "2 days")), "{pairs:?}");
        assert!(pairs.contains(&("Status", "ready")), "{pairs:?}");
        assert!(pairs.contains(&("Tags", "a, b")), "{pairs:?}");
        assert!(!pairs.iter().any(|(k, _)| k.contains('_')
            || *k == "Nested"
            || *k == "Adopted an existing environment"));
    }
}
