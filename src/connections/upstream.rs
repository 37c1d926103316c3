//! Calling LaunchDarkly as a tenant: its credential, one refresh after a 401,
//! and a count of every call by outcome.

use std::future::Future;

use chrono::{DateTime, Utc};

use super::{ConnectionError, TenantCredential, credential, refresh_after_unauthorized};
use crate::app::AppState;
use crate::ids::TenantId;
use crate::launchdarkly::{Environment, LdError, RequestAuth};

/// Why a call as the tenant did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Ld(#[from] LdError),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
}

/// The metrics label for an outcome.
fn status_label(result: &Result<(), &LdError>) -> String {
    match result {
        Ok(()) => "ok".to_owned(),
        Err(LdError::Unauthorized) => "401".to_owned(),
        Err(LdError::Forbidden { .. }) => "403".to_owned(),
        Err(LdError::NotFound) => "404".to_owned(),
        Err(LdError::Conflict { .. }) => "409".to_owned(),
        Err(LdError::RateLimited { .. }) => "429".to_owned(),
        Err(LdError::InvalidRequest { .. }) => "400".to_owned(),
        Err(LdError::Upstream { status } | LdError::UnexpectedStatus { status, .. }) => {
            status.to_string()
        }
        Err(LdError::Timeout) => "timeout".to_owned(),
        Err(LdError::Transport { .. }) => "transport".to_owned(),
        Err(_) => "other".to_owned(),
    }
}

/// A tenant's session with LaunchDarkly for the length of one job or request.
pub struct Upstream<'a> {
    state: &'a AppState,
    tenant: &'a TenantId,
    credential: TenantCredential,
    refreshed: bool,
}

impl<'a> Upstream<'a> {
    pub async fn connect(
        state: &'a AppState,
        tenant: &'a TenantId,
    ) -> Result<Self, ConnectionError> {
        let credential = credential(state, tenant).await?;
        Ok(Self {
            state,
            tenant,
            credential,
            refreshed: false,
        })
    }

    /// The LaunchDarkly account the tenant's calls count against.
    pub fn account_id(&self) -> &str {
        &self.credential.account_id
    }

    /// Runs `op` with the credential; after a 401, refreshes once and runs it
    /// again. `operation` names it in the metrics.
    pub async fn call<T, F, Fut>(&mut self, operation: &'static str, op: F) -> Result<T, CallError>
    where
        F: Fn(RequestAuth) -> Fut,
        Fut: Future<Output = Result<T, LdError>>,
    {
        loop {
            let result = op(self.credential.auth.clone()).await;
            self.count(operation, result.as_ref().map(|_| ()));
            match result {
                Err(LdError::Unauthorized) if !self.refreshed => {
                    self.refreshed = true;
                    self.credential =
                        refresh_after_unauthorized(self.state, self.tenant, &self.credential)
                            .await?;
                }
                other => return other.map_err(CallError::Ld),
            }
        }
    }

    /// Reads one environment (with the tenant's credential, counted).
    pub async fn get_environment(
        &mut self,
        project: &str,
        key: &str,
    ) -> Result<Environment, CallError> {
        let ld = &self.state.ld;
        self.call("get_environment", |auth| async move {
            ld.get_environment(&auth, project, key).await
        })
        .await
    }

    /// Deletes one environment; already gone counts as done.
    pub async fn delete_environment(&mut self, project: &str, key: &str) -> Result<(), CallError> {
        let ld = &self.state.ld;
        let deleted = self
            .call("delete_environment", |auth| async move {
                ld.delete_environment(&auth, project, key).await
            })
            .await;
        match deleted {
            Ok(_) | Err(CallError::Ld(LdError::NotFound)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn count(&self, operation: &'static str, result: Result<(), &LdError>) {
        let status = status_label(&result);
        let metrics = &self.state.metrics;
        metrics.inc(
            "ld_eaas_launchdarkly_calls_total",
            "LaunchDarkly API calls by operation and outcome",
            &[("operation", operation), ("status", status.as_str())],
        );
        if let Err(LdError::RateLimited { .. }) = result {
            metrics.inc(
                "ld_eaas_launchdarkly_rate_limited_total",
                "LaunchDarkly calls refused or held back by a rate limit",
                &[("operation", operation)],
            );
        }
    }
}

/// One call for a person who is waiting (the settings page, the settings
/// API): short rate limits are waited out until `deadline`, never past it.
pub async fn interactive<T, F, Fut>(
    state: &AppState,
    tenant: &TenantId,
    deadline: DateTime<Utc>,
    operation: &'static str,
    op: F,
) -> Result<T, CallError>
where
    F: Fn(RequestAuth) -> Fut,
    Fut: Future<Output = Result<T, LdError>>,
{
    let mut upstream = Upstream::connect(state, tenant).await?;
    let mut rounds = 0;
    loop {
        match upstream.call(operation, &op).await {
            // Bounded too, in case the clock does not move.
            Err(CallError::Ld(LdError::RateLimited { reset_at }))
                if reset_at <= deadline && rounds < 5 =>
            {
                rounds += 1;
                let wait = (reset_at - state.now())
                    .to_std()
                    .unwrap_or_default()
                    .saturating_add(crate::retry::jitter(250));
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}
