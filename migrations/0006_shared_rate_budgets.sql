-- What is left of each LaunchDarkly rate-limit window, shared by every
-- replica so that together they send no more than the window allows. Keyed
-- like launchdarkly_rate_limits by LD account (not tenant) and bucket
-- ('global' or 'route:<method> <path template>'). Only buckets with a small
-- budget are kept here (see SHARED_BELOW in src/launchdarkly/ratelimit/);
-- larger ones are paced by each replica on its own.
create table launchdarkly_rate_budgets (
    account_id  text not null,
    bucket      text not null,
    -- Requests every replica together may still send before window_end (each
    -- reservation already taken off); may go below zero when LaunchDarkly
    -- reports less than was reserved.
    remaining   bigint not null,
    -- When the window ends, from LaunchDarkly's X-Ratelimit-Reset; null while
    -- a fresh window's first answer is awaited.
    window_end  timestamptz,
    -- The largest budget a window has shown: what a fresh window starts from.
    capacity    bigint not null,
    -- The largest budget the current window has shown; becomes capacity when
    -- the window rolls over, so a lowered limit is learned within a window.
    window_best bigint,
    -- When this row's current window was opened: it names the window a
    -- reservation came from (a give-back only counts in the same window), and
    -- a window whose end no answer told within a while is treated as over.
    opened_at   timestamptz not null,
    primary key (account_id, bucket)
);
