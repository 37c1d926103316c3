-- Ten create+delete lifecycles, each of their four writes made for all ten in
-- one statement: what writes batched across requests could reach
-- (benches/floor/run.sh). Lifecycles per second are ten times its tps.
\set t random(1, 10)
with ins as (
  insert into environments (id, tenant_id, ephemeral_id, generation, revision, desired, status, request, project_key,
                            environment_key, environment_name, source_environment_key, color, tags, created_at, updated_at)
  select gen_random_uuid(), 'f-' || :t, 'e-' || gen_random_uuid(), 1, 1, 'present', 'pending', '{"a":1}', 'p',
          'k-' || gen_random_uuid(), 'n', 's', 'aaaaaa', '{}', now(), now() from generate_series(1, 10)
  returning id, tenant_id, ephemeral_id, environment_key
), q as (
  insert into jobs (id, tenant_id, kind, environment_id, state, attempts, run_at, created_at, updated_at)
  select gen_random_uuid(), tenant_id, 'reconcile_environment', id, 'queued', 0, now(), now(), now() from ins
), a as (
  insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
  select tenant_id, now(), 'api', 'environment.requested', ephemeral_id, environment_key, '{}' from ins
)
select array_agg(id) as envs from ins \gset
with e as (
  update environments set status = 'ready', client_side_id = 'c', sdk_key = 's', ready_at = now(), updated_at = now()
   where id = any(:envs::uuid[]) returning tenant_id, ephemeral_id, environment_key
), j as (
  delete from jobs where environment_id = any(:envs::uuid[])
), a as (
  insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
  select tenant_id, now(), 'worker', 'environment.ready', ephemeral_id, environment_key, '{}' from e
)
select 1;
with e as (
  update environments set desired = 'absent', status = 'deleting', revision = revision + 1, updated_at = now()
   where id = any(:envs::uuid[]) returning id, tenant_id, ephemeral_id, environment_key
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
   where id = any(:envs::uuid[]) returning tenant_id, ephemeral_id, environment_key
), j as (
  delete from jobs where environment_id = any(:envs::uuid[])
), a as (
  insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
  select tenant_id, now(), 'worker', 'environment.gone', ephemeral_id, environment_key, '{}' from e
)
select 1;
