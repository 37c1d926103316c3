//! What every change to an environment leaves behind, in the transaction that
//! makes it: an audit row, a webhook in the outbox (when one is configured),
//! and a notification that wakes whoever waits for that environment.

use serde_json::Value;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{EnvironmentRecord, EnvironmentView};
use crate::app::AppState;
use crate::audit::AuditAction;
use crate::store::audit::{self, NewAuditEvent};
use crate::store::{notify, outbox};

/// Carries changed environment ids to every replica's waiters.
pub(crate) use crate::store::notify::ENVIRONMENTS_CHANNEL;

pub(crate) async fn notify_changed(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
) -> sqlx::Result<()> {
    notify::environment_changed(&mut **tx, id).await
}

/// The webhook body's `data` for an environment: no SDK or mobile key (the
/// outbox is plain text at rest; the vendor reads keys from the API).
pub(crate) fn webhook_data(
    state: &AppState,
    record: &EnvironmentRecord,
) -> serde_json::Result<Value> {
    serde_json::to_value(EnvironmentView::new(state, record, None))
}

/// Audits `action` on `record`, queues `webhook` if given, wakes waiters.
pub(crate) async fn announce(
    state: &AppState,
    tx: &mut Transaction<'_, Postgres>,
    record: &EnvironmentRecord,
    actor: &str,
    action: AuditAction,
    details: Value,
    webhook: Option<&str>,
) -> anyhow::Result<()> {
    let now = state.now();
    if let (Some(event_type), Some(_)) = (webhook, state.config.webhook.as_ref()) {
        outbox::insert(
            tx,
            &record.tenant_id,
            event_type,
            &webhook_data(state, record)?,
            now,
        )
        .await?;
    }
    // The audit row and the wake-up in one statement.
    audit::record_and_notify(
        &mut **tx,
        &record.tenant_id,
        now,
        NewAuditEvent {
            actor,
            action: action.as_str(),
            ephemeral_id: Some(record.ephemeral_id.as_str()),
            environment_key: Some(&record.environment_key),
            details,
        },
        notify::ENVIRONMENTS_CHANNEL,
        &notify::environment_notice(record),
    )
    .await?;
    Ok(())
}
