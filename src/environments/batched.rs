//! The API's PUTs and DELETEs that arrive together, and the workers'
//! outcomes that are ready together, written in one statement
//! (`app::batcher`, `store::environments::insert_requested_many`,
//! `mark_absent_requested_many` and `settle_many`).
//!
//! Only writes that do not claim their job go this way: a request that can
//! promise its job to an idle worker of this replica (the path that sets a
//! PUT's latency at moderate load) is written alone, at once. The others
//! are written at once too while a place is free (`app::batcher`: two
//! statements of a kind in flight per replica); when both are taken, they
//! queue, and a lane writes them together as soon as one is free: one
//! statement, one commit and one round trip for the lot, where each
//! request made its own. Each caller gets the answer its own statement
//! would have given.

use std::collections::HashSet;
use std::hash::Hash;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::AppState;
use crate::app::batcher::{self, Batcher, Entry};
use crate::ids::{EphemeralId, TenantId};
use crate::store::environments::{
    self, AbsentRequested, EnvironmentRow, NewRequested, Next, Requested, Settlement,
};

/// A write the lanes batch: a PUT ([`NewRequested`]), a DELETE
/// ([`AbsentRequested`]) or a worker's outcome ([`Settlement`]).
pub(super) trait Batched: Sized {
    /// What its own statement answers.
    type Answer;
    /// Its name in the metrics (`put`, `delete`, `settle`).
    const WRITE: &'static str;
    /// The replica's queue of such writes.
    fn batcher(state: &AppState) -> &Batcher<Self, sqlx::Result<Self::Answer>>;
    /// The ephemeral id it is about: one statement writes an id once.
    fn key(&self) -> (TenantId, EphemeralId);
    /// Writes `batch` in one statement (answers in its order).
    async fn many(state: &AppState, batch: &[Self]) -> sqlx::Result<Vec<Self::Answer>>;
    /// Writes it alone.
    async fn one(state: &AppState, item: &Self) -> sqlx::Result<Self::Answer>;
}

impl Batched for NewRequested {
    type Answer = Option<Requested>;
    const WRITE: &'static str = "put";

    fn batcher(state: &AppState) -> &Batcher<Self, sqlx::Result<Self::Answer>> {
        &state.lifecycle.puts
    }

    fn key(&self) -> (TenantId, EphemeralId) {
        (self.tenant.clone(), self.ephemeral_id.clone())
    }

    async fn many(state: &AppState, batch: &[Self]) -> sqlx::Result<Vec<Self::Answer>> {
        environments::insert_requested_many(&state.db, batch).await
    }

    /// As `environments::insert_requested`, without a claim.
    async fn one(state: &AppState, new: &Self) -> sqlx::Result<Self::Answer> {
        let audit = (new.actor.as_str(), new.action, &new.details);
        environments::insert_requested(&state.db, &new.row(), audit, new.now, None).await
    }
}

impl Batched for AbsentRequested {
    type Answer = Option<EnvironmentRow>;
    const WRITE: &'static str = "delete";

    fn batcher(state: &AppState) -> &Batcher<Self, sqlx::Result<Self::Answer>> {
        &state.lifecycle.deletes
    }

    fn key(&self) -> (TenantId, EphemeralId) {
        (self.tenant.clone(), self.ephemeral_id.clone())
    }

    async fn many(state: &AppState, batch: &[Self]) -> sqlx::Result<Vec<Self::Answer>> {
        environments::mark_absent_requested_many(&state.db, batch).await
    }

    /// As `environments::mark_absent_requested`, without a claim.
    async fn one(state: &AppState, request: &Self) -> sqlx::Result<Self::Answer> {
        let audit = (request.actor.as_str(), request.action);
        let marked = environments::mark_absent_requested(
            &state.db,
            &request.tenant,
            &request.ephemeral_id,
            audit,
            request.now,
            None,
        )
        .await?;
        Ok(marked.map(|(row, _)| row))
    }
}

impl Batched for Settlement {
    type Answer = Option<(EnvironmentRow, Next)>;
    const WRITE: &'static str = "settle";

    fn batcher(state: &AppState) -> &Batcher<Self, sqlx::Result<Self::Answer>> {
        &state.lifecycle.settles
    }

    fn key(&self) -> (TenantId, EphemeralId) {
        (self.tenant.clone(), self.ephemeral_id.clone())
    }

    async fn many(state: &AppState, batch: &[Self]) -> sqlx::Result<Vec<Self::Answer>> {
        environments::settle_many(&state.db, batch).await
    }

    async fn one(state: &AppState, settlement: &Self) -> sqlx::Result<Self::Answer> {
        environments::settle(&state.db, settlement).await
    }
}

