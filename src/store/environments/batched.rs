//! The API's one-statement PUT and DELETE, written for several requests in
//! one statement (`app::batcher`): the rows of [`insert_requested`] and
//! [`mark_absent_requested`], each request's as that statement alone would
//! write it, none of them claimed (a request that can promise its job to
//! an idle worker of this replica is written alone, at once).
//!
//! The requests of one batch name different ephemeral ids (the caller
//! writes a repeat alone). A batch is one statement: if it fails (a
//! request that did not hold the id's lock got there first and the unique
//! index refuses one row, say), nothing of it is written, and the caller
//! writes each request alone, which tells each its own answer.
//!
//! [`insert_requested`]: super::insert_requested
//! [`mark_absent_requested`]: super::mark_absent_requested

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{ClaimedRow, Desired, EnvironmentRow, FailureCode, NewEnvironment, Requested, Status};
use crate::ids::{EphemeralId, TenantId};

/// One PUT of a batch: a generation to insert (as `NewEnvironment`,
/// owned), its audit row, and when it is written.
#[derive(Debug, Clone)]
pub struct NewRequested {
    pub id: Uuid,
    pub tenant: TenantId,
    pub ephemeral_id: EphemeralId,
    pub generation: i32,
    pub request: Value,
    pub project_key: String,
    pub environment_key: String,
    pub environment_name: String,
    pub source_environment_key: String,
    pub color: String,
    pub tags: Vec<String>,
    pub flags: Value,
    pub expires_at: Option<DateTime<Utc>>,
    pub actor: String,
    pub action: &'static str,
    pub details: Value,
    pub now: DateTime<Utc>,
}

impl NewRequested {
    /// The generation as [`super::insert_requested`] takes it, for a
    /// request written alone.
    pub fn row(&self) -> NewEnvironment<'_> {
        NewEnvironment {
            id: self.id,
            tenant: &self.tenant,
            ephemeral_id: &self.ephemeral_id,
            generation: self.generation,
            request: self.request.clone(),
            project_key: &self.project_key,
            environment_key: &self.environment_key,
            environment_name: &self.environment_name,
            source_environment_key: &self.source_environment_key,
            color: &self.color,
            tags: &self.tags,
            flags: self.flags.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// [`super::insert_requested`] without a claim, for every request of
/// `batch` in one statement; the answers in `batch`'s order. Lock order
/// (`crate::store`): as the single statement, each row's advisory lock is
/// tried (never waited for) and the rest are inserts.
pub async fn insert_requested_many<'e>(
    db: impl sqlx::PgExecutor<'e>,
    batch: &[NewRequested],
) -> sqlx::Result<Vec<Option<Requested>>> {
    let col = |f: fn(&NewRequested) -> String| batch.iter().map(f).collect::<Vec<_>>();
    let json = |f: fn(&NewRequested) -> Value| batch.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<Uuid> = batch.iter().map(|r| r.id).collect();
    let generations: Vec<i32> = batch.iter().map(|r| r.generation).collect();
    let expires: Vec<Option<DateTime<Utc>>> = batch.iter().map(|r| r.expires_at).collect();
    let nows: Vec<DateTime<Utc>> = batch.iter().map(|r| r.now).collect();
    let rows = rows!(ClaimedRow =>
        "with input as (
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::jsonb[], $6::text[], $7::text[],
                                  $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::jsonb[], $13::timestamptz[],
                                  $14::timestamptz[], $15::text[], $16::text[], $17::jsonb[], $18::text[])
                 as i (id, tenant_id, ephemeral_id, generation, request, project_key, environment_key, environment_name,
                       source_environment_key, color, tags, flags, expires_at, now, actor, action, details, lock_key)
         ), cur as (
             select distinct on (e.tenant_id, e.ephemeral_id) e.*
               from input i join environments e on e.tenant_id = i.tenant_id and e.ephemeral_id = i.ephemeral_id
              where i.generation = 1
              order by e.tenant_id, e.ephemeral_id, (e.desired = 'present') desc, e.generation desc
         ), ins as (
             insert into environments (id, tenant_id, ephemeral_id, generation, revision, desired, status, request,
                                       project_key, environment_key, environment_name, source_environment_key,
                                       color, tags, flags, expires_at, created_at, updated_at)
             select i.id, t.id, i.ephemeral_id, i.generation, $19, 'present', 'pending', i.request, i.project_key,
                    i.environment_key, i.environment_name, i.source_environment_key, i.color,
                    array(select jsonb_array_elements_text(i.tags)), i.flags, i.expires_at, i.now, i.now
               from input i join tenants t on t.id = i.tenant_id
              where t.offboarding_at is null
                and not exists (select 1 from cur where cur.tenant_id = i.tenant_id and cur.ephemeral_id = i.ephemeral_id)
                and pg_try_advisory_xact_lock(hashtextextended(i.lock_key, 7))
             returning *
         ), queued as (
             insert into jobs (id, tenant_id, kind, environment_id, state, attempts, run_at, created_at, updated_at)
             select gen_random_uuid(), tenant_id, 'reconcile_environment', id, 'queued', 0, created_at, created_at, created_at
               from ins
         ), recorded as (
             insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
             select ins.tenant_id, ins.created_at, i.actor, i.action, ins.ephemeral_id, ins.environment_key, i.details
               from ins join input i on i.id = ins.id
         ), e as (
             select ins.* from ins
             union all
             select cur.* from cur
         )
         select";
        r#", false as "claimed!" from e"#,
        &ids,
        &col(|r| r.tenant.as_str().to_owned()),
        &col(|r| r.ephemeral_id.as_str().to_owned()),
        &generations,
        &json(|r| r.request.clone()),
        &col(|r| r.project_key.clone()),
        &col(|r| r.environment_key.clone()),
        &col(|r| r.environment_name.clone()),
        &col(|r| r.source_environment_key.clone()),
        &col(|r| r.color.clone()),
        &json(|r| Value::from(r.tags.clone())),
        &json(|r| r.flags.clone()),
        &expires as &[Option<DateTime<Utc>>],
        &nows as &[DateTime<Utc>],
        &col(|r| r.actor.clone()),
        &col(|r| r.action.to_owned()),
        &json(|r| r.details.clone()),
        &col(|r| super::requests::ephemeral_lock_key(&r.tenant, &r.ephemeral_id)),
        super::FIRST_REVISION,
    )
    .fetch_all(db)
    .await?;
    let mut rows: Vec<EnvironmentRow> = rows.into_iter().map(|row| row.split().0).collect();
    Ok(batch
        .iter()
        .map(|new| {
            let at = rows.iter().position(|row| {
                row.id == new.id
                    || (row.tenant_id == new.tenant && row.ephemeral_id == new.ephemeral_id)
            })?;
            let row = rows.swap_remove(at);
            Some(if row.id == new.id {
                Requested::Written {
                    row,
                    claimed: false,
                }
            } else {
                Requested::Found(row)
            })
        })
        .collect())
}

