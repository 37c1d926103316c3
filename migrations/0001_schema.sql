-- The whole ld-eaas schema. Every tenant-owned row carries tenant_id and every
-- query filters on it; constraints keep invalid states out of the tables.

create table tenants (
    id              text primary key check (id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    display_name    text not null check (length(display_name) between 1 and 200),
    -- set when offboarding starts: no new work is accepted, workers delete
    -- every managed environment, then the row (and everything below it) goes.
    offboarding_at  timestamptz,
    created_at      timestamptz not null,
    updated_at      timestamptz not null
);

-- Internal API keys: only the SHA-256 of the key is kept. A null tenant_id is
-- the vendor backend's key (every tenant); otherwise the key reaches one tenant.
create table api_keys (
    id           uuid primary key,
    name         text not null check (length(name) between 1 and 100),
    display_prefix text not null,
    key_hash     bytea not null unique check (length(key_hash) = 32),
    tenant_id    text references tenants (id) on delete cascade,
    created_at   timestamptz not null,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Single-use links a customer's browser opens to reach the UI for a tenant.
create table connect_links (
    token_hash  bytea primary key check (length(token_hash) = 32),
    tenant_id   text not null references tenants (id) on delete cascade,
    created_at  timestamptz not null,
    expires_at  timestamptz not null,
    used_at     timestamptz,
    check (expires_at > created_at)
);
create index connect_links_tenant on connect_links (tenant_id);

-- Token versions come from one sequence, so a credential read before a
-- disconnect and reconnect never matches the new connection's version.
create sequence connection_token_versions;

-- One LaunchDarkly connection per tenant. Secrets are sealed (see crypto.rs):
-- "v1.<key id>.<nonce>.<ciphertext>", bound to tenant and column.
create table connections (
    tenant_id         text primary key references tenants (id) on delete cascade,
    auth_kind         text not null check (auth_kind in ('oauth', 'api_token')),
    status            text not null check (status in ('connected', 'needs_reconnect')),
    account_id        text not null,
    account_label     text,
    scope             text,
    access_token      text not null,
    refresh_token     text,
    access_expires_at timestamptz,
    -- bumped on every token change, so a waiter can tell a refresh happened.
    token_version     bigint not null default nextval('connection_token_versions'),
    connected_at      timestamptz not null,
    updated_at        timestamptz not null,
    check (auth_kind = 'oauth' or refresh_token is null)
);

create table tenant_settings (
    tenant_id              text primary key references tenants (id) on delete cascade,
    project_key            text not null check (project_key ~ '^[a-zA-Z0-9][a-zA-Z0-9_.-]*$'),
    source_environment_key text not null check (source_environment_key ~ '^[a-zA-Z0-9][a-zA-Z0-9_.-]*$'),
    name_template          text not null check (length(name_template) between 1 and 200),
    color                  text not null check (color ~ '^[0-9a-fA-F]{6}$'),
    default_ttl_seconds    bigint check (default_ttl_seconds > 0),
    key_prefix             text not null check (key_prefix ~ '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,19}$'),
    updated_at             timestamptz not null
);

-- One row per generation of an ephemeral environment. "desired" is what the
-- vendor asked for; "status" is how far the workers got in making it so. A
-- generation only ever moves from present to absent: asking for it again after
-- a delete makes the next generation (with its own derived key), so a create
-- and an older generation's delete never fight over one LaunchDarkly key.
create table environments (
    id                     uuid primary key,
    -- insertion order: "newest first" must not depend on the (injectable) clock.
    seq                    bigint generated always as identity,
    tenant_id              text not null references tenants (id) on delete cascade,
    ephemeral_id           text not null check (length(ephemeral_id) between 1 and 128),
    generation             integer not null check (generation > 0),
    -- bumped by every request that changes what the workers must do, so a
    -- worker that finishes after such a change knows to look again.
    revision               integer not null default 1,
    desired                text not null check (desired in ('present', 'absent')),
    status                 text not null check (status in ('pending', 'ready', 'deleting', 'deleted', 'failed')),
    -- the request body that made this generation, to refuse a silent change.
    request                jsonb not null,
    project_key            text not null,
    environment_key        text not null,
    environment_name       text not null,
    source_environment_key text not null,
    color                  text not null,
    tags                   text[] not null,
    client_side_id         text,
    sdk_key                text,
    mobile_key             text,
    expires_at             timestamptz,
    last_error             text,
    ready_at               timestamptz,
    created_at             timestamptz not null,
    updated_at             timestamptz not null,
    unique (tenant_id, ephemeral_id, generation),
    check (status <> 'ready' or (client_side_id is not null and sdk_key is not null)),
    check (case desired when 'present' then status in ('pending', 'ready', 'failed')
                        else status in ('deleting', 'deleted', 'failed') end)
);
-- At most one generation the vendor wants to exist per ephemeral environment;
-- older generations may still be on their way out.
create unique index environments_one_live on environments (tenant_id, ephemeral_id) where desired = 'present';
create unique index environments_key on environments (tenant_id, project_key, environment_key);
create index environments_newest on environments (tenant_id, seq desc);
create index environments_by_ephemeral on environments (tenant_id, ephemeral_id, generation desc);
create index environments_expiring on environments (expires_at) where desired = 'present';

-- Durable work queue. Claimed with FOR UPDATE SKIP LOCKED; a lease
-- (locked_until) lets another replica pick up a job whose worker died.
create table jobs (
    id             uuid primary key,
    tenant_id      text not null references tenants (id) on delete cascade,
    kind           text not null check (kind in ('reconcile_environment', 'sweep_tenant', 'offboard_tenant')),
    environment_id uuid references environments (id) on delete cascade,
    state          text not null check (state in ('queued', 'running', 'done', 'failed')),
    attempts       integer not null default 0,
    run_at         timestamptz not null,
    locked_by      text,
    locked_until   timestamptz,
    last_error     text,
    created_at     timestamptz not null,
    updated_at     timestamptz not null,
    check (kind <> 'reconcile_environment' or environment_id is not null)
);
create index jobs_due on jobs (run_at) where state = 'queued';
create index jobs_leased on jobs (locked_until) where state = 'running';
create index jobs_tenant on jobs (tenant_id, state);
-- One open reconcile job per environment: a new request re-arms it.
create unique index jobs_one_open_reconcile on jobs (environment_id) where state in ('queued', 'running') and kind = 'reconcile_environment';
create unique index jobs_one_open_per_tenant_kind on jobs (tenant_id, kind) where state in ('queued', 'running') and kind <> 'reconcile_environment';

-- LaunchDarkly rate-limit state, shared by every replica. Keyed by LD account
-- (not tenant): two tenants on one LD account share its limits.
create table launchdarkly_rate_limits (
    account_id text not null,
    bucket     text not null,
    reset_at   timestamptz not null,
    primary key (account_id, bucket)
);

-- Environments the sweeper found upstream with this deployment's tags and no
-- live record, and when it first saw each: it deletes them only once they
-- have stayed unrecorded for the grace period.
create table sweep_sightings (
    tenant_id       text not null references tenants (id) on delete cascade,
    project_key     text not null,
    environment_key text not null,
    first_seen_at   timestamptz not null,
    primary key (tenant_id, project_key, environment_key)
);

create table audit_events (
    id              bigserial primary key,
    tenant_id       text not null references tenants (id) on delete cascade,
    occurred_at     timestamptz not null,
    actor           text not null,
    action          text not null,
    ephemeral_id    text,
    environment_key text,
    details         jsonb not null default '{}'
);
create index audit_events_tenant on audit_events (tenant_id, id desc);

-- Outgoing webhooks, written in the same transaction as the change they
-- announce and delivered with retries. No foreign key: an offboarded tenant's
-- last events are still delivered.
create table webhook_outbox (
    id              uuid primary key,
    tenant_id       text not null,
    event_type      text not null,
    payload         jsonb not null,
    attempts        integer not null default 0,
    -- also the delivery lease: a sender pushes it forward before it calls out.
    next_attempt_at timestamptz not null,
    delivered_at    timestamptz,
    -- set when retries are exhausted; the row is kept for the operator.
    abandoned_at    timestamptz,
    last_error      text,
    created_at      timestamptz not null
);
create index webhook_outbox_due on webhook_outbox (next_attempt_at) where delivered_at is null and abandoned_at is null;