/// Records a worker's outcome (`store::environments::settle`): at once if
/// one of the replica's places for outcomes is free, else with the other
/// workers' outcomes queued meanwhile (`settle_many`: their claims of next
/// jobs are of previews' jobs only).
pub(crate) async fn write_settlement(
    state: &AppState,
    settlement: Settlement,
) -> sqlx::Result<Option<(EnvironmentRow, Next)>> {
    write(state, settlement).await
}

/// Writes `item` at once if one of the replica's [`batcher::IN_FLIGHT`]
/// places for such writes is free (or no lane runs), else queued and
/// written with the others queued until a place is free; answers as its
/// own statement would (`environments::insert_requested`,
/// `mark_absent_requested`).
pub(super) async fn write<T: Batched>(state: &AppState, item: T) -> sqlx::Result<T::Answer> {
    match T::batcher(state).enter(item) {
        Entry::Alone { item, place } => {
            let written = T::one(state, &item).await;
            drop(place);
            written
        }
        Entry::Queued(answer) => answer.await.unwrap_or(Err(sqlx::Error::WorkerCrashed)),
    }
}

/// Items with their places in the batch.
type Placed<T> = Vec<(usize, T)>;

/// Splits `items` into those with distinct keys, written in one statement,
/// and the repeats of a key already among them, each written alone after.
fn distinct<T, K: Hash + Eq>(items: Vec<T>, key: impl Fn(&T) -> K) -> (Placed<T>, Placed<T>) {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .enumerate()
        .partition(|(_, item)| seen.insert(key(item)))
}

/// Writes `items` in one statement (those with distinct ids), falling back
/// to one statement each when that fails, and for the repeats; the answers
/// in `items`' order.
async fn write_all<T: Batched>(state: &AppState, items: Vec<T>) -> Vec<sqlx::Result<T::Answer>> {
    let n = items.len();
    let (first, repeats) = distinct(items, T::key);
    let mut answers: Vec<Option<sqlx::Result<T::Answer>>> = (0..n).map(|_| None).collect();
    let alone = if first.len() == 1 {
        first
    } else {
        let (places, batch): (Vec<usize>, Vec<T>) = first.into_iter().unzip();
        match T::many(state, &batch).await {
            Ok(written) => {
                count_batch(state, T::WRITE, written.len());
                for (place, answer) in places.iter().zip(written) {
                    answers[*place] = Some(Ok(answer));
                }
                Vec::new()
            }
            Err(err) => {
                tracing::debug!(error = %err, write = T::WRITE, "a batched write failed; writing each request alone");
                places.into_iter().zip(batch).collect()
            }
        }
    };
    for (place, item) in alone.into_iter().chain(repeats) {
        answers[place] = Some(T::one(state, &item).await);
    }
    answers
        .into_iter()
        .map(|answer| answer.unwrap_or(Err(sqlx::Error::WorkerCrashed)))
        .collect()
}

/// Counts a statement that wrote `requests` requests together.
fn count_batch(state: &AppState, write: &'static str, requests: usize) {
    state.metrics.inc(
        "ld_eaas_write_batches_total",
        "Statements that wrote several API requests (or workers' outcomes) together, by write (put, delete or settle)",
        &[("write", write)],
    );
    state.metrics.add(
        "ld_eaas_batched_requests_total",
        "API requests (or workers' outcomes) written together with others in one statement, by write (put, delete or settle)",
        &[("write", write)],
        u64::try_from(requests).unwrap_or(u64::MAX),
    );
}

/// A lane of `T`'s queue ([`batcher::run`]), until shut down.
async fn lane<T: Batched>(state: AppState, shutdown: CancellationToken) {
    let lane = state.clone();
    batcher::run(T::batcher(&state), shutdown, move |items| {
        let state = lane.clone();
        async move { write_all(&state, items).await }
    })
    .await;
}

/// Starts this replica's lanes: one per place ([`batcher::IN_FLIGHT`]) for
/// the PUTs, as many for the DELETEs and for the workers' outcomes.
pub(crate) fn spawn_lanes(state: &AppState, shutdown: &CancellationToken, tasks: &TaskTracker) {
    for _ in 0..batcher::IN_FLIGHT {
        tasks.spawn(lane::<NewRequested>(state.clone(), shutdown.clone()));
        tasks.spawn(lane::<AbsentRequested>(state.clone(), shutdown.clone()));
        tasks.spawn(lane::<Settlement>(state.clone(), shutdown.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::distinct;

    #[test]
    fn repeats_of_a_key_are_set_apart_in_order() {
        let (first, repeats) = distinct(vec!["a1", "b1", "a2", "c1", "a3"], |s| &s[..1]);
        assert_eq!(first, vec![(0, "a1"), (1, "b1"), (3, "c1")]);
        assert_eq!(repeats, vec![(2, "a2"), (4, "a3")]);
    }
}
