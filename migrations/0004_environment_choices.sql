-- Per-preview choices: the flag values a generation serves to every context
-- (flag key -> the JSON value of one of its variations), and, for a failed
-- generation, which of the request's choices LaunchDarkly did not know (the
-- API answers 422 with that code).
alter table environments add column flags jsonb not null default '{}'::jsonb;
alter table environments add column failure_code text
    check (failure_code in ('unknown_project', 'unknown_source_environment', 'unknown_flag', 'invalid_flag_value'));
alter table environments add constraint environments_failure_code_only_failed
    check (failure_code is null or status = 'failed');
