//! Rate limits: 429s waited out until the reset time, nothing sent for a throttled
//! account before then, and other accounts untouched.
// These tests run against the simulator's real time (its rate-limit windows
// and reset headers), so they read the wall clock.
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use ld_eaas::launchdarkly::{LdClient, LdError, RateLimitGate, SystemClock};
use ld_eaas::ratelimit_store::PgRateLimitStore;
use ld_eaas::simulator::{DEMO_PROJECT, Faults, RateLimitConfig, SimulatorConfig};
use reqwest::Method;
use secrecy::SecretString;

use super::{OTHER_PROJECT, other_account, sim_config, start, start_with, writer};
use crate::support::helpers::TestDatabase;

const GET_PROJECT: &str = "GET /api/v2/projects/{projectKey}";

/// A simulator allowing `per_window` project reads per account per `window`.
async fn project_reads_limited(per_window: u32, window: Duration) -> super::Ld {
    let mut rate_limits = RateLimitConfig {
        window,
        ..RateLimitConfig::default()
    };
    rate_limits
        .route_limits
        .insert(GET_PROJECT.to_owned(), per_window);
    start_with(
        SimulatorConfig {
            rate_limits,
            ..sim_config()
        },
        |_| {},
    )
    .await
}

/// One injected 429 on project reads, resetting after `reset_after`.
fn one_429(reset_after: Duration) -> Faults {
    Faults {
        rate_limit_rate: 1.0,
        rate_limit_reset_after: reset_after,
        max_injections: Some(1),
        ..Faults::default()
    }
    .scoped(Some(Method::GET), Some("/api/v2/projects/demo"))
}

#[tokio::test]
async fn a_429_is_waited_out_until_the_reset_time_and_then_retried() {
    let ld = start().await;
    ld.sim.set_faults(one_429(Duration::from_millis(1500)));
    let auth = writer();
    let seen_reset: Arc<Mutex<Option<DateTime<Utc>>>> = Arc::default();

    let project = ld
        .client
        .with_retry(Utc::now() + Duration::from_secs(10), || async {
            let answer = ld.client.get_project(&auth, DEMO_PROJECT).await;
            if let Err(LdError::RateLimited { reset_at }) = &answer {
                *seen_reset.lock().unwrap() = Some(*reset_at);
            }
            answer
        })
        .await
        .unwrap();
    assert_eq!(project.key, DEMO_PROJECT);

    let reset_at = seen_reset
        .lock()
        .unwrap()
        .expect("the first answer was a 429");
    let sent = ld.requests_to("/api/v2/projects/demo");
    let statuses: Vec<_> = sent.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(429), Some(200)], "one 429, then one retry");
    assert!(
        sent[1].at >= reset_at,
        "the retry ({}) was sent before the reset time ({reset_at})",
        sent[1].at
    );
    assert!(sent[1].at - sent[0].at >= chrono::Duration::milliseconds(1500));
}