/// One DELETE of a batch.
#[derive(Debug, Clone)]
pub struct AbsentRequested {
    pub tenant: TenantId,
    pub ephemeral_id: EphemeralId,
    pub actor: String,
    pub action: &'static str,
    pub now: DateTime<Utc>,
}

/// [`super::mark_absent_requested`] without a claim, for every request of
/// `batch` in one statement; the answers in `batch`'s order (`None`:
/// nothing live, nothing written for that request).
///
/// Lock order (`crate::store`): the live environment rows are locked first,
/// in the order of their ids (so two batches that share rows cannot wait
/// for each other), then their job rows by the upsert, as the single
/// statement does for its one row.
pub async fn mark_absent_requested_many<'e>(
    db: impl sqlx::PgExecutor<'e>,
    batch: &[AbsentRequested],
) -> sqlx::Result<Vec<Option<EnvironmentRow>>> {
    let col = |f: fn(&AbsentRequested) -> String| batch.iter().map(f).collect::<Vec<_>>();
    let nows: Vec<DateTime<Utc>> = batch.iter().map(|r| r.now).collect();
    let rows = rows!(
        "with input as (
             select * from unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[])
                 as i (tenant_id, ephemeral_id, now, actor, action)
         ), target as (
             select e.id from environments e join input i on e.tenant_id = i.tenant_id and e.ephemeral_id = i.ephemeral_id
              where e.desired = 'present'
              order by e.id
              for update of e
         ), live as (
             update environments e
                set desired = 'absent', status = 'deleting', refused = false, failure_code = null,
                    revision = e.revision + 1, last_error = null, updated_at = i.now
               from target, input i
              where e.id = target.id and e.tenant_id = i.tenant_id and e.ephemeral_id = i.ephemeral_id
                and e.desired = 'present'
             returning e.*, i.actor as audit_actor, i.action as audit_action
         ), queued as (
             insert into jobs (id, tenant_id, kind, environment_id, state, attempts, run_at, created_at, updated_at)
             select gen_random_uuid(), tenant_id, 'reconcile_environment', id, 'queued', 0, updated_at, updated_at, updated_at
               from live
             on conflict (environment_id) where state in ('queued', 'running') and kind = 'reconcile_environment'
             do update set run_at = least(jobs.run_at, excluded.run_at), attempts = 0, updated_at = excluded.updated_at
         ), recorded as (
             insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
             select tenant_id, updated_at, audit_actor, audit_action, ephemeral_id, environment_key,
                    jsonb_build_object('generation', generation)
               from live
         )
         select";
        "from live",
        &col(|r| r.tenant.as_str().to_owned()),
        &col(|r| r.ephemeral_id.as_str().to_owned()),
        &nows as &[DateTime<Utc>],
        &col(|r| r.actor.clone()),
        &col(|r| r.action.to_owned()),
    )
    .fetch_all(db)
    .await?;
    let mut rows = rows;
    Ok(batch
        .iter()
        .map(|request| {
            let at = rows.iter().position(|row| {
                row.tenant_id == request.tenant && row.ephemeral_id == request.ephemeral_id
            })?;
            Some(rows.swap_remove(at))
        })
        .collect())
}
