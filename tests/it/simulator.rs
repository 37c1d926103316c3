//! The LaunchDarkly simulator over real HTTP: the REST subset, OAuth, rate limits,
//! faults, the CLI, and conformance of every answer to LaunchDarkly's OpenAPI
//! document.

mod api;
mod cli;
mod demo_link;
mod flags;
mod limits;
mod oauth;
mod spec;

use ld_eaas::simulator::{ApiTokenGrant, OAuthClientRegistration, Simulator, SimulatorConfig};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const WRITER: &str = "sim-test-writer-token";
pub const READER: &str = "sim-test-reader-token";
pub const CLIENT_ID: &str = "sim-test-client";
pub const CLIENT_SECRET: &str = "sim-test-client-secret";
pub const REDIRECT_URI: &str = "https://eaas.example/oauth/callback";
pub const ACCOUNT: &str = ld_eaas::simulator::DEMO_ACCOUNT;

/// A simulator and a client that does not follow redirects.
pub struct Sim {
    pub sim: Simulator,
    pub http: reqwest::Client,
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub fn assert(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        &self.body
    }

    /// An LD error body with `code`.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
    }
}

pub fn base_config() -> SimulatorConfig {
    SimulatorConfig {
        api_tokens: vec![
            ApiTokenGrant::new(WRITER, "writer"),
            ApiTokenGrant::new(READER, "reader"),
        ],
        oauth_clients: vec![OAuthClientRegistration {
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            redirect_uri: REDIRECT_URI.to_owned(),
        }],
        ..SimulatorConfig::default()
    }
}

pub async fn start() -> Sim {
    start_with(base_config()).await
}

pub async fn start_with(config: SimulatorConfig) -> Sim {
    crate::support::helpers::init_logging();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = Simulator::start(config, listener).await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap();
    Sim { sim, http }
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// A request with `Authorization: <auth>` (raw; pass `Bearer …` for OAuth).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("LD-API-Version", "20240415")
            .header("User-Agent", "launchdarkly-simtest-int/0.0.0");
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, auth: &str) -> Answer {
        self.call(Method::GET, path, Some(auth), None).await
    }

    pub async fn post(&self, path: &str, auth: &str, body: &Value) -> Answer {
        self.call(Method::POST, path, Some(auth), Some(body)).await
    }

    pub async fn delete(&self, path: &str, auth: &str) -> Answer {
        self.call(Method::DELETE, path, Some(auth), None).await
    }

    /// Every item of a list, following `_links.next`; also checks `totalCount`.
    pub async fn walk(&self, first: &str, auth: &str) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut next = Some(first.to_owned());
        let mut pages = 0;
        let mut total = None;
        while let Some(path) = next {
            let page = self.get(&path, auth).await;
            let body = page.assert(StatusCode::OK);
            let count = body["totalCount"].as_u64().unwrap() as usize;
            assert!(
                total.is_none_or(|t| t == count),
                "totalCount stays put across pages"
            );
            total = Some(count);
            items.extend(body["items"].as_array().unwrap().iter().cloned());
            next = body["_links"]["next"]["href"].as_str().map(str::to_owned);
            pages += 1;
            assert!(pages < 100, "pagination does not end");
        }
        (items, pages)
    }
}

pub async fn read(res: reqwest::Response) -> Answer {
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// An `EnvironmentPost` body.
pub fn env_post(key: &str) -> Value {
    serde_json::json!({"key": key, "name": format!("Env {key}"), "color": "00AAFF"})
}
