//! One row per generation of an ephemeral environment: what the vendor wants
//! (`desired`), how far the workers got (`status`), and what LaunchDarkly gave
//! back (client-side id, sealed SDK and mobile keys).
//!
//! The queries live in `requests` (what a PUT, DELETE or read does),
//! `outcomes` and `settle` (what the workers record), `batched` (the API's
//! writes several at once) and `housekeeping` (offboarding, the
//! TTL and the sweeper); every one is re-exported here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::ids::{EphemeralId, TenantId};
use crate::store::jobs::{Job, JobKind};

/// `query_as!` into [`EnvironmentRow`]: the SQL must be literal, so the typed
/// column list is spliced in here once: `rows!("select" ; "from environments
/// where ...", args)` or `rows!("update ... returning" ; "", args)`;
/// `rows!(ClaimedRow => ...)` for a statement that also says `claimed` (the
/// head may be several literals, joined). Each
/// column says whether it may be null (`!`, `?`), as the table's `not null`
/// constraints and [`EnvironmentRow`]'s fields do, rather than leaving it to
/// the macro's inference, which cannot follow a column through a `union`.
/// Defined before the `mod` lines below so the query modules can use it.
macro_rules! rows {
    ($head:literal ; $tail:literal $(, $arg:expr)* $(,)?) => {
        rows!(EnvironmentRow => $head ; $tail $(, $arg)*)
    };
    ($row:ident => $($head:literal)+ ; $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            $row,
            $($head +)+
                r#" id as "id!", seq as "seq!", tenant_id as "tenant_id!: TenantId",
                      ephemeral_id as "ephemeral_id!: EphemeralId", generation as "generation!",
                      revision as "revision!", desired as "desired!: Desired", status as "status!: Status",
                      request as "request!", project_key as "project_key!", environment_key as "environment_key!",
                      environment_name as "environment_name!", source_environment_key as "source_environment_key!",
                      color as "color!", tags as "tags!", flags as "flags!", client_side_id as "client_side_id?",
                      sdk_key as "sdk_key?", mobile_key as "mobile_key?", expires_at as "expires_at?: _",
                      last_error as "last_error?", refused as "refused!", failure_code as "failure_code?: FailureCode",
                      ready_at as "ready_at?: _", created_at as "created_at!: _", updated_at as "updated_at!: _" "#
                + $tail
            $(, $arg)*
        )
    };
}

mod batched;
mod housekeeping;
mod outcomes;
mod requests;
mod settle;

pub use batched::{
    AbsentRequested, NewRequested, insert_requested_many, mark_absent_requested_many,
};
pub use housekeeping::{
    count_deleting, count_live, expire, mark_all_absent, projects_with_sources, sweepable_keys,
    tenants_with_expired,
};
pub use outcomes::{mark_deleted, mark_failed, note_error, record_created};
pub use requests::{
    FIRST_GENERATION, FIRST_REVISION, Requested, current, get, get_for_update, insert_requested,
    list, lock_ephemeral, mark_absent, mark_absent_requested, max_generation, present_for_update,
    rearm,
};
pub use settle::{Next, NextClaim, Settled, Settlement, settle, settle_many};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Desired {
    Present,
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Ready,
    Deleting,
    Deleted,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
            Self::Failed => "failed",
        }
    }

    /// The workers are done with the generation's revision in this status.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ready | Self::Deleted | Self::Failed)
    }

    /// The inverse of [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Ready,
            Self::Deleting,
            Self::Deleted,
            Self::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// Which of a request's choices made a generation fail (the API's code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    UnknownProject,
    UnknownSourceEnvironment,
    UnknownFlag,
    InvalidFlagValue,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownProject => "unknown_project",
            Self::UnknownSourceEnvironment => "unknown_source_environment",
            Self::UnknownFlag => "unknown_flag",
            Self::InvalidFlagValue => "invalid_flag_value",
        }
    }
}

