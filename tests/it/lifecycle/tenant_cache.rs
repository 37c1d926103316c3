//! Each replica remembers a tenant's readiness and connection for a few
//! seconds (`app::TenantCache`); any change to the tenant, made on another
//! replica or by hand in the database, is forgotten everywhere at once,
//! well within that time (triggers announce it, migration 0008).

use std::time::{Duration, Instant};

use super::*;
use crate::support::helpers::TestApp;

/// The source environment a PUT on `app` creates from, for a fresh id.
async fn source_of_next(app: &TestApp, id: &str) -> (StatusCode, Value) {
    let (status, body) = put_env(app, "acme", id, "?wait=0", None).await;
    (
        status,
        body["launchdarkly"]["source_environment_key"].clone(),
    )
}

/// How long until a PUT on `app` creates from `source`; fails past `limit`.
async fn until_source(app: &TestApp, source: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    for n in 0.. {
        let (status, got) = source_of_next(app, &format!("probe-{source}-{n}")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{got}");
        if got == source {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "still creating from {got} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unreachable!()
}

#[tokio::test]
async fn a_tenant_changed_on_another_replica_or_by_hand_is_forgotten_by_every_replica_at_once() {
    let sim = start_sim().await;
    let a = spawn(&sim, false).await;
    let b = spawn_beside(&sim, &a, false, |c| c).await;
    ready_tenant(&a, "acme").await;

    // A remembers acme's settings (once the notifications of the set-up
    // itself, which evict it, have all arrived).
    let n = std::sync::atomic::AtomicUsize::new(0);
    eventually(Duration::from_secs(5), "A remembers acme", || async {
        let id = format!(
            "first-{}",
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let (status, source) = source_of_next(&a, &id).await;
        assert_eq!((status, source), (StatusCode::ACCEPTED, json!("staging")));
        a.state.lifecycle.tenants.ready(&tenant("acme")).is_some()
    })
    .await;

    // Saved on B: A creates from the new source well before its entry
    // would have expired (the notification, not the TTL).
    let ttl = ld_eaas::app::TENANT_CACHE_TTL;
    configure(&b, "acme", "demo", "test").await;
    let took = until_source(&a, "test", ttl / 2).await;
    eprintln!("A saw B's settings after {took:?}");

    // Changed by hand in the database (as a repair or a migration would).
    sqlx::query(
        "update tenant_settings set source_environment_key = 'staging' where tenant_id = 'acme'",
    )
    .execute(&a.db)
    .await
    .unwrap();
    let took = until_source(&a, "staging", ttl / 2).await;
    eprintln!("A saw the hand edit after {took:?}");

    // Disconnected on B: A refuses the next PUT. (A remembers acme again:
    // the PUT that saw the hand edit read it after the edit's notification.)
    assert!(a.state.lifecycle.tenants.ready(&tenant("acme")).is_some());
    assert!(
        connections::disconnect(&b.state, &tenant("acme"), "test")
            .await
            .unwrap()
    );
    let start = Instant::now();
    loop {
        let (status, body) = put_env(&a, "acme", "after-disconnect", "?wait=0", None).await;
        if status == StatusCode::CONFLICT {
            assert_eq!(body["error"]["code"], "not_connected", "{body}");
            break;
        }
        assert!(
            start.elapsed() < ttl / 2,
            "A still accepts PUTs: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
