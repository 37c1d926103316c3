//! Rate limits (LaunchDarkly's headers, 429s, resets) and injected faults.
#![allow(clippy::disallowed_methods)] // The simulator's rate-limit windows keep real time.

use std::time::{Duration, Instant};

use ld_eaas::simulator::{DEMO_PROJECT, Faults, RateLimitConfig, SimulatorConfig};
use reqwest::{Method, StatusCode};

use super::{ACCOUNT, Answer, READER, WRITER, base_config, env_post, start, start_with};

const ENVS: &str = "/api/v2/projects/demo/environments";

fn number(answer: &Answer, header: &str) -> u64 {
    answer
        .header(header)
        .unwrap_or_else(|| panic!("{header} missing: {:?}", answer.headers))
        .parse()
        .unwrap()
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis() as u64
}

async fn limited(global: u32, route: u32, window: Duration) -> super::Sim {
    let rate_limits = RateLimitConfig {
        global_limit: global,
        route_limit: route,
        window,
        ..RateLimitConfig::default()
    };
    start_with(SimulatorConfig {
        rate_limits,
        ..base_config()
    })
    .await
}

#[tokio::test]
async fn every_answer_carries_the_rate_limit_headers() {
    let s = start().await;
    for answer in [
        s.get("/api/v2/projects", READER).await,
        s.get("/api/v2/projects/nope", READER).await,
        s.post(ENVS, READER, &env_post("x")).await,
    ] {
        assert!(number(&answer, "x-ratelimit-global-remaining") > 0);
        assert!(number(&answer, "x-ratelimit-route-remaining") > 0);
        let reset = number(&answer, "x-ratelimit-reset");
        assert!(
            reset > now_ms() && reset <= now_ms() + 10_000,
            "epoch ms within the ten-second window"
        );
    }
}

#[tokio::test]
async fn the_route_limit_answers_429_until_the_reset_time() {
    let s = limited(100, 3, Duration::from_millis(1500)).await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let answer = s.get("/api/v2/caller-identity", WRITER).await;
        answer.assert(StatusCode::OK);
        remaining.push(number(&answer, "x-ratelimit-route-remaining"));
    }
    assert_eq!(remaining, [2, 1, 0]);
    let over = s.get("/api/v2/caller-identity", WRITER).await;
    over.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(number(&over, "x-ratelimit-route-remaining"), 0);
    assert_eq!(number(&over, "x-ratelimit-global-remaining"), 96);
    // Another route, and the same route for another account, are not throttled.
    s.get("/api/v2/projects", WRITER)
        .await
        .assert(StatusCode::OK);
    s.sim
        .add_api_token(ld_eaas::simulator::ApiTokenGrant::for_account(
            "other-account-token",
            "acct-other",
            "reader",
        ));
    s.get("/api/v2/caller-identity", "other-account-token")
        .await
        .assert(StatusCode::OK);

    let reset = number(&over, "x-ratelimit-reset");
    let wait = reset.saturating_sub(now_ms());
    assert!(wait <= 1500, "the reset is within the window: {wait} ms");
    // Until then, asking again does not help.
    s.get("/api/v2/caller-identity", WRITER)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    tokio::time::sleep(Duration::from_millis(reset.saturating_sub(now_ms()) + 20)).await;
    let after = s.get("/api/v2/caller-identity", WRITER).await;
    after.assert(StatusCode::OK);
    assert_eq!(
        number(&after, "x-ratelimit-route-remaining"),
        2,
        "a fresh window"
    );
}

#[tokio::test]
async fn the_global_limit_covers_every_route_of_the_account() {
    let s = limited(3, 100, Duration::from_secs(60)).await;
    s.get("/api/v2/projects", READER)
        .await
        .assert(StatusCode::OK);
    s.get("/api/v2/caller-identity", WRITER)
        .await
        .assert(StatusCode::OK);
    let last = s.get(ENVS, READER).await;
    last.assert(StatusCode::OK);
    assert_eq!(number(&last, "x-ratelimit-global-remaining"), 0);
    let over = s.post(ENVS, WRITER, &env_post("throttled")).await;
    over.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(number(&over, "x-ratelimit-global-remaining"), 0);
    assert!(
        s.sim
            .environment(ACCOUNT, DEMO_PROJECT, "throttled")
            .is_none(),
        "a 429 changes nothing"
    );
    s.sim.reset_rate_limits();
    s.get(ENVS, READER).await.assert(StatusCode::OK);
}

