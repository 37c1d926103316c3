//! The credential a request is made with, and the account it counts against.

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A LaunchDarkly credential. `Debug` prints `[REDACTED]` for the secret.
#[derive(Debug, Clone)]
pub enum Credential {
    /// An OAuth access token, sent as `Authorization: Bearer <token>`.
    OAuth(SecretString),
    /// An API access token pasted by the customer, sent raw in `Authorization`.
    ApiToken(SecretString),
}

impl Credential {
    /// The `Authorization` header value, marked sensitive so that hyper and any
    /// header dump redact it.
    pub(crate) fn header_value(&self) -> Result<HeaderValue, InvalidCredential> {
        let raw = match self {
            Self::OAuth(token) => format!("Bearer {}", token.expose_secret()),
            Self::ApiToken(token) => token.expose_secret().to_owned(),
        };
        let mut value = HeaderValue::from_str(&raw).map_err(|_| InvalidCredential)?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// A stable, non-reversible name for the token, used as a rate-limit account
    /// key while the real account id is not known yet (e.g. the very first
    /// caller-identity call). Never the token itself.
    fn fingerprint(&self) -> String {
        let token = match self {
            Self::OAuth(token) | Self::ApiToken(token) => token.expose_secret(),
        };
        let digest = Sha256::digest(token.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("token:{hex}")
    }
}

/// The token contains characters that cannot go in an HTTP header.
#[derive(Debug)]
pub(crate) struct InvalidCredential;

/// Who a request is made as: the credential plus, when known, the LaunchDarkly
/// account id it belongs to. Rate limits are per account, so the account id lets
/// every token of one account share one throttle state (and keeps one account's
/// throttling away from every other account).
#[derive(Debug, Clone)]
pub struct RequestAuth {
    pub credential: Credential,
    pub account_id: Option<String>,
}

impl RequestAuth {
    pub fn new(credential: Credential, account_id: Option<String>) -> Self {
        Self {
            credential,
            account_id,
        }
    }

    /// The account key rate-limit state is kept under (see
    /// [`RateLimitGate::blocked_until`](super::RateLimitGate::blocked_until)).
    pub fn rate_limit_key(&self) -> String {
        match &self.account_id {
            Some(id) => format!("account:{id}"),
            None => self.credential.fingerprint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        let auth = RequestAuth::new(Credential::ApiToken("api-secret-123".into()), None);
        let printed = format!("{auth:?}");
        assert!(!printed.contains("api-secret-123"), "{printed}");
    }

    #[test]
    fn oauth_tokens_are_sent_as_bearer_and_api_tokens_raw() {
        let oauth = Credential::OAuth("abc".into()).header_value();
        let api = Credential::ApiToken("api-xyz".into()).header_value();
        assert!(matches!(oauth, Ok(v) if v == "Bearer abc" && v.is_sensitive()));
        assert!(matches!(api, Ok(v) if v == "api-xyz"));
    }

    #[test]
    fn unknown_accounts_are_keyed_by_a_token_fingerprint_not_the_token() {
        let auth = RequestAuth::new(Credential::ApiToken("api-secret-123".into()), None);
        let key = auth.rate_limit_key();
        assert!(key.starts_with("token:"));
        assert!(!key.contains("secret"));
        let known = RequestAuth::new(auth.credential.clone(), Some("acc1".into()));
        assert_eq!(known.rate_limit_key(), "account:acc1");
    }
}
