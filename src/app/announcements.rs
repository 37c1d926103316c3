//! The announcements of the API's committed one-statement writes, sent by
//! one task per replica so that under load many go out in one statement.
//!
//! The API's durable writes commit without notifying (see
//! `store::notify`): the environment's notice and the workers' wake-up go
//! out after the commit, as a hint. Sent by the request itself, that was
//! one more statement (and round trip) per PUT or DELETE. Instead the
//! request queues them here and returns; the sender takes everything
//! queued and sends it in one statement, and whatever is queued while that
//! statement runs goes out in the next. At low load a notice goes out a
//! few microseconds after its commit, as before; under load the statements
//! are as many as the sender has time for, not one per request.
//!
//! Nothing durable rides on an announcement: a waiter that misses one
//! polls, a worker that misses a wake-up claims at its next poll. So one
//! that fails to go out is logged and dropped. Notices may reach a waiter
//! after the outcome that followed them; `Watch::record` ignores a notice
//! older than what it knows.

use std::sync::Mutex;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::AppState;
use crate::store::notify;

/// What is queued and not yet sent.
#[derive(Debug, Default)]
struct Pending {
    notices: Vec<String>,
    wake_workers: bool,
    /// A sender runs ([`run`]); while it does not (before it starts, after
    /// it stops, or where none is started), the caller sends itself.
    sender: bool,
}

/// The queue between the API's writes and the sender.
#[derive(Debug, Default)]
pub struct Announcements {
    pending: Mutex<Pending>,
    queued: Notify,
}

impl Announcements {
    /// Queues `notice` (on `ENVIRONMENTS_CHANNEL`) and, with
    /// `wake_workers`, the wake-up of every replica's workers. When no
    /// sender runs, the notice comes back: the caller must send it itself.
    fn queue(&self, notice: Option<String>, wake_workers: bool) -> Result<(), Option<String>> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if !pending.sender {
            return Err(notice);
        }
        pending.notices.extend(notice);
        pending.wake_workers |= wake_workers;
        drop(pending);
        self.queued.notify_one();
        Ok(())
    }

    /// Everything queued, now owned by the caller; with `stop`, no sender
    /// runs from here on (later callers send themselves).
    fn take(&self, stop: bool) -> (Vec<String>, bool) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if stop {
            pending.sender = false;
        }
        let wake = std::mem::take(&mut pending.wake_workers);
        (std::mem::take(&mut pending.notices), wake)
    }

    fn start(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sender = true;
    }
}

/// Announces a change that has just committed: `notice` on the
/// environments channel (if any) and, with `wake_workers`, the wake-up of
/// every replica's workers. Queued for this replica's sender when it runs
/// (the call does not wait for it), sent here otherwise. A failure is
/// logged: those who would have been woken find the change at their next
/// poll.
pub async fn announce(state: &AppState, notice: Option<String>, wake_workers: bool) {
    if notice.is_none() && !wake_workers {
        return;
    }
    if let Err(notice) = state.lifecycle.announcements.queue(notice, wake_workers) {
        send(state, &Vec::from_iter(notice), wake_workers).await;
    }
}

async fn send(state: &AppState, notices: &[String], wake_workers: bool) {
    if notices.is_empty() && !wake_workers {
        return;
    }
    match notify::announce_committed(&state.db, notices, wake_workers).await {
        Ok(()) => state.metrics.inc(
            "ld_eaas_announcement_statements_total",
            "Statements that sent the announcements of the API's committed writes (each carries every notice queued meanwhile)",
            &[],
        ),
        Err(err) => {
            tracing::warn!(error = %err, notices = notices.len(), "could not announce committed changes; waiters and workers will find them at their next poll");
        }
    }
}

/// The sender: sends whatever is queued, one statement at a time, until
/// shut down; then sends what is left and lets callers send their own.
pub(crate) async fn run(state: AppState, shutdown: CancellationToken) {
    let announcements = &state.lifecycle.announcements;
    announcements.start();
    loop {
        tokio::select! {
            () = announcements.queued.notified() => {}
            () = shutdown.cancelled() => break,
        }
        let (notices, wake) = announcements.take(false);
        send(&state, &notices, wake).await;
    }
    let (notices, wake) = announcements.take(true);
    send(&state, &notices, wake).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_queued_without_a_sender_and_a_stopped_sender_hands_over_what_was_left() {
        let announcements = Announcements::default();
        assert_eq!(
            announcements.queue(Some("a 1 pending".into()), true),
            Err(Some("a 1 pending".to_owned()))
        );
        assert_eq!(announcements.take(false), (vec![], false));

        announcements.start();
        assert_eq!(
            announcements.queue(Some("a 1 pending".into()), false),
            Ok(())
        );
        assert_eq!(announcements.queue(None, true), Ok(()));
        assert_eq!(
            announcements.queue(Some("b 2 deleting".into()), false),
            Ok(())
        );
        assert_eq!(
            announcements.take(false),
            (
                vec!["a 1 pending".to_owned(), "b 2 deleting".to_owned()],
                true
            )
        );
        assert_eq!(announcements.take(false), (vec![], false));

        assert_eq!(
            announcements.queue(Some("c 1 deleting".into()), false),
            Ok(())
        );
        assert_eq!(
            announcements.take(true),
            (vec!["c 1 deleting".to_owned()], false)
        );
        assert_eq!(announcements.queue(None, true), Err(None));
        assert_eq!(announcements.take(false), (vec![], false));
    }
}
