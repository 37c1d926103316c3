//! Reading environments: one, a page of them, their SDK keys, and waiting
//! for the workers to settle one.

use std::time::Duration;

use secrecy::SecretString;

use super::{EnvironmentError, EnvironmentRecord, Result};
use crate::app::{AppState, Change, FALLBACK_POLL};
use crate::crypto::SealedColumn;
use crate::ids::{EphemeralId, TenantId};
use crate::pagination;
use crate::store::environments;

/// An environment's SDK credentials, opened from their sealed form.
#[derive(Debug, Clone)]
pub struct RevealedKeys {
    pub client_side_id: String,
    pub sdk_key: SecretString,
    pub mobile_key: SecretString,
}

/// The generation to show for `ephemeral_id`: the live one, else the newest.
pub async fn get_environment(
    state: &AppState,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
) -> Result<Option<EnvironmentRecord>> {
    Ok(environments::current(&state.db, tenant, ephemeral_id).await?)
}

/// Which page of the list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// 1-200.
    pub limit: i64,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Also list generations that are gone.
    pub include_deleted: bool,
}

#[derive(Debug, Clone)]
pub struct EnvironmentPage {
    pub items: Vec<EnvironmentRecord>,
    pub next_cursor: Option<String>,
}

/// A cursor is the last item's sequence number: 1-18 digits, exactly what
/// the OpenAPI document's pattern says (so a fuzzer's "valid" cursor is one).
fn encode_cursor(seq: i64) -> String {
    seq.to_string()
}

fn decode_cursor(cursor: &str) -> Result<i64> {
    Some(cursor)
        .filter(|c| (1..=18).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse().ok())
        .ok_or(EnvironmentError::InvalidCursor)
}

/// The tenant's environments, newest first.
pub async fn list_environments(
    state: &AppState,
    tenant: &TenantId,
    query: &ListQuery,
) -> Result<EnvironmentPage> {
    let limit = query.limit.clamp(1, 200);
    let before = query.cursor.as_deref().map(decode_cursor).transpose()?;
    // One more than asked tells whether another page follows.
    let rows = environments::list(
        &state.db,
        tenant,
        query.include_deleted,
        before,
        pagination::fetch_size(limit),
    )
    .await?;
    let (items, next_cursor) = pagination::page(rows, limit, |r| encode_cursor(r.seq));
    Ok(EnvironmentPage { items, next_cursor })
}

/// Opens the environment's sealed SDK and mobile keys (`None` until it is
/// ready). Never log the result.
pub fn reveal_keys(state: &AppState, record: &EnvironmentRecord) -> Result<Option<RevealedKeys>> {
    let (Some(client_side_id), Some(sdk), Some(mobile)) = (
        record.client_side_id.as_ref(),
        record.sdk_key.as_deref(),
        record.mobile_key.as_deref(),
    ) else {
        return Ok(None);
    };
    let keyring = &state.config.keyring;
    let open = |column, sealed| {
        keyring
            .open(&record.tenant_id, column, sealed)
            .map_err(|e| {
                EnvironmentError::Internal(anyhow::anyhow!("opening a stored SDK key: {e}"))
            })
    };
    Ok(Some(RevealedKeys {
        client_side_id: client_side_id.clone(),
        sdk_key: open(SealedColumn::SdkKey, sdk)?,
        mobile_key: open(SealedColumn::MobileKey, mobile)?,
    }))
}

/// The environment's page in LaunchDarkly.
pub fn environment_url(state: &AppState, record: &EnvironmentRecord) -> String {
    state
        .ld
        .environment_url(&record.project_key, &record.environment_key)
        .to_string()
}

/// Waits (at most `timeout`) until the workers are done with this generation
/// or the vendor changed their mind about it; returns it as it then is.
///
/// `record` must be the row as the caller's transaction left it (committed
/// or read), just now. The row is read again only when a change leaves no
/// other way to know it: an outcome a worker in this process committed is
/// handed over as it is, and a notification of the revision and status
/// already known says nothing new. Changes that arrived before the watch was
/// made are in it ([`crate::app::Runtime::watch`]). Without any
/// notification the row is read every [`FALLBACK_POLL`].
pub async fn wait_until_settled(
    state: &AppState,
    record: EnvironmentRecord,
    timeout: Duration,
) -> Result<EnvironmentRecord> {
    if record.is_settled() || timeout.is_zero() {
        return Ok(record);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let watch = state.lifecycle.watch(record.id);
    let read = || async {
        environments::get(&state.db, &record.tenant_id, record.id)
            .await?
            .ok_or(EnvironmentError::Gone)
    };
    let (mut seen, change) = watch.latest();
    let mut current = record.clone();
    if seen > 0 {
        current = take(change, current, read).await?;
    }
    loop {
        if current.is_settled()
            || current.desired != record.desired
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(current);
        }
        // Armed before looking at the latest change, so a change between
        // the look and the wait still wakes us.
        let notified = watch.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (sequence, change) = watch.latest();
        if sequence == seen {
            let nap = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(FALLBACK_POLL);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(nap) => current = read().await?,
            }
            continue;
        }
        seen = sequence;
        current = take(change, current, read).await?;
    }
}

/// The row after `change`, from what `change` says if it says enough, else
/// read.
async fn take<F, Fut>(
    change: Change,
    current: EnvironmentRecord,
    read: F,
) -> Result<EnvironmentRecord>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<EnvironmentRecord>>,
{
    match change {
        // Never step back to an older revision than one already known.
        Change::Settled(row) if row.revision >= current.revision => Ok(*row),
        Change::Notice(Some((revision, status)))
            if revision == current.revision && status == current.status =>
        {
            Ok(current)
        }
        _ => read().await,
    }
}