#[tokio::test]
async fn a_reset_beyond_the_deadline_fails_at_once_instead_of_sleeping() {
    let ld = start().await;
    ld.sim.set_faults(one_429(Duration::from_secs(30)));
    let auth = writer();
    let started = Instant::now();
    let answer = ld
        .client
        .with_retry(Utc::now() + Duration::from_secs(2), || {
            ld.client.get_project(&auth, DEMO_PROJECT)
        })
        .await;
    assert!(
        matches!(answer, Err(LdError::RateLimited { reset_at }) if reset_at > Utc::now()),
        "{answer:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(ld.requests_to("/api/v2/projects/demo").len(), 1);
}

#[tokio::test]
async fn nothing_is_sent_for_a_throttled_account_while_other_accounts_proceed() {
    let ld = project_reads_limited(2, Duration::from_secs(2)).await;
    let throttled = writer();
    for _ in 0..2 {
        ld.client
            .get_project(&throttled, DEMO_PROJECT)
            .await
            .unwrap();
    }
    // The second answer said the route budget is spent: the client now knows.
    let sent_before = ld.sim.requests().len();
    let held = ld.client.get_project(&throttled, DEMO_PROJECT).await;
    let Err(LdError::RateLimited { reset_at }) = held else {
        panic!("expected the request to be held back, got {held:?}");
    };
    assert!(reset_at > Utc::now());
    assert_eq!(ld.sim.requests().len(), sent_before, "nothing was sent");

    // Another route of the same account, and the same route of another account, go.
    ld.client
        .list_environments(&throttled, DEMO_PROJECT, &[])
        .await
        .unwrap();
    ld.client
        .get_project(&other_account(), OTHER_PROJECT)
        .await
        .unwrap();

    // Waiting it out sends exactly one more request, after the reset.
    ld.client
        .with_retry(Utc::now() + Duration::from_secs(10), || {
            ld.client.get_project(&throttled, DEMO_PROJECT)
        })
        .await
        .unwrap();
    let reads = ld.requests_to("/api/v2/projects/demo");
    let reads: Vec<_> = reads
        .iter()
        .filter(|r| r.path == "/api/v2/projects/demo")
        .collect();
    assert_eq!(reads.len(), 3);
    assert!(reads[2].at >= reset_at);
    assert!(
        ld.sim.requests().iter().all(|r| r.status != Some(429)),
        "the client never provoked a 429"
    );
}

#[tokio::test]
async fn an_exhausted_global_budget_holds_back_every_route_of_that_account_only() {
    let rate_limits = RateLimitConfig {
        global_limit: 2,
        window: Duration::from_secs(5),
        ..RateLimitConfig::default()
    };
    let ld = start_with(
        SimulatorConfig {
            rate_limits,
            ..sim_config()
        },
        |_| {},
    )
    .await;
    let throttled = writer();
    ld.client.caller_identity(&throttled).await.unwrap();
    ld.client
        .get_project(&throttled, DEMO_PROJECT)
        .await
        .unwrap();
    let sent_before = ld.sim.requests().len();
    let held = ld
        .client
        .list_environments(&throttled, DEMO_PROJECT, &[])
        .await;
    assert!(matches!(held, Err(LdError::RateLimited { .. })), "{held:?}");
    assert_eq!(ld.sim.requests().len(), sent_before);
    ld.client.caller_identity(&other_account()).await.unwrap();
}

#[tokio::test]
async fn a_real_429_is_rate_limited_and_clients_sharing_a_gate_share_what_they_learn() {
    let ld = project_reads_limited(1, Duration::from_secs(3)).await;
    let auth = writer();
    let shared_gate = RateLimitGate::in_memory();
    let first = LdClient::with_gate(ld.config.clone(), shared_gate.clone()).unwrap();
    let sibling = LdClient::with_gate(ld.config.clone(), shared_gate).unwrap();
    // A client with its own gate stands in for a replica that learned nothing.
    let stranger = LdClient::new(ld.config.clone()).unwrap();

    first.get_project(&auth, DEMO_PROJECT).await.unwrap();
    let sent_before = ld.sim.requests().len();
    let held = sibling.get_project(&auth, DEMO_PROJECT).await;
    assert!(matches!(held, Err(LdError::RateLimited { .. })), "{held:?}");
    assert_eq!(
        ld.sim.requests().len(),
        sent_before,
        "the sibling sent nothing"
    );

    let refused = stranger.get_project(&auth, DEMO_PROJECT).await;
    let Err(LdError::RateLimited { reset_at }) = refused else {
        panic!("expected a 429, got {refused:?}");
    };
    assert_eq!(ld.sim.requests().last().unwrap().status, Some(429));
    assert!(reset_at > Utc::now() && reset_at <= Utc::now() + Duration::from_secs(4));
    // The 429 taught the stranger too.
    let sent_before = ld.sim.requests().len();
    assert!(stranger.get_project(&auth, DEMO_PROJECT).await.is_err());
    assert_eq!(ld.sim.requests().len(), sent_before);
}

#[tokio::test]
async fn a_concurrent_burst_is_paced_without_a_429_near_the_ideal_and_other_accounts_are_not_slowed()
 {
    const PER_WINDOW: usize = 10;
    const BURST: usize = 40;
    const WINDOW: Duration = Duration::from_secs(1);
    const LATENCY: Duration = Duration::from_millis(50);
    let ld = project_reads_limited(PER_WINDOW as u32, WINDOW).await;
    ld.sim.set_faults(Faults {
        latency: LATENCY,
        ..Faults::none()
    });
    let auth = writer();
    let started = Instant::now();
    let burst = async {
        futures::stream::iter(0..BURST)
            .map(|_| {
                ld.client
                    .with_retry(Utc::now() + Duration::from_secs(30), || {
                        ld.client.get_project(&auth, DEMO_PROJECT)
                    })
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await
    };
    // Meanwhile another account reads, one call at a time.
    let other = async {
        let mut slowest = Duration::ZERO;
        for _ in 0..10 {
            let call = Instant::now();
            ld.client
                .get_project(&other_account(), OTHER_PROJECT)
                .await
                .expect("the other account is never held back");
            slowest = slowest.max(call.elapsed());
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        slowest
    };
    let (results, other_slowest) = futures::future::join(burst, other).await;
    let elapsed = started.elapsed();
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let sent = ld.requests_to("/api/v2/projects/demo");
    assert_eq!(sent.len(), BURST, "one request per call, no retries");
    let refused = ld
        .sim
        .requests()
        .iter()
        .filter(|r| r.status == Some(429))
        .count();
    assert_eq!(refused, 0, "no 429 at all");
    // Four windows of ten: the last opens three windows after the first.
    let windows = BURST.div_ceil(PER_WINDOW) as u32;
    let ideal = WINDOW * (windows - 1) + LATENCY;
    assert!(
        elapsed >= WINDOW * (windows - 1),
        "{elapsed:?}: faster than the limit allows"
    );
    assert!(
        elapsed <= ideal.mul_f64(1.2),
        "{elapsed:?} against the window-limited ideal {ideal:?}"
    );
    assert!(
        other_slowest < LATENCY + Duration::from_millis(200),
        "another account waited {other_slowest:?}"
    );
}

/// Two replicas (each its own gate, so its own budgets) sharing one Postgres store
/// take a small window's requests from one count: together they send no more than
/// the window allows, so a burst split between them gets no 429 and finishes near
/// the window-limited ideal. Each pacing on its own, both would spend the whole
/// window at its start.
#[tokio::test]
async fn two_replicas_sharing_postgres_pace_a_burst_between_them_without_429s_near_the_ideal() {
    const PER_WINDOW: usize = 10;
    const BURST: usize = 60;
    const WINDOW: Duration = Duration::from_secs(1);
    const LATENCY: Duration = Duration::from_millis(50);
    let ld = project_reads_limited(PER_WINDOW as u32, WINDOW).await;
    ld.sim.set_faults(Faults {
        latency: LATENCY,
        ..Faults::none()
    });
    let database = TestDatabase::create().await;
    let pool = ld_eaas::db::connect(&SecretString::from(database.url.clone()), 10)
        .await
        .unwrap();
    ld_eaas::db::migrate(&pool).await.unwrap();
    let store = Arc::new(PgRateLimitStore::new(pool));
    let replicas: Vec<LdClient> = (0..2)
        .map(|_| {
            let gate = RateLimitGate::new(store.clone(), Arc::new(SystemClock));
            LdClient::with_gate(ld.config.clone(), gate).unwrap()
        })
        .collect();
    let auth = writer();
    let burst = |client: &LdClient| {
        let client = client.clone();
        let auth = auth.clone();
        async move {
            futures::stream::iter(0..BURST / 2)
                .map(|_| {
                    client.with_retry(Utc::now() + Duration::from_secs(30), || {
                        client.get_project(&auth, DEMO_PROJECT)
                    })
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
        }
    };
    let started = Instant::now();
    let (first, second) = futures::future::join(burst(&replicas[0]), burst(&replicas[1])).await;
    let elapsed = started.elapsed();
    assert!(
        first.iter().chain(&second).all(Result::is_ok),
        "{first:?} {second:?}"
    );

    let sent = ld.requests_to("/api/v2/projects/demo");
    let refused = sent.iter().filter(|r| r.status == Some(429)).count();
    let windows = BURST.div_ceil(PER_WINDOW) as u32;
    let ideal = WINDOW * (windows - 1) + LATENCY;
    let first_at = sent.first().map(|r| r.at);
    let timeline: Vec<String> = sent
        .iter()
        .map(|r| {
            let ms = first_at.map_or(0, |first| (r.at - first).num_milliseconds());
            format!("{ms}:{}", r.status.unwrap_or(0))
        })
        .collect();
    eprintln!(
        "two replicas: {BURST} calls, {} requests sent, {refused} 429s, {elapsed:?} (ideal {ideal:?}); sent at (ms:status) {}",
        sent.len(),
        timeline.join(" ")
    );
    assert!(
        refused * 100 <= sent.len(),
        "{refused} 429s in {} requests: more than 1 per 100",
        sent.len()
    );
    assert!(
        elapsed >= WINDOW * (windows - 1),
        "{elapsed:?}: faster than the limit allows"
    );
    assert!(
        elapsed <= ideal.mul_f64(1.2),
        "{elapsed:?} against the window-limited ideal {ideal:?}"
    );
}
