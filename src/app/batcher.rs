//! A queue whose items are written together: the API's one-statement
//! writes that arrive while the statements before them run go out in one
//! statement (group commit, across requests).
//!
//! A write is queued with [`Batcher::queue`] and its caller awaits the
//! answer. A few lanes (tasks, [`run`]) take whatever is queued, up to
//! [`MAX_BATCH`] items, hand it to their writer and send each caller its
//! answer. A lane that finds the queue empty waits for the next item, so at
//! low load an item goes out as soon as it is queued, alone; under load
//! the items queued while every lane is busy go out together when one is
//! free, and the statements are as many as the lanes have time for.
//!
//! While no lane runs (before they start, after they stop, or where none
//! is started, as in tests that drive the lifecycle by hand), `queue`
//! hands the item back and the caller writes it itself.

use std::sync::Mutex;

use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

/// The most items one statement writes.
pub const MAX_BATCH: usize = 64;

/// An item waiting for a lane, and where its answer goes.
type Waiting<I, O> = (I, oneshot::Sender<O>);

struct Pending<I, O> {
    items: Vec<Waiting<I, O>>,
    /// Lanes running; `queue` hands items back while there are none.
    lanes: usize,
}

/// The queue between the callers and the lanes.
pub struct Batcher<I, O> {
    pending: Mutex<Pending<I, O>>,
    queued: Notify,
}

impl<I, O> Default for Batcher<I, O> {
    fn default() -> Self {
        Self {
            pending: Mutex::new(Pending {
                items: Vec::new(),
                lanes: 0,
            }),
            queued: Notify::new(),
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

    /// Queues `item` for the next free lane; the receiver gets its answer.
    /// `Err(item)` when no lane runs: the caller writes it itself.
    pub fn queue(&self, item: I) -> Result<oneshot::Receiver<O>, I> {
        let mut pending = self.lock();
        if pending.lanes == 0 {
            return Err(item);
        }
        let (tx, rx) = oneshot::channel();
        pending.items.push((item, tx));
        drop(pending);
        self.queued.notify_one();
        Ok(rx)
    }

    /// Up to [`MAX_BATCH`] queued items, oldest first. With `stop`, this
    /// lane stops: the last one to stop takes every item left, and from
    /// then on `queue` hands items back.
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
            // More than one batch is queued: another free lane can start.
            self.queued.notify_one();
        }
        batch
    }

    /// Items queued and not yet taken by a lane.
    pub fn queued(&self) -> usize {
        self.lock().items.len()
    }

    /// Counts a lane in; `queue` queues from now on.
    fn start(&self) {
        self.lock().lanes += 1;
    }
}

/// A lane: until shut down, takes what is queued and has `write` write it
/// (one answer per item, in order); then writes what is left if it is the
/// last lane to stop.
pub(crate) async fn run<I, O, W, F>(batcher: &Batcher<I, O>, shutdown: CancellationToken, write: W)
where
    W: Fn(Vec<I>) -> F,
    F: std::future::Future<Output = Vec<O>>,
{
    batcher.start();
    loop {
        let batch = batcher.take(false);
        if batch.is_empty() {
            tokio::select! {
                () = batcher.queued.notified() => continue,
                () = shutdown.cancelled() => break,
            }
        }
        answer(batch, &write).await;
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

    #[test]
    fn without_a_lane_an_item_comes_back_to_its_caller() {
        let batcher = Batcher::<u32, u32>::default();
        assert!(matches!(batcher.queue(7), Err(7)));
    }

    #[tokio::test]
    async fn items_queued_while_the_lane_is_busy_are_written_together() {
        let batcher = Arc::new(Batcher::<u32, u32>::default());
        let shutdown = CancellationToken::new();
        let batches = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let lane = {
            let (batcher, shutdown, batches, release) = (
                batcher.clone(),
                shutdown.clone(),
                batches.clone(),
                release.clone(),
            );
            tokio::spawn(async move {
                run(&batcher, shutdown, |items: Vec<u32>| {
                    let (batches, release) = (batches.clone(), release.clone());
                    async move {
                        batches.lock().unwrap().push(items.clone());
                        release.acquire().await.unwrap().forget();
                        items.iter().map(|i| i * 10).collect()
                    }
                })
                .await;
            })
        };
        while batcher.lock().lanes == 0 {
            tokio::task::yield_now().await;
        }
        // The first goes alone; the next three queue behind it.
        let first = batcher.queue(1).unwrap();
        while batches.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (2..=4).map(|i| batcher.queue(i).unwrap()).collect();
        release.add_permits(2);
        assert_eq!(first.await.unwrap(), 10);
        let mut answers = Vec::new();
        for rx in rest {
            answers.push(rx.await.unwrap());
        }
        assert_eq!(answers, vec![20, 30, 40]);
        assert_eq!(*batches.lock().unwrap(), vec![vec![1], vec![2, 3, 4]]);

        // Stopped: what was queued is written, and later items come back.
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), lane)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(batcher.queue(5), Err(5)));
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
        assert!(matches!(batcher.queue(2), Err(2)));
    }

    #[test]
    fn a_batch_holds_at_most_max_batch_items() {
        let batcher = Batcher::<usize, usize>::default();
        batcher.start();
        let _rx: Vec<_> = (0..MAX_BATCH + 3)
            .map(|i| batcher.queue(i).unwrap())
            .collect();
        let first = batcher.take(false);
        assert_eq!(first.len(), MAX_BATCH);
        assert_eq!(first[0].0, 0);
        assert_eq!(batcher.take(false).len(), 3);
    }
}
