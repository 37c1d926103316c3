//! The foundation: migrations, tenants, API keys, connect links, sealed
//! secrets and their rotation, health and metrics, and what reaches logs.

use chrono::Duration;
use ld_eaas::crypto::{Keyring, SealedColumn};
use ld_eaas::ids::TenantId;
use ld_eaas::store::connections::{self, AuthKind, NewConnection};
use ld_eaas::store::{api_keys, rotation};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::support::helpers::{TestDatabase, assert_error, assert_logs_free_of, spawn_app};

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_are_idempotent() {
    let database = TestDatabase::create().await;
    let url = SecretString::from(database.url.clone());
    let pool = ld_eaas::db::connect(&url, 2).await.unwrap();
    ld_eaas::db::migrate(&pool).await.unwrap();
    ld_eaas::db::migrate(&pool).await.unwrap();
    assert!(ld_eaas::db::migrations_current(&pool).await.unwrap());
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = 'public' order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for expected in [
        "api_keys",
        "audit_events",
        "connect_links",
        "connections",
        "environments",
        "jobs",
        "launchdarkly_rate_budgets",
        "launchdarkly_rate_limits",
        "tenant_settings",
        "tenants",
        "webhook_outbox",
    ] {
        assert!(
            tables.iter().any(|t| t == expected),
            "missing table {expected} in {tables:?}"
        );
    }
}

#[tokio::test]
async fn the_database_is_created_when_it_does_not_exist() {
    let admin = TestDatabase::create().await; // only for its server; we make a sibling name
    let missing = format!("{}_new", admin.name);
    let url = admin.url.replace(&admin.name, &missing);
    let pool = ld_eaas::db::connect(&SecretString::from(url), 2)
        .await
        .unwrap();
    ld_eaas::db::migrate(&pool).await.unwrap();
    pool.close().await;
    drop(TestDatabase::adopt(&missing));
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "ready");
}

