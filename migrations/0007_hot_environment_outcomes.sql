-- Room on each page of environments for the workers' outcomes to be
-- heap-only (HOT) updates: recording a created or deleted environment
-- changes no indexed column, so with free space on the row's page Postgres
-- writes no index entry at all (seven indexes otherwise). Applies to pages
-- written from now on.
alter table environments set (fillfactor = 80);

-- The unique index of (tenant_id, ephemeral_id, generation) serves every
-- query this one did (a B-tree is read backwards as readily as forwards),
-- and each index is one more entry to write for every new row version.
drop index environments_by_ephemeral;
