-- One create+delete lifecycle: its four durable writes, one statement each
-- (benches/floor/run.sh). pgbench counts a run of this script as one
-- transaction, so its tps is lifecycles per second.
\set t random(1, 10)
with ins as (
  insert into environments (id, tenant_id, ephemeral_id, generation, revision, desired, status, request, project_key,
                            environment_key, environment_name, source_environment_key, color, tags, created_at, updated_at)
  values (gen_random_uuid(), 'f-' || :t, 'e-' || gen_random_uuid(), 1, 1, 'present', 'pending', '{"a":1}', 'p',
          'k-' || gen_random_uuid(), 'n', 's', 'aaaaaa', '{}', now(), now())
  returning id, tenant_id, ephemeral_id, environment_key
), q as (
  insert into jobs (id, tenant_id, kind, environment_id, state, attempts, run_at, created_at, updated_at)
  select gen_random_uuid(), tenant_id, 'reconcile_environment', id, 'queued', 0, now(), now(), now() from ins
), a as (
  insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
  select tenant_id, now(), 'api', 'environment.requested', ephemeral_id, environment_key, '{}' from ins
)
select id as env from ins \gset
with e as (
  update environments set status = 'ready', client_side_id = 'c', sdk_key = 's', ready_at = now(), updated_at = now()
   where id = :env returning tenant_id, ephemeral_id, environment_key
), j as (
  delete from jobs where environment_id = :env
), a as (
  insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
  select tenant_id, now(), 'worker', 'environment.ready', ephemeral_id, environment_key, '{}' from e
)
select 1;
with e as (
  update environments set desired = 'absent', status = 'deleting', revision = revision + 1, updated_at = now()
   where id = :env returning id, tenant_id, ephemeral_id, environment_key
), q as (
  insert into jobs (id, tenant_id, kind, environment_id, state, attempts, run_at, created_at, updated_at)
  select gen_random_uuid(), tenant_id, 'reconcile_environment', id, 'queued', 0, now(), now(), now() from e
), a as (
  insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
  select tenant_id, now(), 'api', 'environment.deleted', ephemeral_id, environment_key, '{}' from e
)
select 1;
with e as (
  update environments set status = 'deleted', updated_at = now()
   where id = :env returning tenant_id, ephemeral_id, environment_key
), j as (
  delete from jobs where environment_id = :env
), a as (
  insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
  select tenant_id, now(), 'worker', 'environment.gone', ephemeral_id, environment_key, '{}' from e
)
select 1;
