//! Storage: one module per table family. Every function that touches a
//! tenant's rows takes the tenant id and filters on it. Every SQL statement
//! of the application lives here, written with sqlx's compile-checked macros
//! (offline data in `.sqlx/`; see the README on regenerating it).
//!
//! Timestamps: tower-sessions-sqlx-store turns on sqlx's `time` feature, and
//! with it the macros map `timestamptz` to `time::OffsetDateTime`, not chrono.
//! So timestamp columns carry an override (`"col: _"` in `query_as!`, the
//! struct's field type; `"col: DateTime<Utc>"` in `query!`/`query_scalar!`)
//! and timestamp arguments a cast (`now as DateTime<Utc>`). Such a cast skips
//! the macro's check of that one argument's SQL type; everything else in the
//! statement (columns, other arguments, nullability) stays checked.

pub mod api_keys;
pub mod audit;
pub mod connect_links;
pub mod connections;
pub mod environments;
pub mod jobs;
pub mod migrations;
pub mod notify;
pub mod outbox;
pub mod ratelimits;
pub mod rotation;
pub mod settings;
pub mod sweeps;
pub mod tenants;
mod types;

use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

/// SHA-256 of a bearer secret (API key, connect link token): what we store.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// `len` characters from [A-Za-z0-9], from the OS RNG (about 5.95 bits each).
pub fn random_alphanumeric(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        OsRng.fill_bytes(&mut buf);
        // Rejection sampling keeps the distribution uniform (248 = 4 * 62).
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[usize::from(*b) % ALPHABET.len()] as char);
        }
    }
    out
}
