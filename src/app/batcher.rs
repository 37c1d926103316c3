//! A queue whose items are written together: the API's one-statement
//! writes that arrive while the statements before them run go out in one
//! statement (group commit, across requests).
//!
//! A replica runs at most [`IN_FLIGHT`] statements of one kind at once.
//! A caller that finds one of those places free and nobody queued writes
//! its item itself, at once, as it always did ([`Batcher::enter`] gives it
//! the place: no hand-off, no added latency at low load). Otherwise its
//! item is queued and the caller awaits the answer: a lane ([`run`]) waits
//! for the next free place, takes whatever is queued by then, up to
//! [`MAX_BATCH`] items, hands it to its writer and sends each caller its
//! answer. So the items queued while the statements in flight run go out
//! together, and under load the statements are as many as the places have
//! time for.
//!
//! While no lane runs (before they start, after they stop, or where none
//! is started, as in tests that drive the lifecycle by hand), every caller
//! writes its item itself.

use std::sync::Mutex;

use tokio::sync::{Notify, Semaphore, SemaphorePermit, oneshot};
use tokio_util::sync::CancellationToken;

/// The most items one statement writes.
pub const MAX_BATCH: usize = 64;

/// Statements of one kind a replica runs at once (and lanes it runs for
/// them): while one runs, the next can start.
pub const IN_FLIGHT: usize = 2;

/// An item waiting for a lane, and where its answer goes.
type Waiting<I, O> = (I, oneshot::Sender<O>);

struct Pending<I, O> {
    items: Vec<Waiting<I, O>>,
    /// Lanes running; while there are none, callers write themselves.
    lanes: usize,
}

/// The queue between the callers and the lanes.
pub struct Batcher<I, O> {
    pending: Mutex<Pending<I, O>>,
    queued: Notify,
    /// The places of the statements in flight ([`IN_FLIGHT`]).
    places: Semaphore,
}

/// What [`Batcher::enter`] made of an item.
pub enum Entry<'a, I, O> {
    /// The caller writes it itself, now, holding `place` (if lanes run)
    /// until its statement is done.
    Alone {
        item: I,
        place: Option<SemaphorePermit<'a>>,
    },
    /// Queued: a lane writes it with the others and answers here.
    Queued(oneshot::Receiver<O>),
}

impl<I, O> Default for Batcher<I, O> {
    fn default() -> Self {
        Self {
            pending: Mutex::new(Pending {
                items: Vec::new(),
                lanes: 0,
            }),
            queued: Notify::new(),
            places: Semaphore::new(IN_FLIGHT),
        }
    }
}

impl<I, O> std::fmt::Debug for Batcher<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pending = self.lock();
        f.debug_struct("Batcher")
            .field("queued", &pending.items.len())
            .field("lanes", &pending.lanes)
            .finish()
    }
}

impl<I, O> Batcher<I, O> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending<I, O>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where `item` goes: written by its caller at once when a place is
    /// free and nothing is queued before it (or no lane runs), else queued
    /// for the next free place.
    pub fn enter(&self, item: I) -> Entry<'_, I, O> {
        let mut pending = self.lock();
        if pending.lanes == 0 {
            return Entry::Alone { item, place: None };
        }
        if pending.items.is_empty() {
            if let Ok(place) = self.places.try_acquire() {
                return Entry::Alone {
                    item,
                    place: Some(place),
                };
            }
        }
        let (tx, rx) = oneshot::channel();
        pending.items.push((item, tx));
        drop(pending);
        self.queued.notify_one();
        Entry::Queued(rx)
    }

    /// Items queued and not yet taken by a lane.
    pub fn queued(&self) -> usize {
        self.lock().items.len()
    }

    /// Up to [`MAX_BATCH`] queued items, oldest first. With `stop`, this
    /// lane stops: the last one to stop takes every item left, and from
    /// then on callers write their own.
    fn take(&self, stop: bool) -> Vec<Waiting<I, O>> {
        let mut pending = self.lock();
        if stop {
            pending.lanes -= 1;
            if pending.lanes > 0 {
                return Vec::new();
            }
            return std::mem::take(&mut pending.items);
        }
        let n = pending.items.len().min(MAX_BATCH);
        let rest = pending.items.split_off(n);
        let batch = std::mem::replace(&mut pending.items, rest);
        if !pending.items.is_empty() {
            // More than one batch is queued: another lane can start.
            self.queued.notify_one();
        }
        batch
    }

    /// Counts a lane in: from now on, items may be queued.
    fn start(&self) {
        self.lock().lanes += 1;
    }
}

