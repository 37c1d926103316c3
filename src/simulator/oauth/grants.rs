//! Registered clients and everything issued to them: pending consents,
//! authorization codes, access tokens and refresh tokens. One authorization is a
//! "grant"; tokens remember theirs, so revoking a refresh token or replaying a code
//! can take down every token of that grant.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::super::config::{OAuthClientRegistration, Role};
use super::super::model::secret;

/// A consent page shown and not yet answered.
#[derive(Debug, Clone)]
pub(crate) struct PendingConsent {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Role,
    pub state: Option<String>,
    pub code_challenge: String,
    pub expires_at: Instant,
}

#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub grant_id: u64,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Role,
    pub account_id: String,
    pub code_challenge: String,
    pub expires_at: Instant,
    /// Codes are single-use: any exchange attempt spends it.
    pub spent: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct AccessGrant {
    pub grant_id: u64,
    pub client_id: String,
    pub account_id: String,
    pub scope: Role,
    pub expires_at: Instant,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    pub grant_id: u64,
    pub client_id: String,
    pub account_id: String,
    pub scope: Role,
}

/// What a token request returns.
#[derive(Debug, Clone)]
pub(crate) struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub scope: Role,
}

#[derive(Default)]
pub(crate) struct OAuthState {
    pub clients: HashMap<String, OAuthClientRegistration>,
    pub pending: HashMap<String, PendingConsent>,
    pub codes: HashMap<String, AuthCode>,
    access: HashMap<String, AccessGrant>,
    refresh: HashMap<String, RefreshGrant>,
    next_grant: u64,
    /// Token endpoint calls by `grant_type` as sent (failures included).
    pub token_calls: HashMap<String, usize>,
}

impl OAuthState {
    pub fn new(clients: &[OAuthClientRegistration]) -> Self {
        Self {
            clients: clients
                .iter()
                .map(|c| (c.client_id.clone(), c.clone()))
                .collect(),
            ..Self::default()
        }
    }

    /// The registered client if `secret` is its secret.
    pub fn authenticate(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Option<&OAuthClientRegistration> {
        self.clients.get(client_id).filter(|c| {
            // Constant-time enough for a simulator, but still compares every byte.
            c.client_secret.len() == client_secret.len()
                && c.client_secret
                    .bytes()
                    .zip(client_secret.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    }

    pub fn new_grant_id(&mut self) -> u64 {
        self.next_grant += 1;
        self.next_grant
    }

    /// A valid (unexpired) access token's grant.
    pub fn access_grant(&self, token: &str) -> Option<&AccessGrant> {
        self.access
            .get(token)
            .filter(|g| g.expires_at > Instant::now())
    }

    pub fn refresh_grant(&self, token: &str) -> Option<&RefreshGrant> {
        self.refresh.get(token)
    }

    /// Issues an access token (and a refresh token unless `reuse_refresh` names one
    /// to keep) for a grant.
    pub fn issue(
        &mut self,
        grant_id: u64,
        client_id: &str,
        account_id: &str,
        scope: Role,
        ttl: Duration,
        reuse_refresh: Option<String>,
    ) -> IssuedTokens {
        let access_token = secret("sim-oat-");
        self.access.insert(
            access_token.clone(),
            AccessGrant {
                grant_id,
                client_id: client_id.to_owned(),
                account_id: account_id.to_owned(),
                scope,
                expires_at: Instant::now() + ttl,
            },
        );
        let refresh_token = reuse_refresh.unwrap_or_else(|| {
            let token = secret("sim-ort-");
            self.refresh.insert(
                token.clone(),
                RefreshGrant {
                    grant_id,
                    client_id: client_id.to_owned(),
                    account_id: account_id.to_owned(),
                    scope,
                },
            );
            token
        });
        IssuedTokens {
            access_token,
            refresh_token,
            expires_in: ttl.as_secs(),
            scope,
        }
    }

    pub fn remove_refresh(&mut self, token: &str) {
        self.refresh.remove(token);
    }

    /// Revokes every token of a grant (a revoked refresh token, a replayed code).
    pub fn revoke_grant(&mut self, grant_id: u64) {
        self.access.retain(|_, g| g.grant_id != grant_id);
        self.refresh.retain(|_, g| g.grant_id != grant_id);
    }

    /// Revokes `token` if `client_id` owns it: a refresh token takes its whole grant
    /// along, an access token only itself (RFC 7009). Unknown tokens are ignored.
    pub fn revoke(&mut self, client_id: &str, token: &str) {
        if let Some(grant) = self.refresh.get(token).filter(|g| g.client_id == client_id) {
            let grant_id = grant.grant_id;
            self.revoke_grant(grant_id);
        } else if self
            .access
            .get(token)
            .is_some_and(|g| g.client_id == client_id)
        {
            self.access.remove(token);
        }
    }

    /// Every access token issued so far stops working.
    pub fn expire_access_tokens(&mut self) {
        let now = Instant::now();
        for grant in self.access.values_mut() {
            grant.expires_at = now;
        }
    }

    /// Every refresh token issued so far stops working.
    pub fn revoke_refresh_tokens(&mut self) {
        self.refresh.clear();
    }

    /// Drops consents and codes nobody can use any more.
    pub fn prune(&mut self) {
        let now = Instant::now();
        self.pending.retain(|_, p| p.expires_at > now);
        self.codes.retain(|_, c| c.expires_at > now);
        self.access
            .retain(|_, g| g.expires_at + Duration::from_secs(3600) > now);
    }
}
