//! ld-eaas: a LaunchDarkly environment for every ephemeral environment an
//! Environments-as-a-Service vendor spins up.
//!
//! `main.rs` is thin; everything lives here so tests start the real server by
//! the same path as the binary.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connections;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod error;
pub mod ids;
pub mod launchdarkly;
pub mod lifecycle;
pub mod metrics;
pub mod server;
pub mod simulator;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod web;
