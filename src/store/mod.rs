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
//!
//! # Lock order
//!
//! Every transaction that waits for more than one lock takes them in this
//! order, skipping those it does not need, so no two of them can wait for
//! each other (a deadlock: Postgres kills one after `deadlock_timeout`, 1 s,
//! and the caller sees a 500):
//!
//! 1. the per-ephemeral-id advisory lock ([`environments::lock_ephemeral`]);
//!    API calls only;
//! 2. environment rows ([`environments::present_for_update`],
//!    [`environments::get_for_update`], the `update`s in `mark_*`, `rearm`,
//!    [`environments::mark_all_absent`]);
//! 3. the reconcile job rows of those environments
//!    ([`jobs::enqueue_reconcile`]'s upsert of an open job,
//!    [`jobs::settle_held`], which checks the lease and writes the outcome);
//! 4. the tenant's offboarding advisory lock ([`jobs::lock_offboarding`],
//!    also in [`jobs::wake_offboarding`]), then its offboarding job row.
//!
//! So the API (`environments::ensure_environment`, `request_delete`,
//! `request_recreate`) locks 1, 2, 3; a worker recording an outcome
//! (`jobs::reconcile::apply`) locks the environment row *before* checking its
//! job's lease, then 4; offboarding and TTL expiry lock 2 then 3;
//! `jobs::conclude` locks only the job row.
//!
//! The one-statement writes of the common cases keep the same order inside
//! their statement: [`environments::mark_absent_requested`] (a DELETE)
//! updates the environment row and upserts its job from the update's output
//! (2, then 3); [`environments::settle`] (a worker's created or deleted
//! outcome) locks the environment row in a CTE that the job's update reads
//! before it locks the job row (2, then 3), and leaves the offboarding case
//! (4) to the transaction. [`environments::insert_requested`] (a PUT) only
//! inserts, and takes lock 1 with `pg_try_advisory_xact_lock`, which never
//! waits: if a transaction holds it, the statement writes nothing and the
//! caller takes the locked path. Its reads (the id's generations, the
//! tenant's running jobs for a [`jobs::Claim`]) lock nothing.
//!
//! Their batched forms, which write the PUTs or DELETEs that arrived
//! together in one statement (`environments::batched`), keep it too:
//! [`environments::insert_requested_many`] tries each id's lock and never
//! waits; [`environments::mark_absent_requested_many`] locks the live
//! environment rows first, in the order of their ids (so two batches that
//! share rows cannot wait for each other), then upserts their job rows.
//! So does the workers' ([`environments::settle_many`], several outcomes in
//! one statement): it locks their environment rows in the order of their
//! ids, then deletes their job rows (2, then 3), and claims the next jobs
//! with `SKIP LOCKED`.
//!
//! Not part of the order, because nobody waits for them or they wait for
//! nothing while holding another lock:
//! - inserts (new generations, new jobs, audit rows, the webhook outbox,
//!   `pg_notify`): a row no other transaction can see cannot be waited for.
//!   Their foreign keys take a `KEY SHARE` lock on the tenant (and a job's
//!   on its environment, already held by then), which only deleting that
//!   row conflicts with;
//! - the shared rate-limit budget ([`ratelimits::reserve`], `release`,
//!   `learn`): each statement locks one row and runs outside any transaction;
//! - statements that lock many rows of one table on their own use
//!   `SKIP LOCKED` and never wait ([`jobs::claim`], [`environments::expire`],
//!   [`jobs::hold_account`], the outbox's claim, and the claim of a worker's
//!   next job in its outcome, [`environments::settle`] and
//!   [`environments::settle_many`], made after that statement locked its
//!   own environment and job rows);
//! - the connection row ([`connections::get_for_update`]) and the settings
//!   and tenant rows are locked alone, in transactions that touch no
//!   environment or job (credential refresh, connect, settings save,
//!   starting an offboarding). A tenant row is deleted (cascading to every
//!   table) only when offboarding found none of its environments still being
//!   worked on.

//!
//! # What is durable when
//!
//! A write the vendor is answered about commits durably (its commit waits
//! for the disk) before the answer: a PUT's new generation and its job, a
//! DELETE's mark and its job, every transaction. A few statements commit
//! without waiting for the disk (`set_config('synchronous_commit', 'off',
//! true)` in the statement, for its own transaction only), because a
//! Postgres crash that loses them loses nothing that is not done again:
//!
//! - a worker's claim and lease renewal ([`jobs::claim`],
//!   [`jobs::heartbeat`]): lost, the job is queued or under its old lease,
//!   and runs again (a claim made by the API's statement that queues the
//!   job, [`jobs::Claim`], is part of that durable write);
//! - a worker's one-statement outcome ([`environments::settle`]), with the
//!   claim of the worker's next job it may make: lost, the generation is
//!   back where the API's durable commit left it, its job queued, and the
//!   job runs again (the next job is queued as before its claim). A create then finds our environment
//!   (409) and adopts it, with the same keys; a delete finds it gone (404);
//! - the announcements of committed API writes
//!   ([`notify::announce_committed`], many in one statement, sent by
//!   `app::announcements`): a hint, which polling stands in for.
//!
//! Any later durable commit flushes these too (the log is written in
//! order). Why it matters: Postgres holds one lock over every notifying
//! commit until it is flushed, so durable notifying commits queue behind
//! each other's disk flushes ([`notify`]).

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
