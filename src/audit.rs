//! What the audit log records, as one enum: every action any part of the
//! product writes, so a new one is added here (and worded on the activity
//! page) rather than spelt out as a string at its call site. The rows are
//! written by `store::audit`.

use crate::store::audit::NewAuditEvent;

/// An action in the audit log; [`AuditAction::as_str`] is its stored name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    TenantCreated,
    TenantOffboarding,
    ConnectLinkOpened,
    ConnectionConnected,
    ConnectionDisconnected,
    ConnectionNeedsReconnect,
    SettingsUpdated,
    EnvironmentCreateRequested,
    EnvironmentRetryRequested,
    EnvironmentDeleteRequested,
    EnvironmentRecreateRequested,
    EnvironmentReady,
    EnvironmentFailed,
    EnvironmentDeleteRefused,
    EnvironmentDeleted,
    EnvironmentExpired,
    EnvironmentOrphanDeleted,
    EnvironmentKeysRevealed,
}

impl AuditAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TenantCreated => "tenant.created",
            Self::TenantOffboarding => "tenant.offboarding",
            Self::ConnectLinkOpened => "connect_link.opened",
            Self::ConnectionConnected => "connection.connected",
            Self::ConnectionDisconnected => "connection.disconnected",
            Self::ConnectionNeedsReconnect => "connection.needs_reconnect",
            Self::SettingsUpdated => "settings.updated",
            Self::EnvironmentCreateRequested => "environment.create_requested",
            Self::EnvironmentRetryRequested => "environment.retry_requested",
            Self::EnvironmentDeleteRequested => "environment.delete_requested",
            Self::EnvironmentRecreateRequested => "environment.recreate_requested",
            Self::EnvironmentReady => "environment.ready",
            Self::EnvironmentFailed => "environment.failed",
            Self::EnvironmentDeleteRefused => "environment.delete_refused",
            Self::EnvironmentDeleted => "environment.deleted",
            Self::EnvironmentExpired => "environment.expired",
            Self::EnvironmentOrphanDeleted => "environment.orphan_deleted",
            Self::EnvironmentKeysRevealed => "environment.keys_revealed",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new audit row for `action` by `actor`, to fill in and record.
pub fn event(actor: &str, action: AuditAction) -> NewAuditEvent<'_> {
    NewAuditEvent::new(actor, action.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_dotted_snake_case() {
        let all = [
            AuditAction::TenantCreated,
            AuditAction::ConnectLinkOpened,
            AuditAction::EnvironmentKeysRevealed,
        ];
        for action in all {
            let name = action.as_str();
            assert!(name.contains('.'), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.'),
                "{name}"
            );
        }
    }
}
