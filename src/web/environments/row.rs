//! A row of the environments table as the page shows it, and the digests
//! the live page compares (`row_version`, `list_version`).

use sha2::{Digest, Sha256};

use super::backend::{self, EnvView, Keys};
use crate::web::layout;

/// One row of the table.
pub struct EnvRow {
    pub ephemeral_id: String,
    pub name: String,
    pub key: String,
    pub project_key: String,
    pub source: String,
    pub flags: Vec<backend::FlagChoice>,
    pub status: &'static str,
    pub status_label: &'static str,
    pub tone: &'static str,
    pub busy: bool,
    /// Work that waits for LaunchDarkly to be (re)connected.
    pub waiting: bool,
    /// What the person should know about it, in plain words.
    pub note: String,
    /// `note` is an error LaunchDarkly or a worker reported.
    pub note_is_error: bool,
    pub created_relative: String,
    pub created_iso: String,
    pub created_human: String,
    pub expires_relative: String,
    pub expires_iso: String,
    pub url: String,
    pub client_side_id: String,
    pub last_error: String,
    pub swatch: String,
    pub can_reveal: bool,
    pub can_recreate: bool,
    pub can_delete: bool,
    pub keys: Option<Keys>,
    /// Changes whenever anything the row shows changes (for live updates).
    pub version: String,
}

impl EnvRow {
    /// `connected`: LaunchDarkly is connected, so work can run now.
    pub(super) fn new(v: EnvView, now: chrono::DateTime<chrono::Utc>, connected: bool) -> Self {
        let version = row_version(&v);
        let in_progress = matches!(v.status, "pending" | "deleting");
        let waiting = in_progress && !connected;
        let (status_label, tone) = match v.status {
            "pending" if waiting => ("Waiting to create", "warn"),
            "deleting" if waiting => ("Waiting to delete", "warn"),
            "pending" => ("Creating", "info"),
            "ready" => ("Ready", "good"),
            "deleting" => ("Deleting", "warn"),
            "deleted" => ("Deleted", "neutral"),
            "failed" => ("Failed", "bad"),
            "delete_failed" => ("Delete failed", "bad"),
            _ => ("Unknown", "neutral"),
        };
        // The workers' "waiting: …" notes are for operators; say it plainly.
        let note = match v.status {
            "pending" if waiting => {
                "It will be created once LaunchDarkly is reconnected in Settings.".to_owned()
            }
            "deleting" if waiting => {
                "It will be deleted from LaunchDarkly once LaunchDarkly is reconnected in Settings. Nothing else to do here."
                    .to_owned()
            }
            _ if v.last_error.starts_with("waiting:") => {
                "Waiting for LaunchDarkly; it continues on its own.".to_owned()
            }
            _ => v.last_error.clone(),
        };
        let note_is_error = !note.is_empty() && note == v.last_error;
        let gone = matches!(v.status, "deleting" | "deleted");
        Self {
            can_reveal: v.status == "ready" && v.has_keys,
            // Recreating needs LaunchDarkly now; deleting can wait for it.
            can_recreate: connected && matches!(v.status, "ready" | "failed"),
            can_delete: matches!(v.status, "ready" | "failed" | "pending" | "delete_failed"),
            ephemeral_id: v.ephemeral_id,
            name: v.name,
            key: v.key,
            project_key: v.project_key,
            source: v.source,
            flags: v.flags,
            status: v.status,
            status_label,
            tone,
            busy: in_progress && connected,
            waiting,
            note,
            note_is_error,
            created_relative: layout::relative(v.created_at, now),
            created_iso: layout::iso(v.created_at),
            created_human: layout::human(v.created_at),
            // A deleted environment no longer expires.
            expires_relative: v
                .expires_at
                .filter(|_| !gone)
                .map(|at| layout::relative(at, now))
                .unwrap_or_default(),
            expires_iso: v
                .expires_at
                .filter(|_| !gone)
                .map(layout::iso)
                .unwrap_or_default(),
            url: v.url,
            client_side_id: v.client_side_id,
            last_error: v.last_error,
            swatch: layout::swatch(&v.color),
            keys: None,
            version,
        }
    }

    pub fn is_gone(&self) -> bool {
        matches!(self.status, "deleting" | "deleted")
    }
}

/// A short digest of what a row shows.
fn row_version(v: &EnvView) -> String {
    let mut h = Sha256::new();
    for part in [
        v.ephemeral_id.as_str(),
        v.key.as_str(),
        v.name.as_str(),
        v.status,
        v.project_key.as_str(),
        v.source.as_str(),
        v.last_error.as_str(),
        v.client_side_id.as_str(),
        v.url.as_str(),
        v.color.as_str(),
        if v.has_keys { "keys" } else { "" },
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(
        v.expires_at
            .map(|t| t.timestamp())
            .unwrap_or(0)
            .to_be_bytes(),
    );
    hex::encode(&h.finalize()[..8])
}

/// What the whole list shows, as one value: the rows' versions, whether
/// another page follows, and whether LaunchDarkly is connected and set up.
pub(super) fn list_version(
    rows: &[EnvRow],
    older: Option<&str>,
    connected: bool,
    configured: bool,
) -> String {
    let mut h = Sha256::new();
    for row in rows {
        h.update(row.version.as_bytes());
    }
    h.update(older.unwrap_or("-").as_bytes());
    h.update([u8::from(connected), u8::from(configured)]);
    hex::encode(&h.finalize()[..12])
}
