//! One row per generation of an ephemeral environment: what the vendor wants
//! (`desired`), how far the workers got (`status`), and what LaunchDarkly gave
//! back (client-side id, sealed SDK and mobile keys).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::ids::{EphemeralId, TenantId};

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

/// A stored generation. `sdk_key` and `mobile_key` hold sealed values (see
/// `crypto`); open them with `lifecycle::reveal_keys`.
#[derive(Clone)]
pub struct EnvironmentRow {
    pub id: Uuid,
    pub seq: i64,
    pub tenant_id: TenantId,
    pub ephemeral_id: EphemeralId,
    pub generation: i32,
    pub revision: i32,
    pub desired: Desired,
    pub status: Status,
    pub request: Value,
    pub project_key: String,
    pub environment_key: String,
    pub environment_name: String,
    pub source_environment_key: String,
    pub color: String,
    pub tags: Vec<String>,
    /// Flag key → the value served to every context (a JSON object).
    pub flags: Value,
    pub client_side_id: Option<String>,
    pub sdk_key: Option<String>,
    pub mobile_key: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// A safety rule refused the delete (only while `status` is failed).
    pub refused: bool,
    /// Which choice of the request LaunchDarkly did not know (only while failed).
    pub failure_code: Option<FailureCode>,
    pub ready_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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

/// `query_as!` into [`EnvironmentRow`]: the SQL must be literal, so the typed
/// column list is spliced in here once: `rows!("select" ; "from environments
/// where ...", args)` or `rows!("update ... returning" ; "", args)`.
macro_rules! rows {
    ($head:literal ; $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            EnvironmentRow,
            $head
                + r#" id, seq, tenant_id as "tenant_id: TenantId", ephemeral_id as "ephemeral_id: EphemeralId",
                      generation, revision, desired as "desired: Desired", status as "status: Status",
                      request, project_key, environment_key, environment_name, source_environment_key,
                      color, tags, flags, client_side_id, sdk_key, mobile_key, expires_at as "expires_at: _",
                      last_error, refused, failure_code as "failure_code: FailureCode", ready_at as "ready_at: _", created_at as "created_at: _",
                      updated_at as "updated_at: _" "#
                + $tail
            $(, $arg)*
        )
    };
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

/// Serialises every request about one ephemeral environment (for the rest of
/// the transaction), so concurrent PUTs and DELETEs apply in a single order
/// and the last one's intent wins.
pub async fn lock_ephemeral(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
) -> sqlx::Result<()> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended($1, 7))",
        format!("environment/{tenant}/{ephemeral_id}"),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The generation the vendor wants to exist, locked for the transaction.
pub async fn present_for_update(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
) -> sqlx::Result<Option<EnvironmentRow>> {
    rows!(
        "select";
        "from environments
          where tenant_id = $1 and ephemeral_id = $2 and desired = 'present'
          for update",
        tenant.as_str(),
        ephemeral_id.as_str(),
    )
    .fetch_optional(&mut **tx)
    .await
}

/// The generation to show for an ephemeral id: the wanted one if any, else
/// the newest.
pub async fn current<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
) -> sqlx::Result<Option<EnvironmentRow>> {
    rows!(
        "select";
        "from environments
          where tenant_id = $1 and ephemeral_id = $2
          order by (desired = 'present') desc, generation desc
          limit 1",
        tenant.as_str(),
        ephemeral_id.as_str(),
    )
    .fetch_optional(db)
    .await
}

pub async fn max_generation(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        r#"select coalesce(max(generation), 0) as "max!" from environments where tenant_id = $1 and ephemeral_id = $2"#,
        tenant.as_str(),
        ephemeral_id.as_str(),
    )
    .fetch_one(&mut **tx)
    .await
}

pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    new: &NewEnvironment<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<EnvironmentRow> {
    rows!(
        "insert into environments (id, tenant_id, ephemeral_id, generation, desired, status, request,
                                   project_key, environment_key, environment_name, source_environment_key,
                                   color, tags, flags, expires_at, created_at, updated_at)
         values ($1, $2, $3, $4, 'present', 'pending', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)
         returning";
        "",
        new.id,
        new.tenant.as_str(),
        new.ephemeral_id.as_str(),
        new.generation,
        new.request,
        new.project_key,
        new.environment_key,
        new.environment_name,
        new.source_environment_key,
        new.color,
        new.tags,
        new.flags,
        new.expires_at as Option<DateTime<Utc>>,
        now as DateTime<Utc>,
    )
    .fetch_one(&mut **tx)
    .await
}