/// Declares [`EnvironmentRow`] and [`ClaimedRow`] from one field list, so
/// that `query_as!` can fill either: the same columns, and for a statement
/// that claims the row's job as it writes the row, whether it did.
macro_rules! environment_rows {
    ($($(#[$doc:meta])* $field:ident: $ty:ty,)*) => {
        /// A stored generation. `sdk_key` and `mobile_key` hold sealed values (see
        /// `crypto`); open them with `lifecycle::reveal_keys`.
        #[derive(Clone)]
        pub struct EnvironmentRow {
            $($(#[$doc])* pub $field: $ty,)*
        }

        /// A generation a statement just wrote, and whether that statement
        /// also claimed its job for this replica's workers (`jobs::Claim`).
        pub struct ClaimedRow {
            $(pub $field: $ty,)*
            pub claimed: bool,
        }

        impl ClaimedRow {
            /// The row, and whether its job was claimed.
            pub fn split(self) -> (EnvironmentRow, bool) {
                (EnvironmentRow { $($field: self.$field,)* }, self.claimed)
            }
        }

        /// A generation a worker's outcome just wrote ([`settle`]), and
        /// the next due job the same statement claimed for that worker, if
        /// it did (its columns, `null` when it claimed none).
        pub struct SettledRow {
            $(pub $field: $ty,)*
            pub next_id: Option<Uuid>,
            pub next_tenant_id: Option<TenantId>,
            pub next_kind: Option<JobKind>,
            pub next_environment_id: Option<Uuid>,
            pub next_attempts: Option<i32>,
            pub next_run_at: Option<DateTime<Utc>>,
            pub next_locked_until: Option<DateTime<Utc>>,
            pub next_last_error: Option<String>,
            pub next_created_at: Option<DateTime<Utc>>,
        }

        impl SettledRow {
            /// The row, and the job claimed for `worker`, if any.
            pub fn split(self, worker: &str) -> (EnvironmentRow, Option<Job>) {
                let next = match (
                    self.next_id,
                    self.next_tenant_id,
                    self.next_kind,
                    self.next_attempts,
                    self.next_run_at,
                    self.next_created_at,
                ) {
                    (Some(id), Some(tenant_id), Some(kind), Some(attempts), Some(run_at), Some(created_at)) => {
                        Some(Job {
                            id,
                            tenant_id,
                            kind,
                            environment_id: self.next_environment_id,
                            attempts,
                            run_at,
                            locked_by: Some(worker.to_owned()),
                            locked_until: self.next_locked_until,
                            last_error: self.next_last_error,
                            created_at,
                        })
                    }
                    _ => None,
                };
                (EnvironmentRow { $($field: self.$field,)* }, next)
            }
        }
    };
}

environment_rows! {
    id: Uuid,
    seq: i64,
    tenant_id: TenantId,
    ephemeral_id: EphemeralId,
    generation: i32,
    revision: i32,
    desired: Desired,
    status: Status,
    request: Value,
    project_key: String,
    environment_key: String,
    environment_name: String,
    source_environment_key: String,
    color: String,
    tags: Vec<String>,
    /// Flag key → the value served to every context (a JSON object).
    flags: Value,
    client_side_id: Option<String>,
    sdk_key: Option<String>,
    mobile_key: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    /// A safety rule refused the delete (only while `status` is failed).
    refused: bool,
    /// Which choice of the request LaunchDarkly did not know (only while failed).
    failure_code: Option<FailureCode>,
    ready_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for EnvironmentRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvironmentRow")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("ephemeral_id", &self.ephemeral_id)
            .field("generation", &self.generation)
            .field("desired", &self.desired)
            .field("status", &self.status)
            .field("environment_key", &self.environment_key)
            .finish_non_exhaustive()
    }
}

impl EnvironmentRow {
    /// The workers have nothing left to do for this generation.
    pub fn is_settled(&self) -> bool {
        match self.desired {
            Desired::Present => matches!(self.status, Status::Ready | Status::Failed),
            Desired::Absent => matches!(self.status, Status::Deleted | Status::Failed),
        }
    }
}

/// A generation to insert: desired present, status pending.
pub struct NewEnvironment<'a> {
    pub id: Uuid,
    pub tenant: &'a TenantId,
    pub ephemeral_id: &'a EphemeralId,
    pub generation: i32,
    pub request: Value,
    pub project_key: &'a str,
    pub environment_key: &'a str,
    pub environment_name: &'a str,
    pub source_environment_key: &'a str,
    pub color: &'a str,
    pub tags: &'a [String],
    pub flags: Value,
    pub expires_at: Option<DateTime<Utc>>,
}
