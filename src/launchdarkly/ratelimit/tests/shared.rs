//! The budget replicas share through the store: gates on one store as
//! stand-ins for replicas on one database.

use super::*;

/// Two gates ("replicas", each with its own budgets) sharing one store, on one
/// hand-moved clock.
fn replicas_on(now_ms: Arc<Mutex<i64>>, store: Arc<dyn RateLimitStore>) -> [RateLimitGate; 2] {
    let gate = || {
        let now_ms = now_ms.clone();
        RateLimitGate::new(
            store.clone(),
            Arc::new(move || at(*now_ms.lock().unwrap_or_else(PoisonError::into_inner))),
        )
    };
    [gate(), gate()]
}

/// A store that counts the shared-budget calls made of it, and can fail them all.
#[derive(Default)]
struct CountingStore {
    inner: InMemoryRateLimitStore,
    reserves: AtomicUsize,
    learns: AtomicUsize,
    failing: bool,
}

impl CountingStore {
    fn failing() -> Self {
        Self {
            failing: true,
            ..Self::default()
        }
    }

    fn fail<'a, T: Send + 'static>(
        &self,
        ok: BoxFuture<'a, Result<T, StoreError>>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        if self.failing {
            Box::pin(async { Err("the database is down".into()) })
        } else {
            ok
        }
    }
}

impl RateLimitStore for CountingStore {
    fn blocked_until<'a>(
        &'a self,
        account: &'a str,
        buckets: &'a [Bucket],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<DateTime<Utc>>, StoreError>> {
        self.fail(self.inner.blocked_until(account, buckets, now))
    }

    fn record_block<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.fail(self.inner.record_block(account, bucket, until))
    }

    fn reserve<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        seed: SharedSeed,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Reservation, StoreError>> {
        self.reserves.fetch_add(1, Ordering::SeqCst);
        self.fail(self.inner.reserve(account, bucket, seed, now))
    }

    fn release<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        window: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.fail(self.inner.release(account, bucket, window))
    }

    fn learn<'a>(
        &'a self,
        account: &'a str,
        lesson: &'a Lesson,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.learns.fetch_add(1, Ordering::SeqCst);
        self.fail(self.inner.learn(account, lesson, now))
    }

    fn forget_probe<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.fail(self.inner.forget_probe(account, bucket))
    }
}

#[tokio::test]
async fn replicas_sharing_a_store_send_no_more_than_a_small_window_between_them() {
    let now = Arc::new(Mutex::new(1_000_000));
    let [a, b] = replicas_on(now.clone(), Arc::new(InMemoryRateLimitStore::new()));
    // Both start cold: one probe between them, the other replica waits for it.
    let Ok(probe) = a.acquire("acct", ROUTE).await else {
        panic!("the first request probes");
    };
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { b.acquire("acct", ROUTE).await.ok() }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        !waiting.is_finished(),
        "the other replica waits for the probe's answer instead of probing too"
    );
    assert!(
        b.acquire("other", ROUTE).await.is_ok(),
        "another account does not wait"
    );
    // A window of four: the probe leaves three.
    a.observe(probe, StatusCode::OK, &budget(3, 1_002_000))
        .await;
    let went = tokio::time::timeout(Duration::from_secs(1), waiting).await;
    let Ok(Ok(Some(b_first))) = went else {
        panic!("the waiting replica goes once the budget is known: {went:?}");
    };
    b.observe(b_first, StatusCode::OK, &budget(2, 1_002_000))
        .await;
    // Each replica believes two are left; between them two are.
    let a_second = a.acquire("acct", ROUTE).await;
    let b_second = b.acquire("acct", ROUTE).await;
    assert!(a_second.is_ok() && b_second.is_ok());
    assert_eq!(
        a.acquire("acct", ROUTE).await.err(),
        Some(at(1_002_000)),
        "the window is spent by both replicas together"
    );
    assert_eq!(b.acquire("acct", ROUTE).await.err(), Some(at(1_002_000)));
    assert!(
        a.acquire("acct", "GET /other").await.is_ok(),
        "another route"
    );

    // A fresh window: four again between them, its end unknown until an answer.
    set_now(&now, 1_002_000);
    let mut permits = Vec::new();
    for gate in [&a, &b, &a, &b] {
        let Ok(permit) = gate.acquire("acct", ROUTE).await else {
            panic!("a fresh window of four, sent without waiting");
        };
        permits.push(permit);
    }
    let waiting = tokio::spawn({
        let a = a.clone();
        async move { a.acquire("acct", ROUTE).await.err() }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        !waiting.is_finished(),
        "spent, with the fresh window's end not known yet: wait for an answer"
    );
    // The other replica's answer tells it.
    let answered = permits.pop();
    if let Some(permit) = answered {
        b.observe(permit, StatusCode::OK, &budget(0, 1_004_000))
            .await;
    }
    let held = tokio::time::timeout(Duration::from_secs(1), waiting).await;
    assert!(
        matches!(held, Ok(Ok(Some(until))) if until == at(1_004_000)),
        "{held:?}"
    );
}

