//! The internal API keeps to the OpenAPI document it serves at
//! `/api/v1/openapi.json`: every answer of every operation, success or error,
//! has a status the document lists for it and a body that fits the schema
//! given for that status, with no field the schema does not name.

use ld_eaas::connections::{self, Connected};
use ld_eaas::ids::TenantId;
use ld_eaas::simulator::{DEMO_ACCOUNT, Faults};
use ld_eaas::store::api_keys;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::lifecycle::{TOKEN, get_env, ready_tenant, spawn, start_sim};
use crate::simulator::{Answer, read};
use crate::support::conformance::Conformance;
use crate::support::helpers::TestApp;

/// One call with `Authorization: Bearer <key>` (none if `key` is `None`).
async fn call(
    app: &TestApp,
    key: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut req = app
        .client
        .request(method, app.url(&format!("/api/v1{path}")));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    read(req.send().await.unwrap()).await
}

/// Calls the app and checks each answer as an answer of its operation.
struct Checker<'a> {
    app: &'a TestApp,
    c: Conformance,
}

impl Checker<'_> {
    async fn check(
        &mut self,
        key: Option<&str>,
        operation: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) {
        let answer = call(self.app, key, method, path, body).await;
        self.c.check(operation, &answer);
    }
}

#[tokio::test]
async fn every_answer_of_the_internal_api_matches_the_document_it_serves() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    let served = call(&app, None, Method::GET, "/openapi.json", None).await;
    assert_eq!(served.status, 200);
    let mut k = Checker {
        app: &app,
        c: Conformance::strict(served.body),
    };
    let key = Some(app.api_key.as_str());
    app.create_tenant("other").await;
    let (_, scoped) = api_keys::create(
        &app.db,
        "scoped",
        Some(&TenantId::parse("other").unwrap()),
        app.now(),
    )
    .await
    .unwrap();
    let scoped = Some(scoped.expose_secret());

    // Tenants.
    let t = "/tenants/acme";
    let name = || Some(json!({"display_name": "Acme"}));
    k.check(key, "putTenant", Method::PUT, t, name()).await;
    k.check(key, "putTenant", Method::PUT, t, name()).await;
    let bad = Some(json!({"display_name": 7}));
    k.check(key, "putTenant", Method::PUT, t, bad).await;
    k.check(None, "putTenant", Method::PUT, t, name()).await;
    k.check(scoped, "putTenant", Method::PUT, t, name()).await;
    k.check(key, "getTenant", Method::GET, t, None).await;
    let nobody = "/tenants/nobody";
    k.check(key, "getTenant", Method::GET, nobody, None).await;
    let bad_id = "/tenants/bad%20id";
    k.check(key, "getTenant", Method::GET, bad_id, None).await;
    k.check(scoped, "getTenant", Method::GET, t, None).await;
    let links = "/tenants/acme/connect-links";
    k.check(key, "createConnectLink", Method::POST, links, None)
        .await;
    let nobody_links = "/tenants/nobody/connect-links";
    k.check(key, "createConnectLink", Method::POST, nobody_links, None)
        .await;
    // No return URL origin is allowed here: a return_url is a 400.
    let back = json!({"return_url": "https://app.vendor.test/"});
    k.check(key, "createConnectLink", Method::POST, links, Some(back))
        .await;

    // Settings: refused until connected, then checked against LaunchDarkly.
    let settings = "/tenants/acme/settings";
    let choice =
        |project: &str| Some(json!({"project_key": project, "source_environment_key": "staging"}));
    k.check(key, "putSettings", Method::PUT, settings, choice("demo"))
        .await;
    let nobody_settings = "/tenants/nobody/settings";
    k.check(
        key,
        "putSettings",
        Method::PUT,
        nobody_settings,
        choice("demo"),
    )
    .await;
    connections::connect(
        &app.state,
        &TenantId::parse("acme").unwrap(),
        Connected::from_api_token(SecretString::from(TOKEN.to_owned())),
        "test",
    )
    .await
    .unwrap();
    k.check(key, "putSettings", Method::PUT, settings, choice("nowhere"))
        .await;
    k.check(key, "putSettings", Method::PUT, settings, choice("demo"))
        .await;
    k.check(key, "getTenant", Method::GET, t, None).await;

    // Environments.
    let env = |id: &str, query: &str| format!("/tenants/acme/environments/{id}{query}");
    k.check(
        key,
        "putEnvironment",
        Method::PUT,
        &env("pr-1", "?wait=10"),
        None,
    )
    .await;
    k.check(
        key,
        "putEnvironment",
        Method::PUT,
        &env("pr-1", "?wait=10"),
        None,
    )
    .await;
    let renamed = Some(json!({"name": "Another name"}));
    k.check(
        key,
        "putEnvironment",
        Method::PUT,
        &env("pr-1", ""),
        renamed,
    )
    .await;
    k.check(
        key,
        "putEnvironment",
        Method::PUT,
        &env("pr-2", "?wait=0"),
        None,
    )
    .await;
    k.check(
        key,
        "putEnvironment",
        Method::PUT,
        &env("pr-3", "?wait=61"),
        None,
    )
    .await;
    k.check(
        key,
        "putEnvironment",
        Method::PUT,
        "/tenants/nobody/environments/pr-1",
        None,
    )
    .await;
    sim.set_faults(
        Faults::always_error(403).scoped(Some(Method::POST), Some("/api/v2/projects/demo")),
    );
    k.check(
        key,
        "putEnvironment",
        Method::PUT,
        &env("pr-4", "?wait=10"),
        None,
    )
    .await;
    sim.set_faults(Faults::none());
    k.check(key, "getEnvironment", Method::GET, &env("pr-1", ""), None)
        .await;
    k.check(key, "getEnvironment", Method::GET, &env("pr-9", ""), None)
        .await;
    let list = "/tenants/acme/environments";
    k.check(key, "listEnvironments", Method::GET, list, None)
        .await;
    let page = format!("{list}?limit=1&include_deleted=true");
    k.check(key, "listEnvironments", Method::GET, &page, None)
        .await;
    let zero = format!("{list}?limit=0");
    k.check(key, "listEnvironments", Method::GET, &zero, None)
        .await;

    let recreate =
        |id: &str, query: &str| format!("/tenants/acme/environments/{id}/recreate{query}");
    k.check(
        key,
        "recreateEnvironment",
        Method::POST,
        &recreate("pr-1", "?wait=10"),
        None,
    )
    .await;
    k.check(
        key,
        "recreateEnvironment",
        Method::POST,
        &recreate("pr-1", "?wait=0"),
        None,
    )
    .await;
    k.check(
        key,
        "recreateEnvironment",
        Method::POST,
        &recreate("pr-9", ""),
        None,
    )
    .await;
    // pr-1's recreate (answered 202) finishes first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let critical = loop {
        let (_, current) = get_env(&app, "acme", "pr-1").await;
        if current["status"] == "ready" {
            break current;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pr-1 never ready: {current}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    sim.set_faults(
        Faults::always_error(403).scoped(Some(Method::POST), Some("/api/v2/projects/demo")),
    );
    k.check(
        key,
        "recreateEnvironment",
        Method::POST,
        &recreate("pr-2", "?wait=10"),
        None,
    )
    .await;
    sim.set_faults(Faults::none());

    // Deletes: gone, pending, refused by a safety rule, failed upstream.
    k.check(
        key,
        "deleteEnvironment",
        Method::DELETE,
        &env("pr-2", "?wait=10"),
        None,
    )
    .await;
    k.check(
        key,
        "deleteEnvironment",
        Method::DELETE,
        &env("pr-9", ""),
        None,
    )
    .await;
    k.check(
        key,
        "putEnvironment",
        Method::PUT,
        &env("pr-5", "?wait=10"),
        None,
    )
    .await;
    k.check(
        key,
        "deleteEnvironment",
        Method::DELETE,
        &env("pr-5", "?wait=0"),
        None,
    )
    .await;
    let critical_key = critical["launchdarkly"]["environment_key"]
        .as_str()
        .unwrap();
    let mut upstream = sim.environment(DEMO_ACCOUNT, "demo", critical_key).unwrap();
    upstream.critical = true;
    sim.add_environment(DEMO_ACCOUNT, "demo", upstream).unwrap();
    k.check(
        key,
        "deleteEnvironment",
        Method::DELETE,
        &env("pr-1", "?wait=10"),
        None,
    )
    .await;
    k.check(
        key,
        "putEnvironment",
        Method::PUT,
        &env("pr-6", "?wait=10"),
        None,
    )
    .await;
    sim.set_faults(
        Faults::always_error(403).scoped(Some(Method::DELETE), Some("/api/v2/projects/demo")),
    );
    k.check(
        key,
        "deleteEnvironment",
        Method::DELETE,
        &env("pr-6", "?wait=10"),
        None,
    )
    .await;
    sim.set_faults(Faults::none());

    // Activity.
    let activity = "/tenants/acme/activity";
    k.check(key, "listActivity", Method::GET, activity, None)
        .await;
    let bad_limit = format!("{activity}?limit=0");
    k.check(key, "listActivity", Method::GET, &bad_limit, None)
        .await;

    // Offboarding: one with environments to delete, one without.
    ready_tenant(&app, "beta").await;
    k.check(
        key,
        "putEnvironment",
        Method::PUT,
        "/tenants/beta/environments/pr-1?wait=10",
        None,
    )
    .await;
    k.check(key, "deleteTenant", Method::DELETE, "/tenants/beta", None)
        .await;
    k.check(key, "deleteTenant", Method::DELETE, "/tenants/nobody", None)
        .await;

    k.c.assert_covered(&[
        ("putTenant", &[200, 201, 400, 401, 403]),
        ("getTenant", &[200, 400, 403, 404]),
        ("createConnectLink", &[201, 400, 404]),
        ("putSettings", &[200, 400, 404, 409]),
        ("putEnvironment", &[200, 201, 202, 400, 404, 409, 422]),
        ("getEnvironment", &[200, 404]),
        ("listEnvironments", &[200, 400]),
        ("recreateEnvironment", &[200, 202, 404, 422]),
        ("deleteEnvironment", &[202, 204, 409, 422]),
        ("listActivity", &[200, 400]),
        ("deleteTenant", &[202, 204]),
    ]);
}
