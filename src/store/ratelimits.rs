//! LaunchDarkly rate-limit blocks, shared by every replica. Keyed by
//! LaunchDarkly account (not tenant): tenants on one account share its limits.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// The latest end of a block still running on any of `buckets` of `account`.
pub async fn blocked_until<'e>(
    db: impl PgExecutor<'e>,
    account: &str,
    buckets: &[String],
    now: DateTime<Utc>,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        r#"select max(reset_at) as "until: DateTime<Utc>" from launchdarkly_rate_limits
            where account_id = $1 and bucket = any($2) and reset_at > $3"#,
        account,
        buckets,
        now as DateTime<Utc>,
    )
    .fetch_one(db)
    .await
}

/// Records a block until `until`; an existing later block is kept.
pub async fn record_block<'e>(
    db: impl PgExecutor<'e>,
    account: &str,
    bucket: &str,
    until: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into launchdarkly_rate_limits (account_id, bucket, reset_at) values ($1, $2, $3)
         on conflict (account_id, bucket) do update
            set reset_at = greatest(launchdarkly_rate_limits.reset_at, excluded.reset_at)",
        account,
        bucket,
        until as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets blocks that ended before `before`. Returns how many.
pub async fn purge<'e>(db: impl PgExecutor<'e>, before: DateTime<Utc>) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "delete from launchdarkly_rate_limits where reset_at < $1",
        before as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

// ---- the shared budget (`launchdarkly_rate_budgets`) -------------------
//
// Each statement touches one row and runs on its own (no transaction), so it
// waits only for another statement on the same row and holds no other lock:
// none of them is part of the lock order.

/// What [`reserve`] did: `taken` one from the window opened at `opened_at`, or
/// not (nothing left), with the row as it then stood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub taken: bool,
    pub remaining: i64,
    pub window_end: Option<DateTime<Utc>>,
    /// Zero while the budget is unknown (the row awaits a probe's answer).
    pub capacity: i64,
    pub opened_at: DateTime<Utc>,
}

/// What a replica knows of a bucket, to open its shared row from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seed {
    /// Left in the current window by this replica's count (at least one).
    pub remaining: i64,
    /// That window's end, if known.
    pub window_end: Option<DateTime<Utc>>,
    /// At least `remaining`; zero for a probe (the budget is unknown).
    pub capacity: i64,
}

/// Takes one request off the shared budget of (`account`, `bucket`), in one
/// statement.
///
/// - No row yet: one is opened from `seed` (its window if that is still running)
///   with one taken. A probe's seed (capacity zero: the budget is unknown) opens
///   a row with nothing left, so every other request waits for the probe's answer.
/// - The stored window is over (its end has passed, or no answer told a fresh
///   window's end by `unknown_before`): a fresh window starts with `capacity - 1`
///   left (the largest budget any window showed; not the last window's best,
///   which undercounts when that window's first answers were another replica's
///   and never learned here, and so left a window part unused) and an unknown end (still unknown
///   capacity: this request probes again), or from `seed` when the replica knows a
///   window that is still running.
/// - Otherwise one is taken if any is left (`remaining > 0`).
///
/// When nothing is left the upsert's `where` refuses, and the second half of the
/// union reads the row instead (`taken` false: hold until `window_end`, or ask
/// again while it is unknown). That read sees the statement's snapshot, which can
/// predate the version that refused; the caller then at worst asks again. `None`
/// when the row appeared after the snapshot and was refused (ask again).
pub async fn reserve<'e>(
    db: impl PgExecutor<'e>,
    account: &str,
    bucket: &str,
    seed: Seed,
    now: DateTime<Utc>,
    unknown_before: DateTime<Utc>,
) -> sqlx::Result<Option<Reserved>> {
    let row = sqlx::query!(
        // `ended`, written out in each branch: coalesce(b.window_end <= $3,
        // b.opened_at <= $7), the stored window is over. `excluded` is the row
        // opened from the seed; its window_end is set only when the seed's
        // window is still running.
        r#"with taken as (
            insert into launchdarkly_rate_budgets as b
                (account_id, bucket, remaining, window_end, capacity, window_best, opened_at)
            values ($1, $2, $4::bigint - 1,
                    case when $5::timestamptz > $3::timestamptz then $5 end,
                    $6::bigint, null, $3)
            on conflict (account_id, bucket) do update set
                remaining = case
                    when not coalesce(b.window_end <= $3, b.opened_at <= $7) then b.remaining - 1
                    when excluded.window_end is not null then excluded.remaining
                    else greatest(b.capacity, 1) - 1 end,
                window_end = case
                    when not coalesce(b.window_end <= $3, b.opened_at <= $7) then b.window_end
                    else excluded.window_end end,
                capacity = case
                    when not coalesce(b.window_end <= $3, b.opened_at <= $7) then b.capacity
                    when excluded.window_end is not null then greatest(b.capacity, excluded.capacity)
                    else b.capacity end,
                window_best = case
                    when not coalesce(b.window_end <= $3, b.opened_at <= $7) then b.window_best end,
                opened_at = case
                    when not coalesce(b.window_end <= $3, b.opened_at <= $7) then b.opened_at
                    else excluded.opened_at end
            where coalesce(b.window_end <= $3, b.opened_at <= $7) or b.remaining > 0
            returning b.remaining, b.window_end, b.capacity, b.opened_at
        )
        select true as "taken!", remaining as "remaining!",
               window_end as "window_end: DateTime<Utc>", capacity as "capacity!",
               opened_at as "opened_at!: DateTime<Utc>"
          from taken
        union all
        select false, remaining, window_end, capacity, opened_at
          from launchdarkly_rate_budgets
         where account_id = $1 and bucket = $2 and not exists (select from taken)"#,
        account,
        bucket,
        now as DateTime<Utc>,
        seed.remaining,
        seed.window_end as Option<DateTime<Utc>>,
        seed.capacity,
        unknown_before as DateTime<Utc>,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| Reserved {
        taken: row.taken,
        remaining: row.remaining,
        window_end: row.window_end,
        capacity: row.capacity,
        opened_at: row.opened_at,
    }))
}