/// A lane: until shut down, waits for something queued and a free place,
/// takes what is queued and has `write` write it (one answer per item, in
/// order); then writes what is left if it is the last lane to stop.
pub(crate) async fn run<I, O, W, F>(batcher: &Batcher<I, O>, shutdown: CancellationToken, write: W)
where
    W: Fn(Vec<I>) -> F,
    F: std::future::Future<Output = Vec<O>>,
{
    batcher.start();
    loop {
        if batcher.queued() == 0 {
            tokio::select! {
                () = batcher.queued.notified() => continue,
                () = shutdown.cancelled() => break,
            }
        }
        let place = tokio::select! {
            place = batcher.places.acquire() => place,
            () = shutdown.cancelled() => break,
        };
        let batch = batcher.take(false);
        if !batch.is_empty() {
            answer(batch, &write).await;
        }
        drop(place);
    }
    let left = batcher.take(true);
    if !left.is_empty() {
        answer(left, &write).await;
    }
}

async fn answer<I, O, W, F>(batch: Vec<Waiting<I, O>>, write: &W)
where
    W: Fn(Vec<I>) -> F,
    F: std::future::Future<Output = Vec<O>>,
{
    let (items, callers): (Vec<I>, Vec<oneshot::Sender<O>>) = batch.into_iter().unzip();
    let answers = write(items).await;
    debug_assert_eq!(answers.len(), callers.len());
    for (caller, answer) in callers.into_iter().zip(answers) {
        // A caller that went away (its request was dropped) needs no answer.
        let _ = caller.send(answer);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn queued<I, O>(entry: Entry<'_, I, O>) -> oneshot::Receiver<O> {
        match entry {
            Entry::Queued(rx) => rx,
            Entry::Alone { .. } => panic!("written alone"),
        }
    }

    #[test]
    fn without_a_lane_every_item_is_written_by_its_caller() {
        let batcher = Batcher::<u32, u32>::default();
        for i in 0..IN_FLIGHT + 2 {
            let Entry::Alone { item, place: None } = batcher.enter(7) else {
                panic!("{i}: not written alone without a place");
            };
            assert_eq!(item, 7);
        }
    }

    #[tokio::test]
    async fn items_that_find_every_place_taken_are_written_together_when_one_is_free() {
        let batcher = Arc::new(Batcher::<u32, u32>::default());
        let shutdown = CancellationToken::new();
        let batches = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let lane = {
            let (batcher, shutdown, batches) = (batcher.clone(), shutdown.clone(), batches.clone());
            tokio::spawn(async move {
                run(&batcher, shutdown, |items: Vec<u32>| {
                    batches.lock().unwrap().push(items.clone());
                    async move { items.iter().map(|i| i * 10).collect() }
                })
                .await;
            })
        };
        while batcher.lock().lanes == 0 {
            tokio::task::yield_now().await;
        }
        // The first IN_FLIGHT callers write their own and hold the places.
        let mut places = Vec::new();
        for i in 0..IN_FLIGHT {
            let Entry::Alone {
                place: Some(place), ..
            } = batcher.enter(u32::try_from(i).unwrap())
            else {
                panic!("a free place, and it was not given");
            };
            places.push(place);
        }
        // The next ones queue, and wait while every place is taken.
        let rest: Vec<_> = (2..=4).map(|i| queued(batcher.enter(i))).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(batches.lock().unwrap().is_empty());
        assert_eq!(batcher.queued(), 3);
        drop(places.pop());
        let mut answers = Vec::new();
        for rx in rest {
            answers.push(rx.await.unwrap());
        }
        assert_eq!(answers, vec![20, 30, 40]);
        assert_eq!(*batches.lock().unwrap(), vec![vec![2, 3, 4]]);
        // Something queued: a later item queues behind it even with a
        // place free, so that nobody overtakes.
        drop(places);

        // Stopped: what was queued is written, and later callers write
        // their own.
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), lane)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(batcher.enter(5), Entry::Alone { place: None, .. }));
    }

    #[tokio::test]
    async fn the_last_lane_to_stop_writes_what_is_left() {
        let batcher = Batcher::<u32, u32>::default();
        batcher.start();
        batcher.start();
        let (tx, _rx) = oneshot::channel();
        batcher.lock().items.push((1, tx));
        assert!(batcher.take(true).is_empty());
        assert_eq!(batcher.take(true).len(), 1);
        assert!(matches!(batcher.enter(2), Entry::Alone { place: None, .. }));
    }

    #[test]
    fn a_batch_holds_at_most_max_batch_items() {
        let batcher = Batcher::<usize, usize>::default();
        batcher.start();
        let _places: Vec<_> = (0..IN_FLIGHT)
            .map(|i| match batcher.enter(i) {
                Entry::Alone { place, .. } => place,
                Entry::Queued(_) => panic!("queued with a free place"),
            })
            .collect();
        let _rx: Vec<_> = (0..MAX_BATCH + 3)
            .map(|i| queued(batcher.enter(i)))
            .collect();
        let first = batcher.take(false);
        assert_eq!(first.len(), MAX_BATCH);
        assert_eq!(first[0].0, 0);
        assert_eq!(batcher.take(false).len(), 3);
    }
}
