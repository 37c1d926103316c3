//! Where rate-limit state shared between replicas is kept: the [`RateLimitStore`]
//! trait and its process-local implementation.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::{BoxFuture, Bucket, SAME_WINDOW_SLACK, StoreError, UNKNOWN_END_EXPIRY};

/// What a process knows of a bucket when it asks the shared count for one request:
/// the shared row is opened from it when there is none, or when the stored window
/// is over while this process knows the current one (the bucket's budget has just
/// fallen below [`SHARED_BELOW`](super::SHARED_BELOW) mid-window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedSeed {
    /// Requests this process believes are left in the current window (at least one).
    pub remaining: i64,
    /// End of that window, if known.
    pub window_end: Option<DateTime<Utc>>,
    /// The largest budget a window has shown (at least `remaining`); zero when the
    /// budget is not known and the request is a probe.
    pub capacity: i64,
}

impl SharedSeed {
    /// For a request sent to learn an unknown budget. A count opened from it holds
    /// nothing more (capacity zero) until the probe's answer tells the budget, so
    /// replicas starting together send one probe between them, not one each.
    pub const PROBE: Self = Self {
        remaining: 1,
        window_end: None,
        capacity: 0,
    };
}

/// What the shared count said to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// One was taken from the window opened at `window`; hand it back with
    /// [`RateLimitStore::release`] if the request is not sent after all. `probe`:
    /// the budget is not known yet, and every other request waits for this one's
    /// answer. `capacity`: the largest budget a window has shown to any
    /// replica (0 while unknown).
    Taken {
        window: DateTime<Utc>,
        probe: bool,
        capacity: i64,
    },
    /// Nothing left until this instant.
    Hold(DateTime<Utc>),
    /// Nothing left in a window whose end no answer has told yet: ask again shortly.
    Unknown,
}

/// What one answer said about one bucket, for the shared count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lesson {
    pub bucket: Bucket,
    /// Remaining as reported (not below zero).
    pub remaining: i64,
    /// The answer's reset instant (after now); for a 429, the instant it names.
    pub reset: DateTime<Utc>,
    /// A 429 holding this bucket until `reset`.
    pub limited: bool,
    /// This process's requests on the bucket still unanswered: when the answer
    /// belongs to a later window than the stored one, they may count in it too.
    pub in_flight: i64,
}

/// Where rate-limit state shared by replicas is kept: blocks ("account A's bucket
/// B is blocked until T") and, for buckets with small budgets, the count of what
/// is left in the current window.
///
/// `account` is an opaque key (an LD account id, or a token fingerprint while the
/// account is unknown). Implementations keep the latest `until` per (account,
/// bucket) and may forget entries once they are in the past.
///
/// The shared count mirrors what each process's budget does locally: a reservation
/// takes one before a request goes out, rolling to a fresh window (`capacity - 1`
/// left, end unknown) once the stored one is over; every answer corrects it
/// ([`learn`](Self::learn)). It must be atomic across processes.
pub trait RateLimitStore: Send + Sync + 'static {
    /// The latest block among `buckets` of `account` that is still after `now`.
    fn blocked_until<'a>(
        &'a self,
        account: &'a str,
        buckets: &'a [Bucket],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<DateTime<Utc>>, StoreError>>;

    /// Blocks `bucket` of `account` until `until` (keeping a later block if one exists).
    fn record_block<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Takes one request off the shared count of `bucket` of `account`, or says
    /// until when nothing is left.
    fn reserve<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        seed: SharedSeed,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Reservation, StoreError>>;

    /// Gives back one request taken from the window opened at `window` (a request
    /// that was not sent after all); nothing if that window is gone.
    fn release<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        window: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Corrects the shared count of `lesson.bucket` from an answer. A bucket with
    /// no shared count yet is left alone (the first reservation opens it).
    fn learn<'a>(
        &'a self,
        account: &'a str,
        lesson: &'a Lesson,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Forgets the shared count of `bucket` if it still awaits a probe's answer:
    /// the answer did not report the bucket, so it is not paced.
    fn forget_probe<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// The shared count of one bucket; the Postgres store keeps the same fields in
/// `launchdarkly_rate_budgets` and its statements (`src/store/ratelimits.rs`) do
/// what these methods do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SharedCount {
    remaining: i64,
    window_end: Option<DateTime<Utc>>,
    capacity: i64,
    window_best: Option<i64>,
    opened_at: DateTime<Utc>,
}

impl SharedCount {
    fn open(seed: SharedSeed, now: DateTime<Utc>) -> Self {
        Self {
            remaining: seed.remaining - 1,
            window_end: seed.window_end.filter(|end| *end > now),
            capacity: seed.capacity,
            window_best: None,
            opened_at: now,
        }
    }

    fn taken(&self) -> Reservation {
        Reservation::Taken {
            window: self.opened_at,
            probe: self.capacity == 0,
            capacity: self.capacity,
        }
    }

