//! The connection card of the settings page.

use crate::store::connections::{AuthKind, Connection, ConnectionStatus};
use crate::web::layout;

/// What the connection card shows.
pub struct ConnectionCard {
    /// `not_connected`, `connected` or `needs_reconnect`.
    pub status: &'static str,
    pub status_label: &'static str,
    pub tone: &'static str,
    pub account: String,
    pub account_id: String,
    pub via: &'static str,
    pub is_oauth: bool,
    pub connected_relative: String,
    pub connected_iso: String,
    pub connected_human: String,
    pub expiry: Option<String>,
    pub expiry_iso: String,
    pub scope: String,
}

impl ConnectionCard {
    pub(super) fn new(conn: Option<&Connection>, now: chrono::DateTime<chrono::Utc>) -> Self {
        let Some(c) = conn else {
            return Self {
                status: "not_connected",
                status_label: "Not connected",
                tone: "neutral",
                account: String::new(),
                account_id: String::new(),
                via: "",
                is_oauth: false,
                connected_relative: String::new(),
                connected_iso: String::new(),
                connected_human: String::new(),
                expiry: None,
                expiry_iso: String::new(),
                scope: String::new(),
            };
        };
        let (status, status_label, tone) = match c.status {
            ConnectionStatus::Connected => ("connected", "Connected", "good"),
            ConnectionStatus::NeedsReconnect => ("needs_reconnect", "Needs reconnect", "warn"),
        };
        let expiry = match (c.auth_kind, c.access_expires_at) {
            (AuthKind::OAuth, Some(at)) if at > now => Some(format!(
                "Access token expires {}; it renews automatically",
                layout::relative(at, now)
            )),
            (AuthKind::OAuth, Some(_)) => {
                Some("Access token expired; it renews on next use".to_owned())
            }
            (AuthKind::OAuth, None) => Some("Access token does not expire".to_owned()),
            (AuthKind::ApiToken, _) => {
                Some("API access tokens work until you revoke them in LaunchDarkly".to_owned())
            }
        };
        Self {
            status,
            status_label,
            tone,
            account: c
                .account_label
                .clone()
                .filter(|l| !l.trim().is_empty())
                .unwrap_or_else(|| c.account_id.clone()),
            account_id: c.account_id.clone(),
            via: match c.auth_kind {
                AuthKind::OAuth => "LaunchDarkly sign-in (OAuth)",
                AuthKind::ApiToken => "an API access token",
            },
            is_oauth: c.auth_kind == AuthKind::OAuth,
            connected_relative: layout::relative(c.connected_at, now),
            connected_iso: layout::iso(c.connected_at),
            connected_human: layout::human(c.connected_at),
            expiry,
            expiry_iso: c.access_expires_at.map(layout::iso).unwrap_or_default(),
            scope: c.scope.clone().unwrap_or_default(),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.status == "connected"
    }

    pub fn needs_reconnect(&self) -> bool {
        self.status == "needs_reconnect"
    }

    pub fn is_not_connected(&self) -> bool {
        self.status == "not_connected"
    }
}
