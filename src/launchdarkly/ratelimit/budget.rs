//! What this process knows of each (account, bucket) budget, and the pacing
//! decision taken on it before a request goes out.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::headers::RateLimitHeaders;
use super::{Bucket, Lesson, MAX_BUDGETS, SAME_WINDOW_SLACK, SHARED_BELOW, SharedSeed};

/// What this process knows of one bucket's budget.
#[derive(Debug, Default)]
struct Budget {
    /// Whether answers report this bucket (with a usable reset instant); `None`
    /// until the first answer.
    tracked: Option<bool>,
    /// End of the window `remaining` belongs to; `None` while a fresh window's
    /// first answer is awaited.
    reset: Option<DateTime<Utc>>,
    /// Requests that may still be sent before `reset`, this process's own
    /// requests already taken off; `None` while unknown.
    remaining: Option<i64>,
    /// The largest budget a window has shown: what a fresh window starts from.
    capacity: Option<i64>,
    /// The largest budget the current window has shown. A 429 lowers `capacity`
    /// to it, so a lowered limit is learned from the 429 it causes. (It does not
    /// replace `capacity` at every window's end: with several replicas the
    /// window's first answers may all have gone to another one, and the best
    /// this process saw would then start the next window short.)
    window_best: Option<i64>,
    /// Requests sent and not answered yet.
    in_flight: u32,
}

/// What to do with a request, judged on one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    Go,
    /// Spent until this instant.
    Hold(DateTime<Utc>),
    /// The budget is unknown and an answer that tells it is on its way.
    Wait,
}

impl Decision {
    /// The stricter of two.
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Hold(a), Self::Hold(b)) => Self::Hold(a.max(b)),
            (Self::Hold(a), _) | (_, Self::Hold(a)) => Self::Hold(a),
            (Self::Wait, _) | (_, Self::Wait) => Self::Wait,
            (Self::Go, Self::Go) => Self::Go,
        }
    }
}

impl Budget {
    fn decide(&mut self, now: DateTime<Utc>) -> Decision {
        if self.reset.is_some_and(|reset| reset <= now) {
            // The window is over: a fresh one starts from the known capacity.
            self.reset = None;
            self.window_best = None;
            self.remaining = self.capacity;
        }
        // With nothing on its way that could tell us more, one request goes out.
        let wait_or_probe = if self.in_flight > 0 {
            Decision::Wait
        } else {
            Decision::Go
        };
        match (self.tracked, self.remaining) {
            (Some(false), _) => Decision::Go,
            (None, _) | (Some(true), None) => wait_or_probe,
            (Some(true), Some(n)) if n > 0 => Decision::Go,
            (Some(true), Some(_)) => match self.reset {
                Some(reset) => Decision::Hold(reset),
                None => wait_or_probe,
            },
        }
    }

    fn take(&mut self) {
        self.in_flight = self.in_flight.saturating_add(1);
        if let Some(n) = &mut self.remaining {
            *n -= 1;
        }
    }

    /// Undoes [`take`](Self::take) for a request that was not sent after all.
    fn untake(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(n) = &mut self.remaining {
            *n += 1;
        }
    }

    /// Whether this bucket is paced, its window known and running, and plenty
    /// of it left: no other replica can have spent it since our last answer
    /// without sending [`SHARED_BELOW`] requests in between.
    fn plentiful(&self, now: DateTime<Utc>) -> bool {
        self.tracked == Some(true)
            && self.reset.is_some_and(|reset| reset > now)
            && self.remaining.is_some_and(|n| n >= SHARED_BELOW)
    }

    /// Whether this bucket is paced and its known budget is small enough to be
    /// counted in the shared store (see [`SHARED_BELOW`]).
    fn small(&self) -> bool {
        self.tracked == Some(true) && self.remaining.is_some_and(|n| n < SHARED_BELOW)
    }

    /// What to take a request going out now from the shared count with, if it
    /// must be: a small budget, or an unknown one (the request probes, and other
    /// replicas wait for its answer too).
    fn shared_seed(&self) -> Option<SharedSeed> {
        match (self.tracked, self.remaining) {
            (Some(false), _) => None,
            (None, _) | (Some(true), None) => Some(SharedSeed::PROBE),
            (Some(true), Some(remaining)) => self.small().then(|| SharedSeed {
                remaining,
                window_end: self.reset,
                capacity: self.capacity.unwrap_or(remaining).max(remaining),
            }),
        }
    }

    /// Learns from an answer: `remaining` as reported for this bucket, `reset` the
    /// answer's reset instant if it lies ahead, `limited` a 429 holding this bucket
    /// until `reset`.
    fn learn(
        &mut self,
        remaining: Option<i64>,
        reset: Option<DateTime<Utc>>,
        limited: bool,
        now: DateTime<Utc>,
    ) {
        let (Some(remaining), Some(reset)) = (remaining, reset.filter(|r| *r > now)) else {
            // Not reported, or against a clock we do not share: no pacing on this
            // bucket (a 429 still blocks through the store).
            if self.tracked != Some(true) || reset.is_some_and(|r| r <= now) {
                self.tracked = Some(false);
            }
            return;
        };
        self.tracked = Some(true);
        let remaining = remaining.max(0);
        if limited {
            // Spent until the instant the 429 names, neither sooner nor later;
            // and the limit may have been lowered to what this window showed.
            if self.window_best.is_some() {
                self.capacity = self.window_best;
            }
            self.reset = Some(reset);
            self.remaining = Some(0);
            return;
        }
        self.capacity = self.capacity.max(Some(remaining + 1));
        self.window_best = self.window_best.max(Some(remaining + 1));
        match self.reset {
            Some(known) if reset <= known + SAME_WINDOW_SLACK => {
                self.reset = Some(known.max(reset));
                self.remaining = Some(self.remaining.map_or(remaining, |n| n.min(remaining)));
            }
            Some(_) => {
                // A later window than the one we knew (the request was counted after
                // LaunchDarkly's reset): what else is in flight may count in it too.
                self.reset = Some(reset);
                self.remaining = Some(remaining - i64::from(self.in_flight));
            }
            None => {
                self.reset = Some(reset);
                self.remaining = Some(self.remaining.map_or(remaining, |n| n.min(remaining)));
            }
        }
    }
}

