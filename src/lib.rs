//! ld-eaas: a LaunchDarkly environment for every ephemeral environment an
//! Environments-as-a-Service vendor spins up.
//!
//! `main.rs` is thin; everything lives here so tests start the real server by
//! the same path as the binary. ARCHITECTURE.md at the repository root maps
//! the layers: HTTP (`router`, `api`, `web`, `error`) over the domain
//! (`environments`, `connections`, `settings`, `tenants`, `jobs`,
//! `webhooks`, `audit`) over the foundations (`app`, `store`, `launchdarkly`,
//! `crypto`, `config`, `clock`, ...).

// Entry points.
pub mod cli;
pub mod demo;
pub mod startup;

// HTTP layers.
pub mod api;
pub mod error;
pub mod router;
pub mod server;
pub mod web;

// Domain.
pub mod audit;
pub mod connections;
pub mod environments;
pub mod jobs;
pub mod naming;
pub mod settings;
pub mod tenants;
pub mod webhooks;

// Foundations.
pub mod app;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod ids;
pub mod launchdarkly;
pub mod metrics;
pub mod pagination;
pub mod pgtemp;
pub mod ratelimit_store;
pub mod retry;
pub mod store;
pub mod telemetry;
pub mod text;

// The LaunchDarkly simulator is a LaunchDarkly of its own, with its own
// notion of time (token expiry, rate-limit windows): it reads the wall
// clock directly, as LaunchDarkly does.
#[allow(clippy::disallowed_methods)]
pub mod simulator;