    fn reserve(&mut self, seed: SharedSeed, now: DateTime<Utc>) -> Reservation {
        let ended = match self.window_end {
            Some(end) => end <= now,
            None => self.opened_at <= now - UNKNOWN_END_EXPIRY,
        };
        if ended {
            if seed.window_end.is_some_and(|end| end > now) {
                // This process knows the window that is running: start from it.
                *self = Self {
                    capacity: self.capacity.max(seed.capacity),
                    ..Self::open(seed, now)
                };
            } else {
                // The largest budget any window showed (a 429 lowers it).
                // (With the budget still unknown, this request probes.)
                let capacity = self.capacity;
                *self = Self {
                    remaining: capacity.max(1) - 1,
                    window_end: None,
                    capacity,
                    window_best: None,
                    opened_at: now,
                };
            }
        } else if self.remaining > 0 {
            self.remaining -= 1;
        } else {
            return match self.window_end {
                Some(end) if end > now => Reservation::Hold(end),
                _ => Reservation::Unknown,
            };
        }
        self.taken()
    }

    fn release(&mut self, window: DateTime<Utc>) {
        if self.opened_at == window {
            self.remaining += 1;
        }
    }

    fn learn(&mut self, lesson: &Lesson, now: DateTime<Utc>) {
        let Lesson {
            remaining, reset, ..
        } = *lesson;
        if lesson.limited {
            // Spent until the instant the 429 names, neither sooner nor later;
            // and the limit may have been lowered to what this window showed.
            self.capacity = self.window_best.unwrap_or(self.capacity);
            self.remaining = 0;
            self.window_end = Some(reset);
            self.opened_at = now;
            return;
        }
        let probed = self.capacity == 0;
        self.capacity = self.capacity.max(remaining + 1);
        self.window_best = self.window_best.max(Some(remaining + 1));
        if probed {
            // Everybody else waited for this answer: it tells the budget exactly.
            self.window_end = Some(reset);
            self.remaining = remaining;
            return;
        }
        match self.window_end {
            Some(known) if reset - SAME_WINDOW_SLACK > known => {
                // A later window than the one stored: what is in flight may count
                // in it too.
                self.window_end = Some(reset);
                self.remaining = remaining - lesson.in_flight;
                self.opened_at = now;
            }
            Some(known) => {
                self.window_end = Some(known.max(reset));
                self.remaining = self.remaining.min(remaining);
            }
            None => {
                // The first answer of a fresh window tells when it ends.
                self.window_end = Some(reset);
                self.remaining = self.remaining.min(remaining);
            }
        }
    }
}

/// Process-local store. Its shared counts serve the processes' gates sharing it
/// (and the unit tests, as a stand-in for replicas sharing Postgres).
#[derive(Debug, Default)]
pub struct InMemoryRateLimitStore {
    blocks: Mutex<HashMap<(String, Bucket), DateTime<Utc>>>,
    counts: Mutex<HashMap<(String, Bucket), SharedCount>>,
}

impl InMemoryRateLimitStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl RateLimitStore for InMemoryRateLimitStore {
    fn blocked_until<'a>(
        &'a self,
        account: &'a str,
        buckets: &'a [Bucket],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<DateTime<Utc>>, StoreError>> {
        // A poisoned lock only means another thread panicked mid-insert of a plain
        // timestamp; the map is still valid.
        let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let mut latest = None;
        for bucket in buckets {
            let key = (account.to_owned(), bucket.clone());
            match blocks.get(&key).copied() {
                Some(until) if until > now => latest = latest.max(Some(until)),
                Some(_) => {
                    blocks.remove(&key);
                }
                None => {}
            }
        }
        Box::pin(async move { Ok(latest) })
    }

    fn record_block<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = blocks
            .entry((account.to_owned(), bucket.clone()))
            .or_insert(until);
        *entry = (*entry).max(until);
        Box::pin(async { Ok(()) })
    }

    fn reserve<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        seed: SharedSeed,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Reservation, StoreError>> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.len() > super::MAX_BUDGETS {
            counts.retain(|_, c| c.window_end.is_none_or(|end| end > now));
        }
        let key = (account.to_owned(), bucket.clone());
        let reservation = match counts.get_mut(&key) {
            Some(count) => count.reserve(seed, now),
            None => {
                let count = SharedCount::open(seed, now);
                let taken = count.taken();
                counts.insert(key, count);
                taken
            }
        };
        Box::pin(async move { Ok(reservation) })
    }

    fn release<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        window: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&(account.to_owned(), bucket.clone())) {
            count.release(window);
        }
        Box::pin(async { Ok(()) })
    }

    fn learn<'a>(
        &'a self,
        account: &'a str,
        lesson: &'a Lesson,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&(account.to_owned(), lesson.bucket.clone())) {
            count.learn(lesson, now);
        }
        Box::pin(async { Ok(()) })
    }

    fn forget_probe<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (account.to_owned(), bucket.clone());
        if counts.get(&key).is_some_and(|count| count.capacity == 0) {
            counts.remove(&key);
        }
        Box::pin(async { Ok(()) })
    }
}
