//! Unit tests of the rate-limit gate: pacing, blocks and header parsing; the
//! replicas' shared budget in [`shared`].

mod shared;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};

use super::headers::parse_retry_after;
use super::{
    BoxFuture, Bucket, InMemoryRateLimitStore, Lesson, RateLimitGate, RateLimitStore, Reservation,
    SHARED_BELOW, SharedSeed, StoreError,
};

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn gate_at(now_ms: i64) -> RateLimitGate {
    RateLimitGate::new(
        Arc::new(InMemoryRateLimitStore::new()),
        Arc::new(move || at(now_ms)),
    )
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.insert(*name, value);
        }
    }
    map
}

const ROUTE: &str = "GET /api/v2/projects";

/// One request through the gate on `ROUTE`, answered with `status` and `answer`.
async fn send(
    gate: &RateLimitGate,
    account: &str,
    status: StatusCode,
    answer: &HeaderMap,
) -> Option<DateTime<Utc>> {
    let permit = gate.acquire(account, ROUTE).await.ok()?;
    gate.observe(permit, status, answer).await
}

#[tokio::test]
async fn an_exhausted_route_blocks_only_that_route_of_that_account() {
    let gate = gate_at(1_000_000);
    let answer = headers(&[
        ("x-ratelimit-route-remaining", "0"),
        ("x-ratelimit-global-remaining", "50"),
        ("x-ratelimit-reset", "1005000"),
    ]);
    assert_eq!(send(&gate, "a", StatusCode::OK, &answer).await, None);
    assert_eq!(gate.blocked_until("a", ROUTE).await, Some(at(1_005_000)));
    assert_eq!(gate.blocked_until("a", "GET /other").await, None);
    assert_eq!(gate.blocked_until("b", ROUTE).await, None);
}

#[tokio::test]
async fn a_429_with_only_retry_after_blocks_the_account() {
    let gate = gate_at(1_000_000);
    let answer = headers(&[("retry-after", "3")]);
    let reset = send(&gate, "a", StatusCode::TOO_MANY_REQUESTS, &answer).await;
    assert_eq!(reset, Some(at(1_003_000)));
    assert_eq!(gate.blocked_until("a", "GET /other").await, reset);
}

#[tokio::test]
async fn a_429_waits_for_the_later_of_reset_and_retry_after() {
    let gate = gate_at(1_000_000);
    let answer = headers(&[
        ("x-ratelimit-global-remaining", "0"),
        ("x-ratelimit-reset", "1002000"),
        ("retry-after", "5"),
    ]);
    let reset = send(&gate, "a", StatusCode::TOO_MANY_REQUESTS, &answer).await;
    assert_eq!(reset, Some(at(1_005_000)));
}

#[tokio::test]
async fn past_blocks_are_ignored_and_remaining_budget_blocks_nothing() {
    let gate = gate_at(1_000_000);
    let stale = headers(&[
        ("x-ratelimit-global-remaining", "0"),
        ("x-ratelimit-reset", "999000"),
    ]);
    send(&gate, "a", StatusCode::OK, &stale).await;
    let fine = headers(&[
        ("x-ratelimit-global-remaining", "7"),
        ("x-ratelimit-reset", "1009000"),
    ]);
    send(&gate, "a", StatusCode::OK, &fine).await;
    assert_eq!(gate.blocked_until("a", ROUTE).await, None);
}

/// A gate whose clock reads the shared millisecond counter.
fn gate_on(now_ms: Arc<Mutex<i64>>) -> RateLimitGate {
    RateLimitGate::new(
        Arc::new(InMemoryRateLimitStore::new()),
        Arc::new(move || at(*now_ms.lock().unwrap_or_else(PoisonError::into_inner))),
    )
}

fn set_now(now: &Mutex<i64>, ms: i64) {
    *now.lock().unwrap_or_else(PoisonError::into_inner) = ms;
}

fn budget(remaining: i64, reset_ms: i64) -> HeaderMap {
    headers(&[
        ("x-ratelimit-route-remaining", &remaining.to_string()),
        ("x-ratelimit-global-remaining", "1000"),
        ("x-ratelimit-reset", &reset_ms.to_string()),
    ])
}

#[tokio::test]
async fn the_budget_is_spent_by_requests_in_flight_before_their_answers_arrive() {
    let gate = gate_at(1_000_000);
    send(&gate, "a", StatusCode::OK, &budget(2, 1_005_000)).await;
    let first = gate.acquire("a", ROUTE).await;
    let second = gate.acquire("a", ROUTE).await;
    assert!(first.is_ok() && second.is_ok());
    assert_eq!(gate.acquire("a", ROUTE).await.err(), Some(at(1_005_000)));
    assert!(gate.acquire("b", ROUTE).await.is_ok(), "another account");
    assert!(
        gate.acquire("a", "GET /other").await.is_ok(),
        "another route"
    );
}

#[tokio::test]
async fn a_fresh_window_starts_from_the_largest_budget_seen() {
    let now = Arc::new(Mutex::new(1_000_000));
    let gate = gate_on(now.clone());
    send(&gate, "a", StatusCode::OK, &budget(2, 1_002_000)).await;
    for _ in 0..2 {
        send(&gate, "a", StatusCode::OK, &budget(0, 1_002_000)).await;
    }
    assert_eq!(gate.acquire("a", ROUTE).await.err(), Some(at(1_002_000)));

    *now.lock().unwrap_or_else(PoisonError::into_inner) = 1_002_000;
    let permits: Vec<_> = futures::future::join_all((0..3).map(|_| gate.acquire("a", ROUTE)))
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(permits.len(), 3, "a window of three, sent without waiting");
    let mut permits = permits.into_iter();
    if let Some(permit) = permits.next() {
        gate.observe(permit, StatusCode::OK, &budget(2, 1_004_000))
            .await;
    }
    assert_eq!(gate.acquire("a", ROUTE).await.err(), Some(at(1_004_000)));
}

