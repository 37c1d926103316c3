//! The integration tests: one binary, a module per area, the harness in
//! `support`. Every test runs the real server against a fresh Postgres
//! database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod api_spec;
mod assets;
mod auth_cache;
mod connect;
mod docs;
mod foundation;
mod hardening;
mod launchdarkly;
mod lifecycle;
mod private_postgres;
mod simulator;
mod statement_pool;
mod ui;
