-- Every replica keeps, for a few seconds, what it read about a tenant on
-- every environment call and job: its settings once ready, and its
-- LaunchDarkly connection (src/app/tenant_cache.rs). Any change to a
-- tenant, its connection or its settings, whatever path makes it (the API,
-- the web UI, a token refresh, `ld-eaas rotate-keys`, a cascade), is
-- announced on `ld_eaas_tenants` with the tenant's id, in the transaction
-- that makes it, so each replica forgets that tenant at once.
create function announce_tenant_changed() returns trigger
language plpgsql as $$
declare
    row_now record;
begin
    if tg_op = 'DELETE' then
        row_now := old;
    else
        row_now := new;
    end if;
    if tg_table_name = 'tenants' then
        perform pg_notify('ld_eaas_tenants', row_now.id);
    else
        perform pg_notify('ld_eaas_tenants', row_now.tenant_id);
    end if;
    return null;
end
$$;

create trigger tenant_changed after insert or update or delete on tenants
    for each row execute function announce_tenant_changed();
create trigger connection_changed after insert or update or delete on connections
    for each row execute function announce_tenant_changed();
create trigger settings_changed after insert or update or delete on tenant_settings
    for each row execute function announce_tenant_changed();
