-- A failed generation whose delete a safety rule refused (critical, the
-- source) answers 409 environment_protected; other failures answer 422.
alter table environments add column refused boolean not null default false;
alter table environments add constraint environments_refused_only_failed
    check (not refused or status = 'failed');
