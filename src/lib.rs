//! ld-eaas: a LaunchDarkly environment for every ephemeral environment an
//! Environments-as-a-Service vendor spins up.
//!
//! `main.rs` is thin; everything lives here so tests start the real server by
//! the same path as the binary.

pub mod launchdarkly;