/// The local decision on a request, and the buckets that must also be taken from
/// the shared count before it goes (by index into the buckets asked about, with
/// what to open the shared count from; fewest left first).
#[derive(Debug)]
pub(super) struct Take {
    pub(super) decision: Decision,
    pub(super) shared: Vec<(usize, SharedSeed)>,
}

/// The budgets of every (account, bucket) this process has talked to.
#[derive(Debug, Default)]
pub(super) struct Budgets {
    map: Mutex<HashMap<(String, Bucket), Budget>>,
    /// Woken whenever an answer (or a failure) is recorded.
    pub(super) answered: tokio::sync::Notify,
}

impl Budgets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Bucket), Budget>> {
        // A poisoned lock only means another thread panicked mid-update of plain
        // numbers; the map is still usable.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether every one of `buckets` of `account` has plenty left in a running
    /// window (see [`Budget::plentiful`]): then the shared store's blocks need
    /// not be read before sending.
    pub(super) fn plentiful(&self, account: &str, buckets: &[Bucket], now: DateTime<Utc>) -> bool {
        let map = self.lock();
        buckets.iter().all(|bucket| {
            map.get(&(account.to_owned(), bucket.clone()))
                .is_some_and(|budget| budget.plentiful(now))
        })
    }

    /// Takes one request off every bucket of `account` and `route`, or says why not.
    /// On `Go`, names the buckets small enough to be taken from the shared count
    /// too (none when `force`d).
    pub(super) fn try_take(
        &self,
        account: &str,
        buckets: &[Bucket],
        now: DateTime<Utc>,
        force: bool,
    ) -> Take {
        let mut map = self.lock();
        if map.len() > MAX_BUDGETS {
            map.retain(|_, b| b.in_flight > 0 || b.reset.is_some_and(|r| r > now));
        }
        let mut decision = Decision::Go;
        for bucket in buckets {
            let budget = map.entry((account.to_owned(), bucket.clone())).or_default();
            decision = decision.and(budget.decide(now));
        }
        if force && decision == Decision::Wait {
            decision = Decision::Go;
        }
        let mut shared = Vec::new();
        if decision == Decision::Go {
            for (index, bucket) in buckets.iter().enumerate() {
                let budget = map.entry((account.to_owned(), bucket.clone())).or_default();
                if !force && let Some(seed) = budget.shared_seed() {
                    shared.push((index, seed));
                }
                budget.take();
            }
        }
        shared.sort_by_key(|(_, seed)| seed.remaining);
        Take { decision, shared }
    }

    /// Undoes a `Go` of [`try_take`](Self::try_take): the request was not sent.
    /// (Wakes nobody: those waiting would ask the same shared count, and a wake-up
    /// per refusal would have them ask in a loop; they look again on their own.)
    pub(super) fn untake(&self, account: &str, buckets: &[Bucket]) {
        let mut map = self.lock();
        for bucket in buckets {
            if let Some(budget) = map.get_mut(&(account.to_owned(), bucket.clone())) {
                budget.untake();
            }
        }
    }

    /// Raises the capacity of (`account`, `bucket`) to `capacity` if it is
    /// larger (what the shared store knows from every replica's answers).
    pub(super) fn raise_capacity(&self, account: &str, bucket: &Bucket, capacity: i64) {
        if capacity <= 0 {
            return;
        }
        let mut map = self.lock();
        if let Some(budget) = map.get_mut(&(account.to_owned(), bucket.clone())) {
            budget.capacity = budget.capacity.max(Some(capacity));
        }
    }

    /// Marks a request answered (or failed) and applies what its answer said.
    /// Returns what the shared count must learn from it: for the buckets the request
    /// was taken from the shared count on (`shared`) and those small enough to be
    /// counted there now.
    pub(super) fn finish(
        &self,
        account: &str,
        buckets: &[Bucket],
        shared: &[bool],
        answer: Option<(&RateLimitHeaders, bool)>,
        now: DateTime<Utc>,
    ) -> Vec<Lesson> {
        let mut lessons = Vec::new();
        {
            let mut map = self.lock();
            for (index, bucket) in buckets.iter().enumerate() {
                let Some(budget) = map.get_mut(&(account.to_owned(), bucket.clone())) else {
                    continue;
                };
                budget.in_flight = budget.in_flight.saturating_sub(1);
                if let Some((headers, limited)) = answer {
                    let remaining = match bucket {
                        Bucket::Global => headers.global_remaining,
                        Bucket::Route(_) => headers.route_remaining,
                    };
                    let limited = limited && remaining.is_some_and(|r| r <= 0);
                    budget.learn(remaining, headers.reset, limited, now);
                    let reported = remaining.zip(headers.reset.filter(|r| *r > now));
                    let counted = shared.get(index).copied().unwrap_or(false) || budget.small();
                    if let Some((remaining, reset)) = reported.filter(|_| counted) {
                        lessons.push(Lesson {
                            bucket: bucket.clone(),
                            remaining: remaining.max(0),
                            reset,
                            limited,
                            in_flight: i64::from(budget.in_flight),
                        });
                    }
                }
            }
        }
        self.answered.notify_waiters();
        lessons
    }
}
