-- Every replica keeps the API keys it has checked for a few seconds. A key
-- that stops being valid (revoked by `ld-eaas api-keys revoke`, deleted with
-- its tenant, or changed by hand) is announced on `ld_eaas_api_keys` with its
-- id, in the transaction that changes it, so each replica evicts it at once.
create function announce_api_key_gone() returns trigger
language plpgsql as $$
begin
    perform pg_notify('ld_eaas_api_keys', old.id::text);
    return null;
end
$$;

create trigger api_key_revoked after update of revoked_at on api_keys
    for each row when (old.revoked_at is null and new.revoked_at is not null)
    execute function announce_api_key_gone();

create trigger api_key_deleted after delete on api_keys
    for each row execute function announce_api_key_gone();