/// Gives back one request taken from the window opened at `window`, if that
/// window is still the row's.
pub async fn release<'e>(
    db: impl PgExecutor<'e>,
    account: &str,
    bucket: &str,
    window: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update launchdarkly_rate_budgets set remaining = remaining + 1
          where account_id = $1 and bucket = $2 and opened_at = $3",
        account,
        bucket,
        window as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// What one answer said about one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Remaining as reported (not below zero).
    pub remaining: i64,
    /// The reset instant (after now); for a 429 the instant it names.
    pub reset: DateTime<Utc>,
    /// A 429: spent until `reset`.
    pub limited: bool,
    /// The answering replica's requests on the bucket still unanswered.
    pub in_flight: i64,
}

/// Corrects the shared budget of (`account`, `bucket`) from an answer, as the
/// gate's local budget does (`Budget::learn`): a 429 spends it until its reset;
/// an answer of the stored window (its reset at most `slack` later; or the first
/// answer of a fresh window, whose end was unknown) lowers what is left to what
/// was reported and tells the end; an answer of a later window starts that window
/// from what was reported less the replica's requests in flight; the answer to a
/// probe (capacity zero, everybody else waited for it) sets what is left to what
/// was reported. The capacity and the window's best grow to what was reported
/// plus one; a 429 lowers the capacity to the best its window showed (a lowered
/// limit is learned from the 429 it causes). No row: nothing.
pub async fn learn<'e>(
    db: impl PgExecutor<'e>,
    account: &str,
    bucket: &str,
    answer: Answer,
    slack: chrono::TimeDelta,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let reset = answer.reset;
    // `reset <= window_end + slack`, with the slack applied here.
    let reset_less_slack = reset - slack;
    sqlx::query!(
        "update launchdarkly_rate_budgets as b set
            remaining = case
                when $5::bool then 0
                when b.capacity = 0 then $3::bigint
                when b.window_end is null or $4::timestamptz <= b.window_end then least(b.remaining, $3::bigint)
                else $3 - $6::bigint end,
            window_end = case
                when $5 or b.window_end is null or b.capacity = 0 then $7::timestamptz
                when $4 <= b.window_end then greatest(b.window_end, $7)
                else $7 end,
            capacity = case when $5 then coalesce(b.window_best, b.capacity) else greatest(b.capacity, $3 + 1) end,
            window_best = case when $5 then b.window_best else greatest(b.window_best, $3 + 1) end,
            opened_at = case
                when $5 or (b.capacity <> 0 and b.window_end is not null and $4 > b.window_end)
                    then $8::timestamptz
                else b.opened_at end
          where account_id = $1 and bucket = $2",
        account,
        bucket,
        answer.remaining,
        reset_less_slack as DateTime<Utc>,
        answer.limited,
        answer.in_flight,
        reset as DateTime<Utc>,
        now as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets the shared budget of (`account`, `bucket`) if it still awaits a
/// probe's answer (capacity zero): that answer did not report the bucket.
pub async fn forget_probe<'e>(
    db: impl PgExecutor<'e>,
    account: &str,
    bucket: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "delete from launchdarkly_rate_budgets
          where account_id = $1 and bucket = $2 and capacity = 0",
        account,
        bucket,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets shared budgets whose window ended before `before` (or, end unknown,
/// that opened before it). Returns how many.
pub async fn purge_budgets<'e>(
    db: impl PgExecutor<'e>,
    before: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "delete from launchdarkly_rate_budgets where coalesce(window_end, opened_at) < $1",
        before as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