#[tokio::test]
async fn only_small_budgets_are_counted_in_the_shared_store() {
    for (remaining, shared) in [(SHARED_BELOW + 20, false), (SHARED_BELOW - 2, true)] {
        let store = Arc::new(CountingStore::default());
        let gate = RateLimitGate::new(store.clone(), Arc::new(|| at(1_000_000)));
        send(&gate, "a", StatusCode::OK, &budget(remaining, 1_010_000)).await;
        // The first request probed both buckets (global and route) through the store.
        let probe_calls = store.reserves.load(Ordering::SeqCst);
        assert_eq!(probe_calls, 2, "the probe is shared");
        for _ in 0..10 {
            send(
                &gate,
                "a",
                StatusCode::OK,
                &budget(remaining - 1, 1_010_000),
            )
            .await;
        }
        let reserves = store.reserves.load(Ordering::SeqCst) - probe_calls;
        let learns = store.learns.load(Ordering::SeqCst);
        if shared {
            assert_eq!(reserves, 10, "one reservation per request");
            assert!(learns >= 10, "every answer corrects the shared count");
        } else {
            assert_eq!(reserves, 0, "{remaining} left: paced locally");
            assert_eq!(learns, 2, "only the probe's answer, on both buckets");
        }
    }
}

#[tokio::test]
async fn store_errors_let_requests_go_and_local_pacing_still_holds() {
    let gate = RateLimitGate::new(
        Arc::new(CountingStore::failing()),
        Arc::new(|| at(1_000_000)),
    );
    send(&gate, "a", StatusCode::OK, &budget(2, 1_005_000)).await;
    assert!(gate.acquire("a", ROUTE).await.is_ok());
    assert!(gate.acquire("a", ROUTE).await.is_ok());
    assert_eq!(gate.acquire("a", ROUTE).await.err(), Some(at(1_005_000)));
}

#[tokio::test]
async fn a_probe_without_an_answer_or_reporting_nothing_holds_no_other_replica() {
    let now = Arc::new(Mutex::new(1_000_000));
    let [a, b] = replicas_on(now, Arc::new(InMemoryRateLimitStore::new()));
    let Ok(probe) = a.acquire("acct", ROUTE).await else {
        panic!("the first request probes");
    };
    // A transport error: its place goes back and the other replica probes.
    a.abandon(probe).await;
    let next = tokio::time::timeout(Duration::from_millis(500), b.acquire("acct", ROUTE)).await;
    let Ok(Ok(probe)) = next else {
        panic!("the other replica probes at once");
    };
    // An answer without rate-limit headers: the bucket is not paced at all.
    b.observe(probe, StatusCode::OK, &HeaderMap::new()).await;
    let both = futures::future::join(b.acquire("acct", ROUTE), b.acquire("acct", ROUTE));
    let both = tokio::time::timeout(Duration::from_millis(500), both).await;
    assert!(matches!(both, Ok((Ok(_), Ok(_)))), "not paced");
    let next = tokio::time::timeout(Duration::from_millis(500), a.acquire("acct", ROUTE)).await;
    assert!(
        matches!(next, Ok(Ok(_))),
        "the other replica waits for no probe that told nothing"
    );
}
