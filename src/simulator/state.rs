//! The simulator's whole state, behind one mutex. Handlers lock, work, and unlock
//! before any `.await`: nothing slow ever runs under the lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::config::{ApiTokenGrant, SimulatorConfig};
use super::faults::FaultState;
use super::model::SimAccount;
use super::oauth::OAuthState;
use super::ratelimit::RateLimiter;
use super::record::RequestLog;

/// What the handlers share.
pub(crate) struct Shared {
    state: Mutex<SimState>,
    pub settings: Settings,
    /// Cancelled on shutdown, so requests held by a timeout fault let go.
    pub shutdown: CancellationToken,
}

/// The parts of the configuration that never change while running.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub base_url: String,
    pub auto_approve: bool,
    pub access_token_ttl: Duration,
    pub auth_code_ttl: Duration,
    pub rotate_refresh_tokens: bool,
    pub oauth_account: Option<String>,
    pub max_page_limit: usize,
}

pub(crate) struct SimState {
    pub accounts: BTreeMap<String, SimAccount>,
    /// Keyed by the token itself: an in-memory simulator has nothing to leak it to.
    pub api_tokens: HashMap<String, ApiTokenGrant>,
    pub oauth: OAuthState,
    pub limiter: RateLimiter,
    pub faults: FaultState,
    pub log: RequestLog,
}

impl SimState {
    pub fn account(&self, id: &str) -> Option<&SimAccount> {
        self.accounts.get(id)
    }

    pub fn account_mut(&mut self, id: &str) -> Option<&mut SimAccount> {
        self.accounts.get_mut(id)
    }

    /// The account `id`, created empty if it does not exist yet.
    pub fn ensure_account(&mut self, id: &str) -> &mut SimAccount {
        self.accounts
            .entry(id.to_owned())
            .or_insert_with(|| SimAccount::new(id))
    }
}

impl Shared {
    pub fn new(config: &SimulatorConfig, base_url: String) -> Self {
        let settings = Settings {
            base_url,
            auto_approve: config.auto_approve,
            access_token_ttl: config.access_token_ttl,
            auth_code_ttl: config.auth_code_ttl,
            rotate_refresh_tokens: config.rotate_refresh_tokens,
            oauth_account: config.oauth_account.clone(),
            max_page_limit: config.max_page_limit.max(1),
        };
        let state = SimState {
            accounts: BTreeMap::new(),
            api_tokens: config
                .api_tokens
                .iter()
                .map(|g| (g.token.clone(), g.clone()))
                .collect(),
            oauth: OAuthState::new(&config.oauth_clients),
            limiter: RateLimiter::new(config.rate_limits.clone()),
            faults: FaultState::default(),
            log: RequestLog::default(),
        };
        Self {
            state: Mutex::new(state),
            settings,
            shutdown: CancellationToken::new(),
        }
    }

    /// The state. A panic elsewhere while holding the lock does not make the
    /// simulator unusable: the data is plain values, still consistent per field.
    pub fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The account whose member consents on the OAuth page.
    pub fn consenting_account(&self, state: &SimState) -> Option<String> {
        match &self.settings.oauth_account {
            Some(id) => Some(id.clone()),
            None if state.accounts.contains_key(super::seed::DEMO_ACCOUNT) => {
                Some(super::seed::DEMO_ACCOUNT.to_owned())
            }
            None => state.accounts.keys().next().cloned(),
        }
    }
}

pub(crate) type SharedState = Arc<Shared>;