#[tokio::test]
async fn a_route_can_have_its_own_limit() {
    let mut rate_limits = RateLimitConfig {
        window: Duration::from_secs(60),
        ..RateLimitConfig::default()
    };
    rate_limits.route_limits.insert(
        "POST /api/v2/projects/{projectKey}/environments".to_owned(),
        1,
    );
    let s = start_with(SimulatorConfig {
        rate_limits,
        ..base_config()
    })
    .await;
    let first = s.post(ENVS, WRITER, &env_post("first")).await;
    first.assert(StatusCode::CREATED);
    assert_eq!(number(&first, "x-ratelimit-route-remaining"), 0);
    // The route is the path template: another project counts against the same route.
    let other = s
        .post(
            "/api/v2/projects/sandbox/environments",
            WRITER,
            &env_post("second"),
        )
        .await;
    other.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    s.get(ENVS, READER).await.assert(StatusCode::OK);
}

#[tokio::test]
async fn the_ip_limit_answers_429_with_retry_after() {
    let rate_limits = RateLimitConfig {
        per_ip_limit: Some(2),
        ..RateLimitConfig::default()
    };
    let s = start_with(SimulatorConfig {
        rate_limits,
        ..base_config()
    })
    .await;
    s.get("/api/v2/projects", READER)
        .await
        .assert(StatusCode::OK);
    s.call(Method::GET, "/api/v2/projects", None, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let over = s.get("/api/v2/projects", READER).await;
    over.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after = number(&over, "retry-after");
    assert!((1..=10).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn injected_errors_change_nothing_and_errors_after_commit_do() {
    let s = start().await;
    s.sim
        .set_faults(Faults::always_error(503).scoped(Some(Method::POST), Some("/api/v2/")));
    let failed = s.post(ENVS, WRITER, &env_post("before-commit")).await;
    failed.assert_error(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
    assert!(
        s.sim
            .environment(ACCOUNT, DEMO_PROJECT, "before-commit")
            .is_none()
    );
    s.get(ENVS, READER).await.assert(StatusCode::OK);

    s.sim.set_faults(Faults {
        error_after_commit_rate: 1.0,
        error_status: Some(502),
        ..Faults::default()
    });
    let lost = s.post(ENVS, WRITER, &env_post("after-commit")).await;
    assert_eq!(lost.status, StatusCode::BAD_GATEWAY);
    assert_eq!(lost.body["code"], "bad_gateway");
    assert!(
        s.sim
            .environment(ACCOUNT, DEMO_PROJECT, "after-commit")
            .is_some(),
        "the create happened"
    );
    // Failed requests are not turned into "after commit" errors.
    s.post(ENVS, WRITER, &env_post("after-commit"))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");

    s.sim.set_faults(Faults::default());
    s.post(ENVS, WRITER, &env_post("healthy"))
        .await
        .assert(StatusCode::CREATED);
    let log = s.sim.requests();
    let faults: Vec<Option<&str>> = log.iter().map(|r| r.fault).collect();
    assert_eq!(
        faults,
        [Some("error"), None, Some("error_after_commit"), None, None]
    );
}

#[tokio::test]
async fn injected_429s_carry_the_headers_and_reset_soon() {
    let s = start().await;
    s.sim.set_faults(Faults {
        rate_limit_rate: 1.0,
        rate_limit_reset_after: Duration::from_secs(2),
        ..Faults::default()
    });
    let over = s.get("/api/v2/projects", READER).await;
    over.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(number(&over, "x-ratelimit-global-remaining"), 0);
    assert_eq!(number(&over, "x-ratelimit-route-remaining"), 0);
    let reset = number(&over, "x-ratelimit-reset");
    assert!(reset > now_ms() && reset <= now_ms() + 2_100);
    assert_eq!(number(&over, "retry-after"), 2);
}

#[tokio::test]
async fn a_slow_answer_is_counted_when_the_request_arrives_not_when_it_leaves() {
    // A rate limiter sits at LaunchDarkly's edge: the window opens when the
    // request arrives. Were it counted after the answer's delay, a client
    // sending at the reset would find every window opened one latency late.
    let s = limited(1_000, 1_000, Duration::from_secs(5)).await;
    s.sim.set_faults(Faults {
        latency: Duration::from_millis(400),
        ..Faults::default()
    });
    let sent = now_ms();
    let answer = s.get("/api/v2/projects", READER).await;
    answer.assert(StatusCode::OK);
    let reset = number(&answer, "x-ratelimit-reset");
    assert!(
        now_ms() >= sent + 400,
        "the answer still comes after the latency"
    );
    assert!(
        reset >= sent + 5_000 && reset < sent + 5_000 + 200,
        "the window opened on arrival: reset {} ms after sending",
        reset - sent
    );
}

#[tokio::test]
async fn latency_and_timeouts_delay_the_answer() {
    let s = start().await;
    s.sim.set_faults(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let started = Instant::now();
    s.get("/api/v2/projects", READER)
        .await
        .assert(StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    s.sim.set_faults(Faults {
        timeout_rate: 1.0,
        timeout_hold: Duration::from_secs(120),
        ..Faults::default()
    });
    let started = Instant::now();
    let res = s
        .http
        .post(s.url(ENVS))
        .header("Authorization", WRITER)
        .json(&env_post("slow"))
        .timeout(Duration::from_millis(400))
        .send()
        .await;
    assert!(res.unwrap_err().is_timeout());
    assert!(started.elapsed() < Duration::from_secs(5));
    let held = s.sim.requests().into_iter().last().unwrap();
    assert_eq!(
        (held.path.as_str(), held.status),
        (ENVS, None),
        "still held"
    );
    assert!(s.sim.environment(ACCOUNT, DEMO_PROJECT, "slow").is_none());
    // Shutting down lets the held request go at once.
    let started = Instant::now();
    s.sim.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_fault_seed_repeats_the_same_sequence() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let s = start().await;
        s.sim.set_faults(Faults {
            error_rate: 0.3,
            rate_limit_rate: 0.2,
            seed: Some(seed),
            ..Faults::default()
        });
        let mut out = Vec::new();
        for _ in 0..40 {
            out.push(
                s.get("/api/v2/caller-identity", READER)
                    .await
                    .status
                    .as_u16(),
            );
        }
        out
    }
    let first = statuses(42).await;
    assert_eq!(first, statuses(42).await);
    assert!(
        first.contains(&200) && first.contains(&429) && first.iter().any(|s| *s >= 500),
        "{first:?}"
    );
    assert_ne!(first, statuses(43).await);
}

#[tokio::test]
async fn max_injections_ends_the_faults_and_the_token_endpoint_can_fail_too() {
    let s = start().await;
    s.sim.set_faults(Faults {
        max_injections: Some(2),
        ..Faults::always_error(500)
    });
    s.get("/api/v2/projects", READER)
        .await
        .assert_error(StatusCode::INTERNAL_SERVER_ERROR, "internal_server_error");
    s.get("/api/v2/projects", READER)
        .await
        .assert_error(StatusCode::INTERNAL_SERVER_ERROR, "internal_server_error");
    s.get("/api/v2/projects", READER)
        .await
        .assert(StatusCode::OK);

    s.sim
        .set_faults(Faults::always_error(503).scoped(None, Some("/trust/oauth/token")));
    let res = s
        .http
        .post(s.url("/trust/oauth/token"))
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    s.get("/api/v2/projects", READER)
        .await
        .assert(StatusCode::OK);
}
