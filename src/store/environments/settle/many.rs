//! [`settle_many`]: several workers' outcomes, and their claims of next
//! jobs, in one statement.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Next, Settlement};
use crate::ids::{EphemeralId, TenantId};
use crate::store::environments::{Desired, EnvironmentRow, FailureCode, SettledRow, Status};
use crate::store::jobs::{Job, JobKind};
use crate::store::notify;

/// [`settle`](super::settle) for several workers' outcomes in one statement (`app::batcher`:
/// the settlements that queued while the statements before them ran); the
/// answers in `batch`'s order, each as its own statement would have written
/// it, except the claims. The settlements name different generations and
/// the same worker (this replica); the caller writes a repeat alone.
///
/// The claims: as many next jobs as the settled workers asked for, taken
/// from the oldest jobs whose lease ran out, then the oldest due ones, each
/// of a tenant below `per_tenant` running jobs (the jobs this statement
/// settles not counted, those it claims counted). They are handed to the asking
/// workers in the batch's order. Unlike [`settle`](super::settle), only jobs of previews
/// (`reconcile_environment`) are claimed: tenant-wide ones are left for a
/// claim of their own, which knows whether the worker may run one. A worker
/// that asked and got none learns [`Next::Unknown`], not `NoneDue`: the
/// statement looked at only so many due jobs, and it claims from the queue
/// as usual.
///
/// Lock order (`crate::store`): the environment rows first, in the order of
/// their ids, then the settled job rows; the claimed ones with `skip
/// locked`, never waited for.
pub async fn settle_many<'e>(
    db: impl sqlx::PgExecutor<'e>,
    batch: &[Settlement],
) -> sqlx::Result<Vec<Option<(EnvironmentRow, Next)>>> {
    let Some(first) = batch.first() else {
        return Ok(Vec::new());
    };
    let col = |f: fn(&Settlement) -> Option<&str>| {
        batch
            .iter()
            .map(|s| f(s).map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let text =
        |f: fn(&Settlement) -> &str| batch.iter().map(|s| f(s).to_owned()).collect::<Vec<_>>();
    let ids: Vec<Uuid> = batch.iter().map(|s| s.id).collect();
    let revisions: Vec<i32> = batch.iter().map(|s| s.revision).collect();
    let deleted: Vec<bool> = batch.iter().map(|s| s.outcome.columns().0).collect();
    let jobs: Vec<Uuid> = batch.iter().map(|s| s.job).collect();
    let details: Vec<Value> = batch.iter().map(|s| s.details.clone()).collect();
    let nows: Vec<DateTime<Utc>> = batch.iter().map(|s| s.now).collect();
    let wants: Vec<bool> = batch.iter().map(|s| s.next.is_some()).collect();
    let claims = batch.iter().filter_map(|s| s.next);
    let asked = i64::try_from(claims.clone().count()).unwrap_or(i64::MAX);
    let until = claims.clone().map(|c| c.until).max().unwrap_or(first.now);
    let per_tenant = claims.map(|c| c.per_tenant).max().unwrap_or(0);
    let now = nows.iter().copied().max().unwrap_or(first.now);
    let rows = rows!(SettledRow =>
        "with input as (
             select * from unnest($1::text[], $2::uuid[], $3::int[], $4::bool[], $5::uuid[], $6::text[], $7::text[],
                                  $8::text[], $9::jsonb[], $10::text[], $11::text[], $12::text[], $13::text[],
                                  $14::timestamptz[], $15::bool[])
                 with ordinality as i (tenant_id, env_id, revision, deleted, job_id, action, ephemeral_id,
                                       environment_key, details, notice, client_side_id, sdk_key, mobile_key,
                                       now, wants, n)
         ), current as (
             select e.id from environments e
               join input i on e.tenant_id = i.tenant_id and e.id = i.env_id and e.revision = i.revision
              where not (i.deleted and exists (select 1 from tenants t
                                                where t.id = i.tenant_id and t.offboarding_at is not null))
                and set_config('synchronous_commit', 'off', true) = 'off'
              order by e.id
              for update of e
         ), held as (
             delete from jobs j using input i, current c
              where c.id = i.env_id and j.id = i.job_id and j.locked_by = $16 and j.state = 'running'
             returning j.id, i.n, i.wants
         ), recorded as (
             insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
             select i.tenant_id, i.now, 'system', i.action, i.ephemeral_id, i.environment_key, i.details
               from held h join input i on i.n = h.n
         ), running as (
             select tenant_id, count(*) as jobs from jobs
              where state = 'running' and locked_until > $17 and id not in (select id from held)
              group by tenant_id
         ), expired as (
             select id, tenant_id, 0 as first, locked_until as at from jobs
              where state = 'running' and locked_until <= $17 and id not in (select id from held)
                and kind = 'reconcile_environment'
                and exists (select 1 from held where wants)
                and tenant_id not in (select tenant_id from running where jobs >= $19)
              order by locked_until
              limit $20
              for update skip locked
         ), due as (
             select id, tenant_id, 1 as first, run_at as at from jobs
              where state = 'queued' and run_at <= $17
                and kind = 'reconcile_environment'
                and exists (select 1 from held where wants)
                and tenant_id not in (select tenant_id from running where jobs >= $19)
              order by run_at
              limit $20
              for update skip locked
         ), ranked as (
             select c.id, c.first, c.at,
                    coalesce(r.jobs, 0) + row_number() over (partition by c.tenant_id order by c.first, c.at) as place
               from (select * from expired union all select * from due) c
               left join running r on r.tenant_id = c.tenant_id
         ), chosen as (
             select id, row_number() over (order by first, at) as slot from ranked
              where place <= $19
              order by first, at
              limit (select count(*) from held where wants)
         ), claimed as (
             update jobs set state = 'running', locked_by = $16, locked_until = $18,
                             attempts = jobs.attempts + 1, updated_at = $17
               from chosen
              where jobs.id = chosen.id
             returning chosen.slot, jobs.id as next_id, jobs.tenant_id as next_tenant_id, jobs.kind as next_kind,
                       jobs.environment_id as next_environment_id, jobs.attempts as next_attempts,
                       jobs.run_at as next_run_at, jobs.locked_until as next_locked_until,
                       jobs.last_error as next_last_error, jobs.created_at as next_created_at
         ), takers as (
             select n, row_number() over (order by n) as slot from held where wants
         ), settled as (
             update environments e
                set status = case when i.deleted then 'deleted' when e.desired = 'present' then 'ready' else e.status end,
                    client_side_id = case when i.deleted then e.client_side_id else i.client_side_id end,
                    sdk_key = i.sdk_key, mobile_key = i.mobile_key,
                    ready_at = case when not i.deleted and e.desired = 'present' then i.now else e.ready_at end,
                    refused = false, failure_code = null, last_error = null, updated_at = i.now
               from held h join input i on i.n = h.n
              where e.tenant_id = i.tenant_id and e.id = i.env_id
             returning e.*, h.n as input_n, pg_notify($21, i.notice) as notified
         )
         select";
        r#", next_id as "next_id?", next_tenant_id as "next_tenant_id?: TenantId",
             next_kind as "next_kind?: JobKind", next_environment_id as "next_environment_id?",
             next_attempts as "next_attempts?", next_run_at as "next_run_at?: _",
             next_locked_until as "next_locked_until?: _", next_last_error as "next_last_error?",
             next_created_at as "next_created_at?: _"
           from settled s left join takers t on t.n = s.input_n left join claimed c on c.slot = t.slot"#,
        &text(|s| s.tenant.as_str()),
        &ids,
        &revisions,
        &deleted,
        &jobs,
        &text(|s| s.action),
        &text(|s| s.ephemeral_id.as_str()),
        &text(|s| &s.environment_key),
        &details,
        &text(|s| &s.notice),
        &col(|s| s.outcome.columns().1) as &[Option<String>],
        &col(|s| s.outcome.columns().2) as &[Option<String>],
        &col(|s| s.outcome.columns().3) as &[Option<String>],
        &nows as &[DateTime<Utc>],
        &wants,
        first.worker,
        now as DateTime<Utc>,
        until as DateTime<Utc>,
        per_tenant,
        asked,
        notify::ENVIRONMENTS_CHANNEL,
    )
    .fetch_all(db)
    .await?;
    let mut rows: Vec<(EnvironmentRow, Option<Job>)> = rows
        .into_iter()
        .map(|row| row.split(&first.worker))
        .collect();
    Ok(batch
        .iter()
        .map(|s| {
            let at = rows.iter().position(|(row, _)| row.id == s.id)?;
            let (row, job) = rows.swap_remove(at);
            Some((row, job.map_or(Next::Unknown, Next::Claimed)))
        })
        .collect())
}
