//! API keys checked from each replica's cache: a revocation reaches every
//! replica within seconds, a live key keeps working, and a tenant's view
//! reads the same whatever is cached.

use std::time::{Duration, Instant};

use ld_eaas::ids::TenantId;
use ld_eaas::store::api_keys::{self, CACHE_TTL, KeyCache};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::support::helpers::{TestApp, TestDatabase, assert_error, spawn_app, spawn_app_on};

/// Polls `path` with `key` on `app` until it is refused (401) and returns
/// how long that took; panics if it still works after `bound`.
pub async fn refused_within(app: &TestApp, key: &str, path: &str, bound: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = app.api_as(key, Method::GET, path, None).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_error(&body, "unauthorized");
            return start.elapsed();
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            start.elapsed() < bound,
            "the revoked key still worked after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A second replica on the first one's database, sharing its keys.
async fn second_replica(first: &TestApp) -> TestApp {
    let keyring = first.state.config.keyring.clone();
    spawn_app_on(TestDatabase::shared(&first.database.url), &[], |mut c| {
        c.keyring = keyring;
        c
    })
    .await
}

#[tokio::test]
async fn a_key_revoked_on_one_replica_is_refused_on_another_before_its_cache_entry_expires() {
    let first = spawn_app().await;
    let second = second_replica(&first).await;
    first.create_tenant("t1").await;
    let (record, key) = api_keys::create(&first.db, "backend", None, first.now())
        .await
        .unwrap();
    let key = key.expose_secret();
    // Both replicas have checked (and now remember) the key.
    for app in [&first, &second] {
        for _ in 0..3 {
            let (status, body) = app.api_as(key, Method::GET, "/tenants/t1", None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    assert!(!second.state.lifecycle.api_keys.is_empty());

    assert_eq!(
        api_keys::revoke(&first.db, &record.id.to_string(), first.now())
            .await
            .unwrap(),
        1
    );
    // Sooner than the cache lifetime: the revocation was announced.
    let took = refused_within(&second, key, "/tenants/t1", CACHE_TTL).await;
    assert!(took < CACHE_TTL, "{took:?}");
    refused_within(&first, key, "/tenants/t1", CACHE_TTL).await;
    // Other keys are untouched.
    let (status, _) = second.api(Method::GET, "/tenants/t1", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_key_revoked_by_the_cli_is_refused_on_a_replica_that_had_it_cached() {
    let first = spawn_app().await;
    let second = second_replica(&first).await;
    first.create_tenant("t1").await;
    let (_, key) = api_keys::create(&first.db, "backend", None, first.now())
        .await
        .unwrap();
    let key = key.expose_secret();
    let (status, _) = second.api_as(key, Method::GET, "/tenants/t1", None).await;
    assert_eq!(status, StatusCode::OK);
    let revoke = std::process::Command::new(env!("CARGO_BIN_EXE_ld-eaas"))
        .args(["api-keys", "revoke", &key[..10]])
        .env("DATABASE_URL", &first.database.url)
        .output()
        .unwrap();
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let took = refused_within(&second, key, "/tenants/t1", CACHE_TTL).await;
    assert!(took < CACHE_TTL, "{took:?}");
}

#[tokio::test]
async fn a_tenant_key_is_refused_once_its_tenant_is_gone_even_if_the_tenant_returns() {
    let first = spawn_app().await;
    let second = second_replica(&first).await;
    first.create_tenant("gone").await;
    let tenant = TenantId::parse("gone").unwrap();
    let (_, key) = api_keys::create(&first.db, "gone-only", Some(&tenant), first.now())
        .await
        .unwrap();
    let key = key.expose_secret();
    let (status, _) = second.api_as(key, Method::GET, "/tenants/gone", None).await;
    assert_eq!(status, StatusCode::OK);
    // Offboarded (its keys go with it) and registered again at once.
    let (status, body) = first.api(Method::DELETE, "/tenants/gone", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    first.create_tenant("gone").await;
    let took = refused_within(&second, key, "/tenants/gone", CACHE_TTL).await;
    assert!(took < CACHE_TTL, "{took:?}");
}

#[tokio::test]
async fn a_cached_key_keeps_working_and_keeps_its_scope_past_the_cache_lifetime() {
    let app = spawn_app().await;
    app.create_tenant("mine").await;
    app.create_tenant("theirs").await;
    let tenant = TenantId::parse("mine").unwrap();
    let (_, key) = api_keys::create(&app.db, "mine-only", Some(&tenant), app.now())
        .await
        .unwrap();
    let key = key.expose_secret();
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < CACHE_TTL + Duration::from_millis(700) {
        let (status, body) = app.api_as(key, Method::GET, "/tenants/mine", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], "mine");
        let (status, body) = app.api_as(key, Method::GET, "/tenants/theirs", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        calls += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(calls > 5, "{calls}");
}

#[tokio::test]
async fn a_replica_that_misses_a_revocation_refuses_the_key_once_the_cache_entry_expires() {
    // A cache nobody tells about revocations: only its lifetime bounds it.
    let app = spawn_app().await;
    let cache = KeyCache::new(Duration::from_millis(300));
    let (record, key) = api_keys::create(&app.db, "backend", None, app.now())
        .await
        .unwrap();
    let key = key.expose_secret();
    let scope = api_keys::authenticate_cached(&app.db, &cache, key, app.now())
        .await
        .unwrap()
        .expect("a live key");
    assert_eq!(scope.name, "backend");
    assert_eq!(scope.tenant, None);
    api_keys::revoke(&app.db, &record.id.to_string(), app.now())
        .await
        .unwrap();
    // Still remembered: no database read happened for it ...
    assert_eq!(
        api_keys::authenticate_cached(&app.db, &cache, key, app.now())
            .await
            .unwrap(),
        Some(scope.clone())
    );
    // ... until the entry is older than the lifetime.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        api_keys::authenticate_cached(&app.db, &cache, key, app.now())
            .await
            .unwrap(),
        None
    );
    // A refusal is not remembered: evicting and a new key work at once.
    let (new_record, new_key) = api_keys::create(&app.db, "new", None, app.now())
        .await
        .unwrap();
    let found = api_keys::authenticate_cached(&app.db, &cache, new_key.expose_secret(), app.now())
        .await
        .unwrap()
        .expect("the new key");
    assert_eq!(found.id, new_record.id);
    cache.evict(new_record.id);
    assert!(cache.is_empty());
}

#[tokio::test]
async fn the_tenant_view_shows_the_connection_and_settings_it_had_before_any_was_set() {
    let app = spawn_app().await;
    let (status, created) = app
        .api(
            Method::PUT,
            "/tenants/t1",
            Some(json!({"display_name": "Tenant one"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, read) = app.api(Method::GET, "/tenants/t1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(created, read, "PUT and GET show the same tenant");
    assert_eq!(read["id"], "t1");
    assert_eq!(read["display_name"], "Tenant one");
    assert_eq!(read["offboarding"], false);
    assert_eq!(read["connection"], json!({"status": "not_connected"}));
    assert_eq!(read["settings"], serde_json::Value::Null);
    let (status, body) = app.api(Method::GET, "/tenants/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn the_tenant_view_matches_its_tenant_connection_and_settings_rows() {
    use chrono::Duration as Days;
    use ld_eaas::crypto::SealedColumn;
    use ld_eaas::store::connections::{self, AuthKind, ConnectionSummary, NewConnection};
    use ld_eaas::store::settings::{self, TenantSettings};
    use ld_eaas::store::tenants;
    use secrecy::SecretString;

    let app = spawn_app().await;
    app.create_tenant("t1").await;
    let id = TenantId::parse("t1").unwrap();
    let sealed = app
        .state
        .config
        .keyring
        .seal(
            &id,
            SealedColumn::AccessToken,
            &SecretString::from("api-token-secret".to_owned()),
        )
        .unwrap();
    connections::save(
        &app.db,
        &id,
        &NewConnection {
            auth_kind: AuthKind::ApiToken,
            account_id: "acct-9",
            account_label: None,
            scope: Some("writer"),
            access_token: &sealed,
            refresh_token: None,
            access_expires_at: None,
        },
        app.now(),
    )
    .await
    .unwrap();
    let (_, partly) = app.api(Method::GET, "/tenants/t1", None).await;
    assert_eq!(partly["settings"], serde_json::Value::Null, "{partly}");
    settings::save(
        &app.db,
        &id,
        &TenantSettings {
            project_key: "demo".into(),
            source_environment_key: "staging".into(),
            name_template: "PR {ephemeral_id}".into(),
            color: "00ff00".into(),
            default_ttl_seconds: Some(3600),
            key_prefix: "eph".into(),
            updated_at: app.now() + Days::seconds(5),
        },
    )
    .await
    .unwrap();

    let (status, body) = app.api(Method::GET, "/tenants/t1", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The same document as built from each table on its own.
    let tenant = tenants::get(&app.db, &id).await.unwrap().unwrap();
    let connection = connections::get(&app.db, &id).await.unwrap().unwrap();
    let settings = settings::get(&app.db, &id).await.unwrap().unwrap();
    let expected = json!({
        "id": "t1",
        "display_name": tenant.display_name,
        "offboarding": false,
        "connection": ConnectionSummary::from(&connection),
        "settings": settings,
        "created_at": tenant.created_at,
        "updated_at": tenant.updated_at,
    });
    assert_eq!(body, expected);
    assert_eq!(body["connection"]["status"], "connected");
    assert_eq!(body["connection"]["account_label"], serde_json::Value::Null);
    assert_eq!(body["settings"]["default_ttl_seconds"], 3600);
    assert!(!body.to_string().contains("api-token-secret"));
}
