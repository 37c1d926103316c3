//! The customer's browser UI: server-rendered pages, sessions in Postgres.
//!
//! Pages work without JavaScript; `static/app.js` only enhances them. Every
//! state-changing form carries the session's CSRF token, and every error a
//! person can meet is a friendly page (see [`friendly_errors`]).

pub mod activity;
pub mod assets;
pub mod connect;
pub mod environments;
pub mod layout;
pub mod oauth;
pub mod pages;
pub mod return_url;
pub mod session;
pub mod settings;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::PostgresStore;

use crate::app::AppState;
use crate::connections::ConnectionError;
use crate::environments::EnvironmentError;
use crate::error::{AppError, envelope};
use crate::tenants::TenantError;

pub use layout::{Layout, Nav};
pub use session::{CustomerSession, Flash, FlashKind};

pub const SESSION_COOKIE: &str = "ld_eaas_session";

pub fn router(state: AppState) -> Router<AppState> {
    let store = PostgresStore::new(state.db.pool().clone());
    let idle = tower_sessions::cookie::time::Duration::seconds(
        i64::try_from(state.config.session_idle_timeout.as_secs()).unwrap_or(8 * 3600),
    );
    let sessions = SessionManagerLayer::new(store)
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.config.cookies_secure())
        .with_expiry(Expiry::OnInactivity(idle));
    Router::new()
        .route("/", get(pages::home))
        .route(
            "/connect/switch",
            get(connect::show_switch).post(connect::answer_switch),
        )
        .route("/connect/{token}", get(connect::open_connect_link))
        .route(
            "/settings",
            get(settings::show_settings).post(settings::save_settings),
        )
        .route(
            "/settings/environments",
            get(settings::list_source_environments),
        )
        .route("/settings/preview", get(settings::preview_settings))
        .route("/environments", get(environments::list_environments))
        .route(
            "/environments/version",
            get(environments::environments_version),
        )
        .route(
            "/environments/{id}/keys",
            post(environments::reveal_environment_keys),
        )
        .route(
            "/environments/{id}/recreate",
            post(environments::recreate_environment),
        )
        .route(
            "/environments/{id}/delete",
            post(environments::delete_environment),
        )
        .route("/activity", get(activity::show_activity))
        .route("/oauth/start", post(oauth::start_oauth))
        .route("/oauth/callback", get(oauth::oauth_callback))
        .route("/connection/api-token", post(oauth::save_api_token))
        .route("/connection/disconnect", post(oauth::disconnect))
        .route("/static/{file}", assets::route())
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(state, friendly_errors))
        .layer(sessions)
}

/// An error shown to a person: a friendly page with the right status.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(err: AppError) -> Self {
        Self(err)
    }
}

// Domain errors reach a page through the same status and message as the
// API's, one `From` each; pages that say more match the variants first.
impl From<EnvironmentError> for PageError {
    fn from(err: EnvironmentError) -> Self {
        Self(err.into())
    }
}

impl From<TenantError> for PageError {
    fn from(err: TenantError) -> Self {
        Self(err.into())
    }
}

impl From<ConnectionError> for PageError {
    fn from(err: ConnectionError) -> Self {
        Self(err.into())
    }
}

impl From<sqlx::Error> for PageError {
    fn from(err: sqlx::Error) -> Self {
        Self(err.into())
    }
}

pub type PageResult<T> = Result<T, PageError>;

/// Marks a response as an error page to render; [`friendly_errors`] renders
/// it with the deployment's product name.
#[derive(Debug, Clone)]
pub struct FriendlyError {
    pub title: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub title: String,
    pub message: String,
}

fn title_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "Page not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::GONE => "This link no longer works",
        StatusCode::UNAUTHORIZED => "Please open your connect link again",
        StatusCode::METHOD_NOT_ALLOWED => "That does not work here",
        StatusCode::PAYLOAD_TOO_LARGE => "That was too much at once",
        s if s.is_client_error() => "Something is not right with that request",
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            "LaunchDarkly did not answer"
        }
        _ => "Something went wrong on our side",
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let err = self.0;
        err.log();
        let status = err.status();
        let message = match &err {
            AppError::Internal(_) => {
                "We could not finish that. It has been logged; please try again in a moment."
                    .to_owned()
            }
            other => other.public_message(),
        };
        render_error(status, title_for(status), message)
    }
}

/// An error page for `status`; the body is filled in by [`friendly_errors`].
pub fn render_error(status: StatusCode, title: &str, message: String) -> Response {
    let mut response = status.into_response();
    response.extensions_mut().insert(FriendlyError {
        title: title.to_owned(),
        message,
    });
    response
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// Turns every error answer of the browser routes into a page a person can
/// read: marked [`FriendlyError`]s, and also bare errors from extractors or
/// the router (405, a malformed form, a failed template render). Scripts
/// asking for JSON get the JSON envelope.
async fn friendly_errors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let json = wants_json(req.headers());
    let session = req.extensions().get::<tower_sessions::Session>().cloned();
    let response = next.run(req).await;
    let status = response.status();
    let marked = response.extensions().get::<FriendlyError>().cloned();
    let (title, message) = match marked {
        Some(FriendlyError { title, message }) => (title, message),
        None if status.as_u16() >= 400 && !is_html(&response) && !json => (
            title_for(status).to_owned(),
            if status.is_server_error() {
                "We could not finish that. It has been logged; please try again in a moment."
                    .to_owned()
            } else {
                "Go back and try again, or start from the navigation above.".to_owned()
            },
        ),
        None => return response,
    };
    if json {
        let code = status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
            .replace(' ', "_");
        let body = envelope(&code, &message);
        return (status, axum::Json(body)).into_response();
    }
    // The way back to the vendor's app, if this browser was given one (and
    // the handler did not just end the session).
    let return_url = match session {
        Some(session) => CustomerSession::wrap(session)
            .return_url()
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let return_url = return_url::still_allowed(return_url, &state.config.return_url_origins);
    let page = ErrorPage {
        layout: Layout::bare(&state.config.product_name, return_url),
        status: status.as_u16(),
        title,
        message,
    };
    let mut out = match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "error page failed to render");
            (status, "Something went wrong.").into_response()
        }
    };
    // Keep headers a handler set deliberately (e.g. Allow on a 405).
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// A form body whose malformed input is a friendly 400, never a plain-text
/// rejection. Fields should default so a missing CSRF token is reported as
/// such, not as a parse error.
pub struct WebForm<T>(pub T);

impl<S, T> FromRequest<S> for WebForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(PageError(AppError::PayloadTooLarge))
            }
            Err(_) => Err(PageError(AppError::invalid(
                "That form could not be read. Go back, reload the page and try again.",
            ))),
        }
    }
}

/// The fields every form of ours posts: the CSRF token.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct CsrfOnly {
    pub csrf_token: Option<String>,
}

/// Route guard for handlers that only need the token checked.
pub async fn check_csrf(session: &CustomerSession, token: Option<&str>) -> PageResult<()> {
    session.verify_csrf(token).await.map_err(PageError)
}