/// The vendor no longer wants this generation: the workers delete it.
pub async fn mark_absent<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<EnvironmentRow> {
    rows!(
        "update environments
            set desired = 'absent', status = 'deleting', refused = false, failure_code = null, revision = revision + 1,
                last_error = null, updated_at = $3
          where tenant_id = $1 and id = $2
          returning";
        "",
        tenant.as_str(),
        id,
        now as DateTime<Utc>,
    )
    .fetch_one(db)
    .await
}

/// Tries a failed generation again (a repeated PUT or DELETE).
pub async fn rearm<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<EnvironmentRow> {
    rows!(
        "update environments
            set status = case desired when 'present' then 'pending' else 'deleting' end, refused = false, failure_code = null,
                revision = revision + 1, updated_at = $3
          where tenant_id = $1 and id = $2
          returning";
        "",
        tenant.as_str(),
        id,
        now as DateTime<Utc>,
    )
    .fetch_one(db)
    .await
}

pub async fn get<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    id: Uuid,
) -> sqlx::Result<Option<EnvironmentRow>> {
    rows!(
        "select";
        "from environments where tenant_id = $1 and id = $2",
        tenant.as_str(),
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn get_for_update(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    id: Uuid,
) -> sqlx::Result<Option<EnvironmentRow>> {
    rows!(
        "select";
        "from environments where tenant_id = $1 and id = $2 for update",
        tenant.as_str(),
        id,
    )
    .fetch_optional(&mut **tx)
    .await
}

/// Newest first. `before_seq` is the `seq` of the last row of the previous page.
pub async fn list(
    db: &PgPool,
    tenant: &TenantId,
    include_deleted: bool,
    before_seq: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<EnvironmentRow>> {
    rows!(
        "select";
        "from environments
          where tenant_id = $1 and ($2 or status <> 'deleted') and ($3::bigint is null or seq < $3)
          order by seq desc
          limit $4",
        tenant.as_str(),
        include_deleted,
        before_seq,
        limit,
    )
    .fetch_all(db)
    .await
}

/// What LaunchDarkly gave back for a created (or adopted) environment. The
/// keys are sealed. The status becomes `ready` only if the generation is still
/// wanted; a generation deleted meanwhile keeps `deleting` but learns its id.
pub async fn record_created(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    id: Uuid,
    client_side_id: &str,
    sealed_sdk_key: &str,
    sealed_mobile_key: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<EnvironmentRow> {
    rows!(
        "update environments
            set client_side_id = $3, sdk_key = $4, mobile_key = $5,
                status = case desired when 'present' then 'ready' else status end, refused = false, failure_code = null,
                ready_at = case desired when 'present' then $6 else ready_at end,
                last_error = null, updated_at = $6
          where tenant_id = $1 and id = $2
          returning";
        "",
        tenant.as_str(),
        id,
        client_side_id,
        sealed_sdk_key,
        sealed_mobile_key,
        now as DateTime<Utc>,
    )
    .fetch_one(&mut **tx)
    .await
}

/// Ends the generation in `failed`; `refused` when a safety rule refused a
/// delete (nothing was touched) rather than LaunchDarkly failing it.
pub async fn mark_failed(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    id: Uuid,
    error: &str,
    refused: bool,
    code: Option<FailureCode>,
    now: DateTime<Utc>,
) -> sqlx::Result<EnvironmentRow> {
    rows!(
        "update environments set status = 'failed', refused = $4, last_error = $3, failure_code = $6, updated_at = $5
          where tenant_id = $1 and id = $2
          returning";
        "",
        tenant.as_str(),
        id,
        error,
        refused,
        now as DateTime<Utc>,
        code as Option<FailureCode>,
    )
    .fetch_one(&mut **tx)
    .await
}

/// Gone upstream. The sealed keys are dropped: they open nothing any more.
pub async fn mark_deleted(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<EnvironmentRow> {
    rows!(
        "update environments
            set status = 'deleted', refused = false, failure_code = null, sdk_key = null, mobile_key = null, last_error = null, updated_at = $3
          where tenant_id = $1 and id = $2
          returning";
        "",
        tenant.as_str(),
        id,
        now as DateTime<Utc>,
    )
    .fetch_one(&mut **tx)
    .await
}

/// A transient problem the workers are retrying past, shown to the vendor.
pub async fn note_error<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    id: Uuid,
    error: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update environments set last_error = $3, updated_at = $4 where tenant_id = $1 and id = $2",
        tenant.as_str(),
        id,
        error,
        now as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Every generation of the tenant still wanted, now unwanted (offboarding).
pub async fn mark_all_absent(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<EnvironmentRow>> {
    rows!(
        "update environments
            set desired = 'absent', status = 'deleting', refused = false, failure_code = null, revision = revision + 1,
                last_error = null, updated_at = $2
          where tenant_id = $1 and desired = 'present'
          returning";
        "",
        tenant.as_str(),
        now as DateTime<Utc>,
    )
    .fetch_all(&mut **tx)
    .await
}

/// Generations of the tenant not yet deleted upstream (offboarding waits for them).
pub async fn count_live<'e>(db: impl PgExecutor<'e>, tenant: &TenantId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from environments where tenant_id = $1 and status <> 'deleted'"#,
        tenant.as_str(),
    )
    .fetch_one(db)
    .await
}

/// Generations of the tenant the workers are still deleting.
pub async fn count_deleting<'e>(db: impl PgExecutor<'e>, tenant: &TenantId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from environments where tenant_id = $1 and status = 'deleting'"#,
        tenant.as_str(),
    )
    .fetch_one(db)
    .await
}

/// Tenants that have generations past their `expires_at`. A scan over every
/// tenant: the TTL clock is the system's, not any caller's.
pub async fn tenants_with_expired(db: &PgPool, now: DateTime<Utc>) -> sqlx::Result<Vec<TenantId>> {
    let raw: Vec<String> = sqlx::query_scalar!(
        "select distinct tenant_id from environments where desired = 'present' and expires_at <= $1",
        now as DateTime<Utc>,
    )
    .fetch_all(db)
    .await?;
    Ok(raw
        .into_iter()
        .filter_map(|t| TenantId::parse(&t).ok())
        .collect())
}

/// Marks the tenant's expired generations unwanted, returning them.
pub async fn expire(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<EnvironmentRow>> {
    rows!(
        "update environments
            set desired = 'absent', status = 'deleting', refused = false, failure_code = null, revision = revision + 1,
                last_error = null, updated_at = $2
          where id in (select id from environments
                        where tenant_id = $1 and desired = 'present' and expires_at <= $2
                        order by expires_at
                        limit $3
                        for update skip locked)
          returning";
        "",
        tenant.as_str(),
        now as DateTime<Utc>,
        limit,
    )
    .fetch_all(&mut **tx)
    .await
}

/// Which of the listed environments (parallel `keys` and LaunchDarkly `ids`)
/// the sweeper may delete: those whose key the tenant recorded (every key is
/// recorded before its create is sent), with no generation under that key
/// still live, and not an environment other than the one recorded there.
pub async fn sweepable_keys(
    db: &PgPool,
    tenant: &TenantId,
    project_key: &str,
    keys: &[String],
    ids: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"select u.key as "key!" from unnest($3::text[], $4::text[]) as u(key, id)
          where exists (select 1 from environments e
                         where e.tenant_id = $1 and e.project_key = $2 and e.environment_key = u.key)
            and not exists (select 1 from environments e
                             where e.tenant_id = $1 and e.project_key = $2 and e.environment_key = u.key
                               and (e.status <> 'deleted' or e.client_side_id <> u.id))"#,
        tenant.as_str(),
        project_key,
        keys,
        ids,
    )
    .fetch_all(db)
    .await
}

/// Every project the tenant's generations were made in, with the source
/// environments they were cloned from there (the sweeper looks in each).
pub async fn projects_with_sources(
    db: &PgPool,
    tenant: &TenantId,
) -> sqlx::Result<Vec<(String, Vec<String>)>> {
    let rows = sqlx::query!(
        r#"select project_key as "project_key!",
                  array_agg(distinct source_environment_key) as "sources!"
             from environments where tenant_id = $1
            group by project_key
            order by project_key"#,
        tenant.as_str(),
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.project_key, r.sources))
        .collect())
}
