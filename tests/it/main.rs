//! The integration tests: one binary, a module per area. Every test runs the
//! real server against a fresh Postgres database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod api_spec;
mod browser;
mod browser_support;
mod connect;
mod foundation;
mod hardening;
mod launchdarkly;
mod lifecycle;
mod openapi;
mod simulator;
mod ui;
mod ui_demo;
mod ui_manifest;
mod ui_pages;
