//! LaunchDarkly REST API v2 and OAuth client.
//!
//! Pure library code: no database, no routes. The connect flow, token refresh and
//! the lifecycle engine are built on top of it.
//!
//! - [`LdClient`] speaks the handful of REST operations ld-eaas needs, with typed
//!   errors ([`LdError`]), full pagination and LaunchDarkly's rate-limit headers
//!   honoured per account through a shared [`RateLimitGate`].
//! - Flags: [`LdClient::get_feature_flag`] (variation ids, targeting in one
//!   environment) and [`LdClient::patch_feature_flag_semantic`] (semantic patch
//!   [`Instruction`]s), with [`FlagError`] naming a missing flag or environment.
//! - [`LdOAuth`] runs the authorization-code flow with PKCE, refreshes and revokes.
//!
//! Every request carries `LD-API-Version` and the partner User-Agent; no request or
//! log line ever carries a token or SDK key outside the `Authorization` header.

mod auth;
mod client;
mod error;
mod flags;
mod http;
mod models;
mod oauth;
mod operations;
// Its `SystemClock` is this library's own wall clock, the default for
// callers that inject none (the app injects its clock into the gate).
#[allow(clippy::disallowed_methods)]
mod ratelimit;

pub use auth::{Credential, RequestAuth};
pub use client::{LdClient, LdClientConfig};
pub use error::{LdError, OAuthError};
pub use flags::{
    FeatureFlag, FlagConfig, FlagError, FlagRule, FlagTarget, Instruction, TargetInput, Variation,
    VariationOrRollout,
};
pub use models::{
    CallerIdentity, DeleteOutcome, Environment, EnvironmentPost, Link, Project, SdkKeys, SourceEnv,
};
pub use oauth::{
    AuthorizeRequest, CsrfToken, LdOAuth, OAuthClientConfig, PkceCodeVerifier, TokenHint, TokenSet,
};
pub use operations::SEMANTIC_PATCH_CONTENT_TYPE;
pub use ratelimit::{
    BoxFuture, Bucket, Clock, InMemoryRateLimitStore, Lesson, RateLimitGate, RateLimitStore,
    Reservation, SAME_WINDOW_SLACK, SHARED_BELOW, SharedSeed, StoreError, SystemClock,
    UNKNOWN_END_EXPIRY,
};

/// The REST API version every request pins, so an account's token default cannot
/// change response shapes under us.
pub const API_VERSION: &str = "20240415";

/// Header that carries [`API_VERSION`].
pub const API_VERSION_HEADER: &str = "LD-API-Version";