/// Acquires on `ROUTE` until refused; how many went (their permits dropped
/// unanswered, as if still in flight).
async fn takes_until_refused(gate: &RateLimitGate) -> usize {
    let mut permits = Vec::new();
    while let Ok(permit) = gate.acquire("a", ROUTE).await {
        permits.push(permit);
        if permits.len() > 100 {
            break;
        }
    }
    permits.len()
}

#[tokio::test]
async fn a_window_whose_first_answers_went_elsewhere_does_not_shrink_the_next() {
    // With several replicas, the answers that show a window's whole budget may
    // all go to another one; this process then only sees what was left. The
    // next window must still start from the whole budget, or it would hold
    // back (and hold every queued job of the account with it) part way through.
    let now = Arc::new(Mutex::new(1_000_000));
    let gate = gate_on(now.clone());
    send(&gate, "a", StatusCode::OK, &budget(19, 1_002_000)).await; // a budget of 20
    set_now(&now, 1_002_000);
    // This window, others' requests were counted first: 14 left at best here.
    send(&gate, "a", StatusCode::OK, &budget(14, 1_004_000)).await;
    set_now(&now, 1_004_000);
    // The next window's first answer is this process's own: 19 left.
    send(&gate, "a", StatusCode::OK, &budget(19, 1_006_000)).await;
    assert_eq!(
        takes_until_refused(&gate).await,
        19,
        "the rest of the whole budget"
    );
}

#[tokio::test]
async fn a_429_lowers_the_budget_to_what_its_window_showed() {
    let now = Arc::new(Mutex::new(1_000_000));
    let gate = gate_on(now.clone());
    send(&gate, "a", StatusCode::OK, &budget(19, 1_002_000)).await; // a budget of 20
    set_now(&now, 1_002_000);
    // The limit was lowered to 10: the best this window shows is 10, then a 429.
    send(&gate, "a", StatusCode::OK, &budget(9, 1_004_000)).await;
    let limited = headers(&[
        ("x-ratelimit-route-remaining", "0"),
        ("x-ratelimit-global-remaining", "1000"),
        ("x-ratelimit-reset", "1004000"),
    ]);
    send(&gate, "a", StatusCode::TOO_MANY_REQUESTS, &limited).await;
    set_now(&now, 1_004_000);
    // The first answer of the next window says 19 (it is not counted against
    // what this process believes: it starts from 10 and keeps the smaller).
    send(&gate, "a", StatusCode::OK, &budget(19, 1_006_000)).await;
    assert_eq!(
        takes_until_refused(&gate).await,
        9,
        "the rest of the lowered budget"
    );
}

#[tokio::test]
async fn a_429_holds_until_the_instant_it_names_even_inside_a_longer_window() {
    let now = Arc::new(Mutex::new(1_000_000));
    let gate = gate_on(now.clone());
    send(&gate, "a", StatusCode::OK, &budget(50, 1_010_000)).await;
    let refused = send(
        &gate,
        "a",
        StatusCode::TOO_MANY_REQUESTS,
        &budget(0, 1_000_150),
    )
    .await;
    assert_eq!(refused, Some(at(1_000_150)));
    assert_eq!(gate.acquire("a", ROUTE).await.err(), Some(at(1_000_150)));
    *now.lock().unwrap_or_else(PoisonError::into_inner) = 1_000_200;
    assert!(
        gate.acquire("a", ROUTE).await.is_ok(),
        "free again after the 429's reset, not at the window's"
    );
}

#[tokio::test]
async fn while_the_budget_is_unknown_one_request_goes_and_the_rest_wait_for_its_answer() {
    let gate = gate_at(1_000_000);
    let Ok(probe) = gate.acquire("a", ROUTE).await else {
        panic!("the first request goes");
    };
    let waiting = tokio::spawn({
        let gate = gate.clone();
        async move { gate.acquire("a", ROUTE).await.is_ok() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "the second waits for the first answer"
    );
    assert!(
        gate.acquire("b", ROUTE).await.is_ok(),
        "another account does not wait"
    );
    gate.observe(probe, StatusCode::OK, &budget(5, 1_005_000))
        .await;
    let went = tokio::time::timeout(Duration::from_secs(1), waiting).await;
    assert!(matches!(went, Ok(Ok(true))), "{went:?}");
}

#[tokio::test]
async fn buckets_without_headers_are_not_paced_and_a_failed_request_frees_its_place() {
    let gate = gate_at(1_000_000);
    send(&gate, "a", StatusCode::OK, &HeaderMap::new()).await;
    let both = futures::future::join(gate.acquire("a", ROUTE), gate.acquire("a", ROUTE)).await;
    assert!(both.0.is_ok() && both.1.is_ok());

    let probe = gate.acquire("b", ROUTE).await;
    drop(probe);
    let next = tokio::time::timeout(Duration::from_secs(1), gate.acquire("b", ROUTE)).await;
    assert!(matches!(next, Ok(Ok(_))));
}

#[test]
fn retry_after_accepts_seconds_and_http_dates() {
    let now = at(0);
    assert_eq!(parse_retry_after("2", now), Some(at(2_000)));
    assert_eq!(
        parse_retry_after("Thu, 01 Jan 1970 00:00:09 GMT", now),
        Some(at(9_000))
    );
    assert_eq!(parse_retry_after("soon", now), None);
}

// ---- the budget shared between replicas ---------------------------------
