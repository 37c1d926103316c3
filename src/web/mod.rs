//! The customer's browser UI: server-rendered pages, sessions in Postgres.

pub mod assets;
pub mod connect;
pub mod oauth;
pub mod pages;
pub mod session;

use askama::Template;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::PostgresStore;

use crate::error::AppError;
use crate::startup::AppState;

pub use session::{CustomerSession, Flash, FlashKind};

pub const SESSION_COOKIE: &str = "ld_eaas_session";

pub fn router(state: AppState) -> Router<AppState> {
    let store = PostgresStore::new(state.db.clone());
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
        .route("/connect/{token}", get(connect::open_connect_link))
        .route("/settings", get(pages::settings))
        .route("/oauth/start", post(oauth::start_oauth))
        .route("/oauth/callback", get(oauth::oauth_callback))
        .route("/connection/api-token", post(oauth::save_api_token))
        .route("/connection/disconnect", post(oauth::disconnect))
        .route("/static/{file}", get(assets::serve))
        .fallback(pages::not_found)
        .layer(sessions)
}

/// An error shown to a person: a friendly page with the right status.
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(err: AppError) -> Self {
        Self(err)
    }
}

impl From<sqlx::Error> for PageError {
    fn from(err: sqlx::Error) -> Self {
        Self(err.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub product_name: &'a str,
    pub status: u16,
    pub title: &'a str,
    pub message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let err = self.0;
        err.log();
        let status = err.status();
        let title = match status {
            StatusCode::NOT_FOUND => "Page not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::GONE => "This link no longer works",
            StatusCode::UNAUTHORIZED => "Please open your connect link again",
            s if s.is_client_error() => "Something is not right with that request",
            _ => "Something went wrong on our side",
        };
        render_error(status, title, err.public_message())
    }
}

pub fn render_error(status: StatusCode, title: &str, message: String) -> Response {
    let page = ErrorPage {
        product_name: "LaunchDarkly environments",
        status: status.as_u16(),
        title,
        message,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "error page failed to render");
            (status, "Something went wrong.").into_response()
        }
    }
}

pub type PageResult<T> = Result<T, PageError>;