#[tokio::test]
async fn tenants_are_created_updated_read_and_offboarded() {
    let app = spawn_app().await;
    let (status, body) = app
        .api(
            Method::PUT,
            "/tenants/acme:eu-1",
            Some(json!({"display_name": "Acme"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], "acme:eu-1");
    assert_eq!(body["display_name"], "Acme");
    assert_eq!(body["connection"]["status"], "not_connected");
    assert!(body["settings"].is_null());

    let (status, body) = app
        .api(
            Method::PUT,
            "/tenants/acme:eu-1",
            Some(json!({"display_name": "Acme Inc"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.api(Method::GET, "/tenants/acme:eu-1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["display_name"], "Acme Inc");

    let (status, _) = app.api(Method::DELETE, "/tenants/acme:eu-1", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.api(Method::GET, "/tenants/acme:eu-1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found");
    // Deleting what is gone is still success.
    let (status, _) = app.api(Method::DELETE, "/tenants/acme:eu-1", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn bad_tenant_input_gets_a_clear_error_and_changes_nothing() {
    let app = spawn_app().await;
    let long = "a".repeat(129);
    for bad_id in ["has%20space", "slash%2Fin", long.as_str(), "quote%22"] {
        let (status, body) = app
            .api(
                Method::PUT,
                &format!("/tenants/{bad_id}"),
                Some(json!({"display_name": "x"})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad_id}: {body}");
        assert_error(&body, "invalid_id");
    }
    let (status, body) = app
        .api(
            Method::PUT,
            "/tenants/t1",
            Some(json!({"display_name": "x", "plan": "gold"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_request");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("plan"),
        "{body}"
    );
    let (status, body) = app.api(Method::PUT, "/tenants/t1", Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_request");
    let (status, body) = app
        .api(
            Method::PUT,
            "/tenants/t1",
            Some(json!({"display_name": "   "})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_request");
    let huge = "x".repeat(100 * 1024);
    let (status, body) = app
        .api(
            Method::PUT,
            "/tenants/t1",
            Some(json!({"display_name": huge})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_error(&body, "payload_too_large");
    let res = app
        .client
        .put(app.url("/api/v1/tenants/t1"))
        .bearer_auth(&app.api_key)
        .body("display_name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let count: i64 = sqlx::query_scalar("select count(*) from tenants")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0, "no bad request may create a tenant");
}

#[tokio::test]
async fn api_keys_guard_every_api_route() {
    let app = spawn_app().await;
    app.create_tenant("t1").await;
    let url = app.url("/api/v1/tenants/t1");

    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_error(&res.json().await.unwrap(), "unauthorized");

    for header in [
        "Basic abc",
        "Bearer",
        "Bearer not-a-key",
        "lde_raw_without_bearer",
    ] {
        let res = app
            .client
            .get(&url)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{header}");
        assert_error(&res.json().await.unwrap(), "unauthorized");
    }
    let unknown = format!("lde_{}", "A".repeat(40));
    let (status, body) = app.api_as(&unknown, Method::GET, "/tenants/t1", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized");

    // The key is checked before the body is read.
    let res = app
        .client
        .put(&url)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // ... and before routing reveals what exists.
    let res = app
        .client
        .get(app.url("/api/v1/no-such-route"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let (key_record, key) = api_keys::create(&app.db, "ci", None, app.now())
        .await
        .unwrap();
    let (status, _) = app
        .api_as(key.expose_secret(), Method::GET, "/tenants/t1", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // The scheme name is case-insensitive.
    let res = app
        .client
        .get(&url)
        .header("authorization", format!("bearer {}", key.expose_secret()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        api_keys::revoke(&app.db, &key_record.id.to_string(), app.now())
            .await
            .unwrap(),
        1
    );
    // Each replica remembers a checked key for a few seconds; the
    // revocation is announced, so it is refused well within that.
    crate::auth_cache::refused_within(
        &app,
        key.expose_secret(),
        "/tenants/t1",
        api_keys::CACHE_TTL,
    )
    .await;

    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select key_hash from api_keys")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert!(
        stored.iter().all(|h| h.len() == 32),
        "only SHA-256 hashes are stored"
    );
    assert_logs_free_of(&[key.expose_secret(), &app.api_key]);
}

#[tokio::test]
async fn a_tenant_scoped_key_reaches_only_its_tenant() {
    let app = spawn_app().await;
    app.create_tenant("mine").await;
    app.create_tenant("theirs").await;
    let tenant = TenantId::parse("mine").unwrap();
    let (_, key) = api_keys::create(&app.db, "mine-only", Some(&tenant), app.now())
        .await
        .unwrap();
    let (status, _) = app
        .api_as(key.expose_secret(), Method::GET, "/tenants/mine", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .api_as(key.expose_secret(), Method::GET, "/tenants/theirs", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "forbidden");
    let (status, _) = app
        .api_as(key.expose_secret(), Method::DELETE, "/tenants/theirs", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.api(Method::GET, "/tenants/theirs", None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the forbidden delete changed nothing"
    );
}

#[tokio::test]
async fn a_connect_link_works_once_and_binds_a_fresh_session() {
    let app = spawn_app().await;
    app.create_tenant("t1").await;
    let link = app.connect_link("t1").await;
    assert!(link.starts_with(&app.url("/connect/")), "{link}");
    let token = link.rsplit('/').next().unwrap().to_owned();

    let res = app.client.get(&link).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/settings");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("ld_eaas_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http public URL: no Secure flag ({cookie})"
    );

    let page = app.client.get(app.url("/settings")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Tenant t1"));

    let again = reqwest::Client::new().get(&link).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::GONE);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("Connect links work once")
    );

    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select token_hash from connect_links")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token.as_bytes(), "links are stored hashed");
    assert_logs_free_of(&[&token]);
}

#[tokio::test]
async fn a_connect_link_fails_after_fifteen_minutes() {
    let app = spawn_app().await;
    app.create_tenant("t1").await;
    let link = app.connect_link("t1").await;
    app.clock
        .advance(Duration::minutes(15) + Duration::seconds(1));
    let res = app.client.get(&link).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::GONE);
    let fresh = app.connect_link("t1").await;
    app.clock.advance(Duration::minutes(14));
    let res = app.client.get(&fresh).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn pages_need_a_bound_session() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/settings")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let html = res.text().await.unwrap();
    assert!(html.contains("connect link"), "{html}");
    let res = app
        .client
        .get(app.url("/connect/not-a-real-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GONE);
    let res = app.client.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

async fn store_connection(
    app: &crate::support::helpers::TestApp,
    keyring: &Keyring,
    tenant: &str,
    access: &str,
    refresh: &str,
) {
    let id = TenantId::parse(tenant).unwrap();
    let sealed_access = keyring
        .seal(
            &id,
            SealedColumn::AccessToken,
            &SecretString::from(access.to_owned()),
        )
        .unwrap();
    let sealed_refresh = keyring
        .seal(
            &id,
            SealedColumn::RefreshToken,
            &SecretString::from(refresh.to_owned()),
        )
        .unwrap();
    connections::save(
        &app.db,
        &id,
        &NewConnection {
            auth_kind: AuthKind::OAuth,
            account_id: "acct-1",
            account_label: Some("Acme"),
            scope: Some("writer"),
            access_token: &sealed_access,
            refresh_token: Some(&sealed_refresh),
            access_expires_at: Some(app.now() + Duration::hours(1)),
        },
        app.now(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_database_dump_holds_no_plaintext_secret() {
    let app = spawn_app().await;
    app.create_tenant("t1").await;
    let access = format!("access-{}", uuid::Uuid::new_v4());
    let refresh = format!("refresh-{}", uuid::Uuid::new_v4());
    store_connection(&app, &app.state.config.keyring, "t1", &access, &refresh).await;
    let (status, body) = app.api(Method::GET, "/tenants/t1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["connection"]["status"], "connected");
    assert_eq!(body["connection"]["auth_kind"], "oauth");
    assert!(!body.to_string().contains(&access));

    let dump = std::process::Command::new("pg_dump")
        .arg("--data-only")
        .arg(&app.database.url)
        .output()
        .expect("pg_dump runs (postgresql-client)");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("v1.k1."), "the dump holds the sealed values");
    assert!(
        !dump.contains(&access) && !dump.contains(&refresh),
        "plaintext token in the dump"
    );
    assert!(
        !dump.contains(&app.api_key),
        "plaintext API key in the dump"
    );
    assert_logs_free_of(&[&access, &refresh]);
}

#[tokio::test]
async fn a_ciphertext_copied_to_another_tenant_fails_to_open() {
    let app = spawn_app().await;
    app.create_tenant("a").await;
    app.create_tenant("b").await;
    let keyring = &app.state.config.keyring;
    store_connection(
        &app,
        keyring,
        "a",
        "token-of-tenant-a",
        "refresh-of-tenant-a",
    )
    .await;
    store_connection(
        &app,
        keyring,
        "b",
        "token-of-tenant-b",
        "refresh-of-tenant-b",
    )
    .await;
    sqlx::query("update connections set access_token = (select access_token from connections where tenant_id = 'a') where tenant_id = 'b'")
        .execute(&app.db)
        .await
        .unwrap();
    let b = connections::get(&app.db, &TenantId::parse("b").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        keyring
            .open(&b.tenant_id, SealedColumn::AccessToken, &b.access_token)
            .is_err()
    );
    let a = connections::get(&app.db, &TenantId::parse("a").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        keyring
            .open(&a.tenant_id, SealedColumn::AccessToken, &a.access_token)
            .unwrap()
            .expose_secret(),
        "token-of-tenant-a"
    );
}

#[tokio::test]
async fn rotation_reseals_every_secret_so_old_keys_can_be_removed() {
    let app = spawn_app().await;
    let old = Keyring::generate_spec("old");
    let new = Keyring::generate_spec("new");
    let old_ring = Keyring::parse(&old).unwrap();
    for t in ["t1", "t2", "t3"] {
        app.create_tenant(t).await;
        store_connection(
            &app,
            &old_ring,
            t,
            &format!("access-{t}-secret"),
            &format!("refresh-{t}-secret"),
        )
        .await;
    }
    let tenant = TenantId::parse("t1").unwrap();
    let sdk = old_ring
        .seal(
            &tenant,
            SealedColumn::SdkKey,
            &SecretString::from("sdk-key-secret-1".to_owned()),
        )
        .unwrap();
    sqlx::query(
        "insert into environments (id, tenant_id, ephemeral_id, generation, desired, status, request, project_key,
             environment_key, environment_name, source_environment_key, color, tags, client_side_id, sdk_key,
             created_at, updated_at)
         values ($1, 't1', 'pr-1', 1, 'present', 'ready', '{}', 'demo', 'eph-pr-1', 'pr-1', 'staging', 'aabbcc',
                 '{ld-eaas}', 'cid', $2, now(), now())",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(&sdk)
    .execute(&app.db)
    .await
    .unwrap();

    // Through the real binary, as an operator would.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ld-eaas"))
        .args(["encryption-keys", "rotate"])
        .env("LD_EAAS_ENCRYPTION_KEYS", format!("{new},{old}"))
        .env("DATABASE_URL", &app.database.url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("re-sealed 7 secret(s) under key 'new'")
    );

    let new_only = Keyring::parse(&new).unwrap();
    for t in ["t1", "t2", "t3"] {
        let c = connections::get(&app.db, &TenantId::parse(t).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(c.access_token.starts_with("v1.new."));
        let opened = new_only
            .open(&c.tenant_id, SealedColumn::AccessToken, &c.access_token)
            .unwrap();
        assert_eq!(opened.expose_secret(), format!("access-{t}-secret"));
        let refresh = new_only
            .open(
                &c.tenant_id,
                SealedColumn::RefreshToken,
                c.refresh_token.as_deref().unwrap(),
            )
            .unwrap();
        assert_eq!(refresh.expose_secret(), format!("refresh-{t}-secret"));
    }
    let sdk_now: String = sqlx::query_scalar("select sdk_key from environments")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        new_only
            .open(&tenant, SealedColumn::SdkKey, &sdk_now)
            .unwrap()
            .expose_secret(),
        "sdk-key-secret-1"
    );
    // A second rotation has nothing left to do.
    let report = rotation::reseal_all(&app.db, &Keyring::parse(&format!("{new},{old}")).unwrap())
        .await
        .unwrap();
    assert_eq!(report.resealed, 0);
}

#[tokio::test]
async fn the_cli_prints_a_new_api_key_alone_and_lists_and_revokes_it() {
    let app = spawn_app().await;
    app.create_tenant("t1").await;
    let bin = env!("CARGO_BIN_EXE_ld-eaas");
    let output = std::process::Command::new(bin)
        .args(["api-keys", "create", "--name", "backend"])
        .env("DATABASE_URL", &app.database.url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let key = stdout.trim_end_matches('\n');
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the key on stdout: {stdout:?}"
    );
    assert!(key.starts_with("lde_") && key.len() == 44, "{key}");
    let (status, _) = app.api_as(key, Method::GET, "/tenants/t1", None).await;
    assert_eq!(status, StatusCode::OK);

    let list = std::process::Command::new(bin)
        .args(["api-keys", "list"])
        .env("DATABASE_URL", &app.database.url)
        .output()
        .unwrap();
    let listing = String::from_utf8(list.stdout).unwrap();
    assert!(
        listing.contains("backend") && listing.contains(&key[..10]),
        "{listing}"
    );
    assert!(!listing.contains(key), "the listing never shows a key");

    let revoke = std::process::Command::new(bin)
        .args(["api-keys", "revoke", &key[..10]])
        .env("DATABASE_URL", &app.database.url)
        .output()
        .unwrap();
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    crate::auth_cache::refused_within(&app, key, "/tenants/t1", api_keys::CACHE_TTL).await;
}

#[tokio::test]
async fn a_key_for_an_unknown_tenant_is_refused_with_a_clear_message_and_nothing_stored() {
    let app = spawn_app().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ld-eaas"))
        .args([
            "api-keys", "create", "--name", "backend", "--tenant", "nobody",
        ])
        .env("DATABASE_URL", &app.database.url)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no key printed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no tenant 'nobody'") && !stderr.contains("foreign key"),
        "{stderr}"
    );
    let keys: i64 = sqlx::query_scalar("select count(*) from api_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(keys, 1, "only the harness's own key");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app().await;
    app.create_tenant("t1").await;
    app.api(Method::GET, "/tenants/t1", None).await;
    app.api(Method::GET, "/tenants/nope", None).await;
    let text = app.metrics().await;
    assert!(
        text.contains(r#"ld_eaas_http_requests_total{method="GET",route="/api/v1/tenants/{tenant_id}",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/api/v1/tenants/{tenant_id}",status="404"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("ld_eaas_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn responses_carry_security_headers_and_a_request_id() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    let h = res.headers();
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(!h["x-request-id"].is_empty());
}

#[tokio::test]
async fn the_api_description_is_served() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: serde_json::Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/tenants/{tenant_id}/environments/{ephemeral_id}"]["put"].is_object());
}

#[tokio::test]
async fn a_wrong_method_is_a_405_in_the_envelope() {
    let app = spawn_app().await;
    app.create_tenant("t1").await;
    let (status, body) = app.api(Method::PATCH, "/tenants/t1", Some(json!({}))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, "method_not_allowed");
}

#[tokio::test]
async fn a_session_does_not_reach_a_tenant_registered_again_under_the_same_id() {
    let app = spawn_app().await;
    app.create_tenant("t1").await;
    let link = app.connect_link("t1").await;
    app.client.get(&link).send().await.unwrap();
    assert_eq!(
        app.client
            .get(app.url("/settings"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let (status, _) = app.api(Method::DELETE, "/tenants/t1", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.clock.advance(Duration::seconds(1));
    app.create_tenant("t1").await;
    let res = app.client.get(app.url("/settings")).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the old session belongs to the old customer"
    );
}
