//! OAuth 2.0 as LaunchDarkly runs it (not in the OpenAPI document): authorization
//! code with PKCE S256 at `/trust/oauth/authorize` (a consent page, or an automatic
//! yes), tokens at `/trust/oauth/token`, revocation at `/trust/oauth/revoke`, and
//! RFC 8414 metadata. Scopes are LaunchDarkly's roles `reader` and `writer`.

mod authorize;
mod grants;
mod token;

pub(crate) use authorize::{authorize, decide};
pub(crate) use grants::OAuthState;
pub(crate) use token::{revoke, token};

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::state::SharedState;

/// `GET /.well-known/oauth-authorization-server`
pub(crate) async fn metadata(State(shared): State<SharedState>) -> Json<Value> {
    let base = &shared.settings.base_url;
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/trust/oauth/authorize"),
        "token_endpoint": format!("{base}/trust/oauth/token"),
        "revocation_endpoint": format!("{base}/trust/oauth/revoke"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["reader", "writer"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    }))
}
