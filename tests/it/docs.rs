//! The documents under `docs/` are checked against the running product so
//! that they cannot rot: the committed OpenAPI document is the served one,
//! every marked `curl` example in `docs/integrating.md` is run (as written,
//! by bash and curl) against the real app and the LaunchDarkly simulator, the
//! webhook-verification snippet is run by python3 on a real delivery, and the
//! operator's settings, the custom role and the version agree with the code.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use clap::CommandFactory;
use ld_eaas::config::WebhookConfig;
use ld_eaas::connections::{self, Connected};
use ld_eaas::ids::TenantId;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::lifecycle::{TOKEN, spawn_with, start_sim};
use crate::support::helpers::spawn_app;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}"))
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// `UPDATE_DOCS=1 cargo test --test it docs::` rewrites generated documents.
fn updating() -> bool {
    std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1")
}

// ---- docs/openapi.json ------------------------------------------------------

#[tokio::test]
async fn the_committed_openapi_document_is_the_one_the_api_serves() {
    let app = spawn_app().await;
    let res = reqwest::get(app.url("/api/v1/openapi.json")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let served = res.text().await.unwrap();
    let path = format!("{ROOT}/docs/openapi.json");
    if updating() {
        std::fs::write(&path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == served,
        "docs/openapi.json is not the document GET /api/v1/openapi.json serves; \
         refresh it with `UPDATE_DOCS=1 cargo test --test it docs::` and commit it"
    );
    let parsed: Value = serde_json::from_str(&committed).unwrap();
    assert!(parsed["openapi"].as_str().unwrap().starts_with("3."));
}

// ---- docs/integrating.md ----------------------------------------------------

/// One fenced block of a markdown file whose info string names `marker`,
/// e.g. ```` ```sh example expect=201 code=not_connected ````.
#[derive(Debug)]
struct Example {
    line: usize,
    attrs: BTreeMap<String, String>,
    text: String,
}

fn examples(markdown: &str, language: &str, marker: &str) -> Vec<Example> {
    let mut found = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let mut words = info.split_whitespace();
        let is_example =
            words.next() == Some(language) && info.split_whitespace().any(|w| w == marker);
        let mut text = String::new();
        for (_, body) in lines.by_ref() {
            if body.trim_start().starts_with("```") {
                break;
            }
            text.push_str(body);
            text.push('\n');
        }
        if is_example {
            let attrs = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            found.push(Example {
                line: n + 1,
                attrs,
                text,
            });
        }
    }
    found
}

/// The status and body of `curl -i` output (the last status line wins, so
/// an interim `100 Continue` does not count).
fn parse_curl_i(output: &str) -> (u16, String) {
    let mut status = 0;
    let mut rest = output;
    while let Some(line) = rest.strip_prefix("HTTP/") {
        status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        rest = match rest.split_once("\r\n\r\n") {
            Some((_, body)) => body,
            None => "",
        };
    }
    (status, rest.to_owned())
}

/// Each webhook delivery's headers and body.
type Deliveries = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A webhook receiver that keeps every delivery.
async fn receiver() -> (String, Deliveries) {
    let received: Deliveries = Arc::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hooks/ld-eaas",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((headers, body.to_vec()));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/ld-eaas", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

const HOOK_SECRET: &str = "whsec-docs-example-0123456789";

#[tokio::test]
async fn every_curl_example_in_integrating_md_runs_in_order_against_the_real_app() {
    let markdown = read("docs/integrating.md");
    let blocks = examples(&markdown, "sh", "example");
    assert!(blocks.len() >= 15, "found only {} examples", blocks.len());

    let sim = start_sim().await;
    let (hook_url, deliveries) = receiver().await;
    let app = spawn_with(&sim, true, move |mut c| {
        c.webhook = Some(WebhookConfig {
            url: url::Url::parse(&hook_url).unwrap(),
            secret: SecretString::from(HOOK_SECRET.to_owned()),
        });
        // The connect-link example carries a `return_url`: its origin must
        // be allowed (LD_EAAS_RETURN_URL_ORIGINS).
        c.return_url_origins = vec!["https://app.example.com".to_owned()];
        c
    })
    .await;

    for block in &blocks {
        let at = format!("docs/integrating.md:{}", block.line);
        assert!(
            block.text.contains("curl "),
            "{at}: an example is a curl call"
        );
        if block.attrs.get("before").map(String::as_str) == Some("connect") {
            // What the customer does in the browser with the connect link:
            // here with an API access token, as the settings page's form does.
            connections::connect(
                &app.state,
                &TenantId::parse("acme").unwrap(),
                Connected::from_api_token(SecretString::from(TOKEN.to_owned())),
                "customer",
            )
            .await
            .unwrap();
        }
        let output = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(format!("set -euo pipefail\n{}", block.text))
            .env("LD_EAAS_URL", &app.address)
            .env("API_KEY", &app.api_key)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{at}: the example failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let (status, body) = parse_curl_i(&stdout);
        let expected: u16 = block.attrs["expect"].parse().unwrap();
        assert_eq!(status, expected, "{at}: answered {status}: {body}");
        if let Some(code) = block.attrs.get("code") {
            let json: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(json["error"]["code"], code.as_str(), "{at}: {body}");
        }
        if let Some(expected) = block.attrs.get("status") {
            let json: Value = serde_json::from_str(&body).unwrap();
            let status = json
                .pointer("/status")
                .or_else(|| json.pointer("/connection/status"))
                .or_else(|| json.pointer("/environment/status"));
            assert_eq!(
                status.and_then(Value::as_str),
                Some(expected.as_str()),
                "{at}: {body}"
            );
        }
    }

    // The webhooks the lifecycle sent on its way: the documented
    // verification snippet accepts each real delivery and refuses forgeries.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let received = loop {
        let received = deliveries.lock().unwrap().clone();
        let types: Vec<String> = received
            .iter()
            .filter_map(|(_, body)| serde_json::from_slice::<Value>(body).ok())
            .filter_map(|e| e["type"].as_str().map(str::to_owned))
            .collect();
        if [
            "environment.ready",
            "environment.deleted",
            "environment.failed",
        ]
        .iter()
        .all(|t| types.iter().any(|s| s == t))
        {
            break received;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "webhooks not delivered; got {types:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let snippet = examples(&markdown, "python", "example");
    assert_eq!(snippet.len(), 1, "one python verification example");
    let snippet = &snippet[0].text;
    for (headers, body) in &received {
        let signature = headers["LD-EaaS-Signature"].to_str().unwrap();
        assert!(verify_with_python(snippet, HOOK_SECRET, signature, body).await);
        assert!(!verify_with_python(snippet, "another-secret-value", signature, body).await);
        let mut tampered = body.clone();
        tampered.extend_from_slice(b" ");
        assert!(!verify_with_python(snippet, HOOK_SECRET, signature, &tampered).await);
        // The receiver judges the timestamp against its own wall clock.
        #[allow(clippy::disallowed_methods)]
        let old = chrono::Utc::now().timestamp() - 3600;
        let replayed = ld_eaas::webhooks::signature(HOOK_SECRET, old, body);
        assert!(!verify_with_python(snippet, HOOK_SECRET, &replayed, body).await);
    }
}

/// Runs the documented python `verify` on one delivery.
async fn verify_with_python(snippet: &str, secret: &str, signature: &str, body: &[u8]) -> bool {
    let driver = "\nimport os, sys\n\
        ok = verify(os.environ['WEBHOOK_SECRET'], os.environ['SIGNATURE'], sys.stdin.buffer.read())\n\
        print('valid' if ok else 'invalid')\n";
    let mut child = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(format!("{snippet}{driver}"))
        .env("WEBHOOK_SECRET", secret)
        .env("SIGNATURE", signature)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(body).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the python example failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.trim() == "valid"
}

#[test]
fn the_example_runner_reads_fences_and_curl_output() {
    let md = "text\n```sh example expect=409 code=x\ncurl -sSi a\n```\n```sh\nnot run\n```\n";
    let found = examples(md, "sh", "example");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].line, 2);
    assert_eq!(found[0].attrs["expect"], "409");
    assert_eq!(found[0].text, "curl -sSi a\n");
    let (status, body) =
        parse_curl_i("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nA: b\r\n\r\n{\"x\":1}");
    assert_eq!((status, body.as_str()), (201, "{\"x\":1}"));
}

// ---- docs/operating.md, docs/customers.md, the version ------------------

#[derive(clap::Parser)]
struct ServeFlags {
    #[command(flatten)]
    args: ld_eaas::config::ServeArgs,
}

#[test]
fn every_setting_of_serve_has_a_row_in_operating_mds_settings_table() {
    let operating = read("docs/operating.md");
    let mut missing = Vec::new();
    let mut seen = 0;
    for env in serve_settings() {
        seen += 1;
        // A row of the settings table: `| `NAME` ...` (secrets carry a mark).
        let row = format!("| `{env}`");
        if !operating.lines().any(|line| line.starts_with(&row)) {
            missing.push(env);
        }
    }
    assert!(seen > 10, "found only {seen} settings");
    assert!(
        missing.is_empty(),
        "docs/operating.md does not document {missing:?}"
    );
}

/// The settings page's least-privilege policy, unescaped.
fn policy_on_the_settings_page() -> String {
    let page = read("templates/settings.html");
    let start = page
        .find("<pre><code>[")
        .expect("the policy on the settings page")
        + "<pre><code>".len();
    let end = start + page[start..].find("</code></pre>").unwrap();
    page[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[test]
fn the_custom_role_in_customers_md_grants_what_the_settings_page_asks_for() {
    let customers = read("docs/customers.md");
    let statements = |text: &str| -> Vec<Value> {
        let json: Value = serde_json::from_str(text).unwrap();
        json.as_array().unwrap().clone()
    };
    let page = statements(&policy_on_the_settings_page());
    let documented = examples(&customers, "json", "policy");
    assert_eq!(
        documented.len(),
        2,
        "the base policy and the per-preview flag statement"
    );
    assert_eq!(
        statements(&documented[0].text),
        page,
        "docs/customers.md shows the settings page's policy"
    );
    let flags = statements(&documented[1].text);
    let actions: Vec<&str> = flags
        .iter()
        .flat_map(|s| s["actions"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    for action in [
        "updateOn",
        "updateFallthrough",
        "updateOffVariation",
        "updateRules",
        "updateTargets",
    ] {
        assert!(actions.contains(&action), "{action}");
    }
    for statement in page.iter().chain(&flags) {
        for action in statement["actions"].as_array().unwrap() {
            assert!(
                customers.contains(&format!("`{}`", action.as_str().unwrap())),
                "docs/customers.md explains {action}"
            );
        }
    }
}

#[test]
fn the_version_is_one_version_everywhere() {
    let version = env!("CARGO_PKG_VERSION");
    let manifest: Value = serde_json::from_str(&read("manifest.json")).unwrap();
    assert_eq!(manifest["version"], version, "manifest.json's version");
    assert!(
        read("CHANGELOG.md").contains(&format!("## [{version}]")),
        "CHANGELOG.md has an entry for {version}"
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ld-eaas"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("ld-eaas {version}")
    );
    // The User-Agent's version is checked on real requests in
    // connect::every_request_to_launchdarkly_carries_the_version_and_partner_user_agent.
}

#[test]
fn the_manifest_links_point_at_documents_that_exist() {
    let manifest: Value = serde_json::from_str(&read("manifest.json")).unwrap();
    let links = manifest["links"].as_object().unwrap();
    let mut docs = 0;
    for (name, link) in links {
        let link = link.as_str().unwrap();
        if let Some((_, path)) = link.split_once("/blob/main/") {
            docs += 1;
            assert!(
                std::path::Path::new(&format!("{ROOT}/{path}")).is_file(),
                "links.{name} points at {path}, which is not in the repository"
            );
        }
    }
    assert!(docs >= 1, "the listing links to the docs");
}

#[test]
fn the_markdown_links_between_documents_resolve() {
    for doc in [
        "README.md",
        "CHANGELOG.md",
        "docs/integrating.md",
        "docs/operating.md",
        "docs/customers.md",
    ] {
        let text = read(doc);
        let dir = std::path::Path::new(doc).parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = &rest[..end];
            if target.starts_with("http")
                || target.starts_with('#')
                || target.starts_with("mailto:")
            {
                continue;
            }
            let file = target.split('#').next().unwrap();
            let path = std::path::Path::new(ROOT).join(dir).join(file);
            assert!(
                path.exists(),
                "{doc} links to {target}, which does not exist"
            );
        }
    }
}

/// The environment variables `serve` reads.
fn serve_settings() -> Vec<String> {
    ServeFlags::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_container_and_kubernetes_files_set_only_settings_that_exist() {
    let settings = serve_settings();
    let mut named = 0;
    for file in [
        "Dockerfile",
        "deploy/kubernetes/deployment.yaml",
        "deploy/kubernetes/secret.example.yaml",
    ] {
        let text = read(file);
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("LD_EAAS_") || word == "DATABASE_URL" {
                named += 1;
                assert!(
                    settings.iter().any(|s| s == word),
                    "{file} sets {word}, which `ld-eaas serve` does not read"
                );
            }
        }
    }
    assert!(named >= 10, "found only {named} settings");
    let deployment = read("deploy/kubernetes/deployment.yaml");
    for probe in [
        "path: /healthz",
        "path: /readyz",
        "replicas: 2",
        "runAsNonRoot: true",
    ] {
        assert!(deployment.contains(probe), "the Deployment has {probe}");
    }
}

#[tokio::test]
async fn the_probe_paths_the_deployment_uses_answer() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let res = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
}
