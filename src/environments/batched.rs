//! The API's PUTs and DELETEs that arrive together, written in one
//! statement (`app::batcher`, `store::environments::insert_requested_many`
//! and `mark_absent_requested_many`).
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

use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::app::batcher::{self, Entry};
use crate::store::environments::{
    self, AbsentRequested, EnvironmentRow, NewEnvironment, NewRequested, Requested,
};

/// Lanes per kind of write and replica: one for each place of a statement
/// in flight (`app::batcher::IN_FLIGHT`).
pub const WRITE_LANES: usize = batcher::IN_FLIGHT;

/// Writes `new` at once if fewer than `batcher::IN_FLIGHT` PUT statements
/// of this replica run, else with the other PUTs queued until one is done;
/// answers as `environments::insert_requested`.
pub(super) async fn insert(state: &AppState, new: NewRequested) -> sqlx::Result<Option<Requested>> {
    match state.lifecycle.puts.enter(new) {
        Entry::Alone { item, place } => {
            let written = insert_one(state, &item).await;
            drop(place);
            written
        }
        Entry::Queued(answer) => answer.await.unwrap_or(Err(sqlx::Error::WorkerCrashed)),
    }
}

/// Marks `request`'s live generation unwanted, at once or with the other
/// DELETEs queued meanwhile (as [`insert`]); answers as
/// `environments::mark_absent_requested`.
pub(super) async fn mark_absent(
    state: &AppState,
    request: AbsentRequested,
) -> sqlx::Result<Option<EnvironmentRow>> {
    match state.lifecycle.deletes.enter(request) {
        Entry::Alone { item, place } => {
            let marked = mark_absent_one(state, &item).await;
            drop(place);
            marked
        }
        Entry::Queued(answer) => answer.await.unwrap_or(Err(sqlx::Error::WorkerCrashed)),
    }
}

async fn insert_one(state: &AppState, new: &NewRequested) -> sqlx::Result<Option<Requested>> {
    let row = NewEnvironment {
        id: new.id,
        tenant: &new.tenant,
        ephemeral_id: &new.ephemeral_id,
        generation: new.generation,
        request: new.request.clone(),
        project_key: &new.project_key,
        environment_key: &new.environment_key,
        environment_name: &new.environment_name,
        source_environment_key: &new.source_environment_key,
        color: &new.color,
        tags: &new.tags,
        flags: new.flags.clone(),
        expires_at: new.expires_at,
    };
    let audit = (new.actor.as_str(), new.action, &new.details);
    environments::insert_requested(&state.db, &row, audit, new.now, None).await
}

async fn mark_absent_one(
    state: &AppState,
    request: &AbsentRequested,
) -> sqlx::Result<Option<EnvironmentRow>> {
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

/// Items with their places in the batch.
type Placed<T> = Vec<(usize, T)>;

/// Splits `items` into those with distinct keys, written in one statement,
/// and the repeats of a key already among them, each written alone after.
fn distinct<T, K: std::hash::Hash + Eq>(
    items: Vec<T>,
    key: impl Fn(&T) -> K,
) -> (Placed<T>, Placed<T>) {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .enumerate()
        .partition(|(_, item)| seen.insert(key(item)))
}

/// Writes `items` with `many` (one statement for all of those with distinct
/// keys), falling back to `one` for each when that statement fails, and
/// for the repeats; the answers in `items`' order.
async fn write_all<T, O, K, M, One, FutM, FutO>(
    state: &AppState,
    write: &'static str,
    items: Vec<T>,
    key: impl Fn(&T) -> K,
    many: M,
    one: One,
) -> Vec<sqlx::Result<O>>
where
    K: std::hash::Hash + Eq,
    M: FnOnce(Vec<T>) -> FutM,
    FutM: std::future::Future<Output = (Vec<T>, sqlx::Result<Vec<O>>)>,
    One: Fn(T) -> FutO,
    FutO: std::future::Future<Output = sqlx::Result<O>>,
{
    let n = items.len();
    let (first, repeats) = distinct(items, key);
    let mut answers: Vec<Option<sqlx::Result<O>>> = (0..n).map(|_| None).collect();
    let (places, first): (Vec<usize>, Vec<T>) = first.into_iter().unzip();
    let alone = if first.len() == 1 {
        first
    } else {
        let (first, written) = many(first).await;
        match written {
            Ok(written) => {
                count_batch(state, write, written.len());
                for (place, answer) in places.iter().zip(written) {
                    answers[*place] = Some(Ok(answer));
                }
                Vec::new()
            }
            Err(err) => {
                tracing::debug!(error = %err, write, "a batched write failed; writing each request alone");
                first
            }
        }
    };
    let alone = places
        .into_iter()
        .zip(alone)
        .chain(repeats)
        .collect::<Vec<_>>();
    for (place, item) in alone {
        answers[place] = Some(one(item).await);
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
        "Statements that wrote several API requests together, by write (put or delete)",
        &[("write", write)],
    );
    state.metrics.add(
        "ld_eaas_batched_requests_total",
        "API requests written together with others in one statement, by write (put or delete)",
        &[("write", write)],
        u64::try_from(requests).unwrap_or(u64::MAX),
    );
}

/// A PUT lane ([`batcher::run`]) of this replica, until shut down.
pub(crate) async fn put_lane(state: AppState, shutdown: CancellationToken) {
    let lane = state.clone();
    batcher::run(&state.lifecycle.puts, shutdown, move |items| {
        let state = lane.clone();
        async move {
            write_all(
                &state,
                "put",
                items,
                |new: &NewRequested| (new.tenant.clone(), new.ephemeral_id.clone()),
                |batch| {
                    let state = state.clone();
                    async move {
                        let written = environments::insert_requested_many(&state.db, &batch).await;
                        (batch, written)
                    }
                },
                |new| {
                    let state = state.clone();
                    async move { insert_one(&state, &new).await }
                },
            )
            .await
        }
    })
    .await;
}

/// A DELETE lane of this replica, until shut down.
pub(crate) async fn delete_lane(state: AppState, shutdown: CancellationToken) {
    let lane = state.clone();
    batcher::run(&state.lifecycle.deletes, shutdown, move |items| {
        let state = lane.clone();
        async move {
            write_all(
                &state,
                "delete",
                items,
                |request: &AbsentRequested| (request.tenant.clone(), request.ephemeral_id.clone()),
                |batch| {
                    let state = state.clone();
                    async move {
                        let written =
                            environments::mark_absent_requested_many(&state.db, &batch).await;
                        (batch, written)
                    }
                },
                |request| {
                    let state = state.clone();
                    async move { mark_absent_one(&state, &request).await }
                },
            )
            .await
        }
    })
    .await;
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
