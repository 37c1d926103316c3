//! The settings and environments pages against the LaunchDarkly simulator,
//! over plain HTTP and without JavaScript: what a person sees and what a
//! form post does.

use std::time::{Duration, Instant};

use ld_eaas::simulator::{ApiTokenGrant, DEMO_ACCOUNT, Simulator, SimulatorConfig};
use reqwest::header::{CACHE_CONTROL, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::helpers::{TestApp, TestDatabase, assert_logs_free_of, spawn_app_on};
use crate::ui::{browser_for, csrf_token};

const TOKEN: &str = "api-ui-pages-writer-token";

pub(crate) struct Env {
    pub app: TestApp,
    pub sim: Simulator,
    pub browser: reqwest::Client,
    pub csrf: String,
}

/// A tenant `acme` connected with an API token to a simulator seeded with
/// `extra_projects` filler projects beyond the demo one.
pub(crate) async fn connected(extra_projects: usize) -> Env {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = Simulator::start(
        SimulatorConfig {
            api_tokens: vec![ApiTokenGrant::new(TOKEN, "writer")],
            seed_extra_projects: extra_projects,
            // Small pages, so every list spans several.
            max_page_limit: 5,
            ..SimulatorConfig::default()
        },
        listener,
    )
    .await
    .unwrap();
    let app = spawn_app_on(
        TestDatabase::create().await,
        &["--launchdarkly-url", &sim.base_url()],
        |c| c,
    )
    .await;
    app.create_tenant("acme").await;
    let browser = browser_for(&app, "acme").await;
    let html = get(&browser, &app, "/settings").await.1;
    let csrf = csrf_token(&html);
    let res = browser
        .post(app.url("/connection/api-token"))
        .form(&[("csrf_token", csrf.as_str()), ("api_token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    Env {
        app,
        sim,
        browser,
        csrf,
    }
}

async fn get(browser: &reqwest::Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let res = browser.get(app.url(path)).send().await.unwrap();
    let status = res.status();
    (status, res.text().await.unwrap())
}

impl Env {
    pub async fn page(&self, path: &str) -> String {
        let (status, html) = get(&self.browser, &self.app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        html
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = vec![("csrf_token", self.csrf.as_str())];
        form.extend_from_slice(fields);
        self.browser
            .post(self.app.url(path))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    pub async fn save_settings(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = vec![
            ("intent", "save"),
            ("project_key", "demo"),
            ("source_environment_key", "staging"),
            ("name_template", "Preview {ephemeral_id}"),
            ("color", "#7c3aed"),
            ("ttl_value", ""),
            ("ttl_unit", "hours"),
            ("key_prefix", "eph"),
        ];
        for (k, v) in fields {
            form.retain(|(name, _)| name != k);
            form.push((k, v));
        }
        self.post("/settings", &form).await
    }

    pub async fn api(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.app.api(method, path, body).await
    }

    /// Waits until the API reports `status` for the environment.
    pub async fn wait_for_status(&self, ephemeral_id: &str, status: &str) -> Value {
        let started = Instant::now();
        loop {
            let (_, env) = self
                .api(
                    Method::GET,
                    &format!("/tenants/acme/environments/{ephemeral_id}"),
                    None,
                )
                .await;
            if env["status"] == status {
                return env;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{ephemeral_id} never became {status}: {env}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn option_values(html: &str, select_id: &str) -> Vec<String> {
    let start = html
        .find(&format!("<select id=\"{select_id}\""))
        .unwrap_or_else(|| panic!("no select {select_id}"));
    let end = start + html[start..].find("</select>").unwrap();
    html[start..end]
        .split("<option value=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

#[tokio::test]
async fn the_pickers_list_every_project_and_the_chosen_projects_environments() {
    let env = connected(12).await;
    let html = env.page("/settings").await;
    let projects = option_values(&html, "project_key");
    // Every project, over several pages of 5, not the first page only.
    let all = env.sim.projects(DEMO_ACCOUNT).len();
    assert!(all > 10);
    assert_eq!(projects.len(), all, "{projects:?}");
    assert!(projects.contains(&"demo".to_owned()));
    assert!(projects.contains(&"project-12".to_owned()));

    // Without JavaScript, "Load this project's environments" re-renders the
    // form for the chosen project, saving nothing.
    let res = env
        .post(
            "/settings",
            &[
                ("intent", "refresh"),
                ("project_key", "demo"),
                ("color", "#ff0000"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    let sources = option_values(&html, "source_environment_key");
    assert_eq!(sources, ["production", "staging", "test"]);
    assert!(
        html.contains("— critical"),
        "critical environments are marked"
    );
    assert!(html.contains("Not saved yet"));
    assert!(html.contains("value=\"#ff0000\""), "the draft is kept");
    let saved = ld_eaas::store::settings::get(&env.app.db, &"acme".parse_tenant())
        .await
        .unwrap();
    assert!(saved.is_none());

    // With JavaScript, the source list comes as JSON.
    let res = env
        .browser
        .get(env.app.url("/settings/environments?project_key=demo"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let keys: Vec<&str> = body["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["production", "staging", "test"]);
    assert_eq!(body["environments"][0]["note"], "critical");
}

#[tokio::test]
async fn saving_settings_validates_and_explains_errors_next_to_each_field() {
    let env = connected(0).await;
    let res = env
        .save_settings(&[
            ("key_prefix", "-bad prefix"),
            ("ttl_value", "soon"),
            ("name_template", "Preview {nope}"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("Please fix these problems before saving"));
    for field in ["key_prefix", "ttl_value", "name_template"] {
        assert!(
            html.contains(&format!("id=\"{field}-error\"")),
            "no error shown next to {field}"
        );
        assert!(
            html.contains(&format!("href=\"#{field}\"")),
            "the summary links {field}"
        );
    }
    assert!(html.contains("aria-invalid=\"true\""));
    assert!(
        html.contains("value=\"-bad prefix\""),
        "what was typed is kept"
    );
    assert!(html.contains("Unknown placeholder {nope}"));

    // A source the project does not have is caught by asking LaunchDarkly.
    let res = env
        .save_settings(&[("source_environment_key", "no-such-env")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"source_environment_key-error\""));
    assert!(html.contains("no environment"), "{html}");
    let saved = ld_eaas::store::settings::get(&env.app.db, &"acme".parse_tenant())
        .await
        .unwrap();
    assert!(saved.is_none(), "invalid settings were saved");

    // Valid ones are saved and shown again.
    let res = env
        .save_settings(&[
            ("ttl_value", "36"),
            ("ttl_unit", "hours"),
            ("key_prefix", "pv"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/settings");
    let html = env.page("/settings").await;
    assert!(html.contains("Settings saved"));
    assert!(html.contains("value=\"36\""));
    assert!(html.contains("<option value=\"hours\" selected>"));
    assert!(
        html.contains("36 hours after creation"),
        "the preview shows the TTL"
    );
    assert!(html.contains(">pv-pr-1234-"), "the preview shows the key");
    let saved = ld_eaas::store::settings::get(&env.app.db, &"acme".parse_tenant())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saved.default_ttl_seconds, Some(36 * 3600));
    assert_eq!(saved.source_environment_key, "staging");
}

#[tokio::test]
async fn the_preview_shows_the_next_environments_key_name_tags_and_source() {
    let env = connected(0).await;
    let res = env
        .browser
        .get(env.app.url(
            "/settings/preview?project_key=demo&source_environment_key=test&name_template=PR+%7Bephemeral_id%7D&color=%2300ff00&ttl_value=2&ttl_unit=days&key_prefix=prv",
        ))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let p = &body["preview"];
    assert_eq!(p["environment_name"], "PR pr-1234");
    assert!(
        p["environment_key"]
            .as_str()
            .unwrap()
            .starts_with("prv-pr-1234-")
    );
    assert_eq!(p["source_environment_key"], "test");
    assert_eq!(p["color"], "00ff00");
    assert_eq!(p["expires"], "2 days after creation");
    let tags: Vec<&str> = p["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"ld-eaas") && tags.contains(&"ld-eaas.default"),
        "{tags:?}"
    );

    let res = env
        .browser
        .get(env.app.url("/settings/preview?key_prefix=-x"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn environments_show_their_state_reveal_keys_by_post_and_delete_with_a_form() {
    let env = connected(0).await;
    assert_eq!(
        env.save_settings(&[("ttl_value", "2"), ("ttl_unit", "days")])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let html = env.page("/environments").await;
    assert!(html.contains("No live environments"));

    let (status, body) = env
        .api(
            Method::PUT,
            "/tenants/acme/environments/pr-7?wait=10",
            Some(json!({})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let ready = env.wait_for_status("pr-7", "ready").await;
    let sdk_key = ready["launchdarkly"]["sdk_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mobile_key = ready["launchdarkly"]["mobile_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = ready["launchdarkly"]["environment_key"]
        .as_str()
        .unwrap()
        .to_owned();

    let html = env.page("/environments").await;
    assert!(html.contains("data-ephemeral-id=\"pr-7\" data-status=\"ready\""));
    assert!(html.contains(">Ready<"));
    assert!(html.contains("in 2 days"), "the expiry");
    assert!(html.contains("just now"), "the age");
    assert!(html.contains(&key));
    assert!(
        html.contains(&format!(
            "{}/projects/demo/settings/environments",
            env.sim.base_url()
        )),
        "a link into LaunchDarkly"
    );
    assert!(
        !html.contains(&sdk_key),
        "SDK keys are hidden until asked for"
    );
    assert!(html.contains("action=\"/environments/pr-7/keys\""));

    // Reveal without JavaScript: the POST answers with the page, keys shown,
    // and not cacheable.
    let res = env.post("/environments/pr-7/keys", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    let html = res.text().await.unwrap();
    assert!(html.contains(&sdk_key) && html.contains(&mobile_key));
    // With JavaScript: the same POST asking for JSON.
    let res = env
        .browser
        .post(env.app.url("/environments/pr-7/keys"))
        .header("accept", "application/json")
        .form(&[("csrf_token", env.csrf.as_str())])
        .send()
        .await
        .unwrap();
    let keys: Value = res.json().await.unwrap();
    assert_eq!(keys["sdk_key"], sdk_key.as_str());
    // Asking for keys is a POST only.
    let res = env
        .browser
        .get(env.app.url("/environments/pr-7/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Delete through the page's form.
    let res = env.post("/environments/pr-7/delete", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/environments");
    env.wait_for_status("pr-7", "deleted").await;
    assert!(env.sim.environment(DEMO_ACCOUNT, "demo", &key).is_none());
    let html = env.page("/environments").await;
    assert!(html.contains("Deleting pr-7"), "the flash");
    assert!(
        !html.contains("data-ephemeral-id=\"pr-7\""),
        "gone from the live list"
    );
    let html = env.page("/environments?show=all").await;
    assert!(html.contains("data-ephemeral-id=\"pr-7\" data-status=\"deleted\""));
    // Deleting it again says so instead of failing.
    env.post("/environments/pr-7/delete", &[]).await;
    assert!(
        env.page("/environments")
            .await
            .contains("pr-7 was already deleted")
    );

    let html = env.page("/activity").await;
    for expected in [
        "SDK keys revealed",
        "Deletion requested",
        "Environment deleted",
        "Environment created",
    ] {
        assert!(html.contains(expected), "activity lacks {expected}");
    }
    assert!(!html.contains(&sdk_key), "no secret in the activity");
    assert_logs_free_of(&[&sdk_key, &mobile_key, TOKEN]);
}

#[tokio::test]
async fn recreate_clones_a_fresh_environment_from_the_page() {
    let env = connected(0).await;
    env.save_settings(&[]).await;
    env.api(
        Method::PUT,
        "/tenants/acme/environments/pr-8?wait=10",
        Some(json!({})),
    )
    .await;
    let first = env.wait_for_status("pr-8", "ready").await;
    let res = env.post("/environments/pr-8/recreate", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = env.page("/environments").await;
    assert!(html.contains("Re-creating pr-8"));
    let started = Instant::now();
    loop {
        let (_, now) = env
            .api(Method::GET, "/tenants/acme/environments/pr-8", None)
            .await;
        if now["status"] == "ready"
            && now["launchdarkly"]["environment_key"] != first["launchdarkly"]["environment_key"]
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never re-created: {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Recreating something that is not there explains itself.
    env.post("/environments/pr-none/recreate", &[]).await;
    assert!(
        env.page("/environments")
            .await
            .contains("nothing to re-create")
    );
}

trait ParseTenant {
    fn parse_tenant(&self) -> ld_eaas::ids::TenantId;
}

impl ParseTenant for &str {
    fn parse_tenant(&self) -> ld_eaas::ids::TenantId {
        ld_eaas::ids::TenantId::parse(self).unwrap()
    }
}
