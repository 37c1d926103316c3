//! The request log tests assert on. Secrets never enter it: `Authorization` and
//! the OAuth form's secret fields are replaced by fingerprints.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::auth::CallerAccount;
use super::faults::InjectedFault;
use super::state::SharedState;

/// Request bodies beyond this are refused (413) rather than buffered.
const MAX_BODY: usize = 1024 * 1024;
/// The log keeps the newest this many requests.
const MAX_LOG: usize = 10_000;
/// Headers the log keeps (lowercase), besides `Authorization`.
const KEPT_HEADERS: [&str; 4] = ["ld-api-version", "user-agent", "content-type", "accept"];
/// Form fields that carry secrets (OAuth token and revoke requests).
const SECRET_FIELDS: [&str; 6] = [
    "client_secret",
    "code",
    "code_verifier",
    "refresh_token",
    "token",
    "access_token",
];

/// One request the simulator received, and how it answered.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    /// Arrival order, from 1.
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Kept headers by lowercase name; `authorization` is a fingerprint
    /// (`Bearer sha256:…` or `sha256:…`, see [`fingerprint`]).
    pub headers: BTreeMap<String, String>,
    /// The JSON body, or a form body as an object (secret fields fingerprinted).
    pub body: Option<Value>,
    /// `None` while the request is still being answered (e.g. held by a timeout fault).
    pub status: Option<u16>,
    /// The account the credentials belonged to, when they were valid.
    pub account_id: Option<String>,
    /// The fault injected into this request, if any (`"error"`, `"error_after_commit"`,
    /// `"rate_limit"`, `"timeout"`).
    pub fault: Option<&'static str>,
    pub at: DateTime<Utc>,
}

impl RecordedRequest {
    /// A kept header by name (any case). `authorization` gives the fingerprint.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A stable, non-reversible name for a secret: `sha256:` and 12 hex digits.
/// Tests compare it with the log's `authorization` header.
pub fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    format!("sha256:{}", &hex::encode(digest)[..12])
}

#[derive(Default)]
pub(crate) struct RequestLog {
    next_seq: u64,
    entries: VecDeque<RecordedRequest>,
}

impl RequestLog {
    fn push(&mut self, mut entry: RecordedRequest) -> u64 {
        self.next_seq += 1;
        entry.seq = self.next_seq;
        if self.entries.len() >= MAX_LOG {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
        self.next_seq
    }

    fn finish(
        &mut self,
        seq: u64,
        status: u16,
        account: Option<String>,
        fault: Option<&'static str>,
    ) {
        if let Some(entry) = self.entries.iter_mut().rev().find(|e| e.seq == seq) {
            entry.status = Some(status);
            entry.account_id = account;
            entry.fault = fault;
        }
    }

    pub fn entries(&self) -> Vec<RecordedRequest> {
        self.entries.iter().cloned().collect()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

fn redact_authorization(value: &str) -> String {
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("basic") =>
        {
            format!("{scheme} {}", fingerprint(token.trim()))
        }
        _ => fingerprint(value.trim()),
    }
}

/// The query with secret parameters (OAuth `state`, `code`, ...) fingerprinted.
fn redact_query(query: &str) -> String {
    let secret = |k: &str| SECRET_FIELDS.contains(&k) || k == "state";
    if !url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| secret(&k)) {
        // Kept byte for byte, so tests can check how a client encoded it.
        return query.to_owned();
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            let v = if secret(&k) {
                fingerprint(&v)
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn body_value(content_type: Option<&str>, bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    let content_type = content_type.unwrap_or_default().to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let form = url::form_urlencoded::parse(bytes)
            .map(|(k, v)| {
                let v = if SECRET_FIELDS.contains(&k.as_ref()) {
                    fingerprint(&v)
                } else {
                    v.into_owned()
                };
                (k.into_owned(), Value::String(v))
            })
            .collect();
        return Some(Value::Object(form));
    }
    // The API takes JSON whatever the Content-Type says; keep what it was sent.
    serde_json::from_slice(bytes).ok().or_else(|| {
        Some(Value::String(
            String::from_utf8_lossy(bytes).chars().take(4096).collect(),
        ))
    })
}

/// Records the request (with its buffered body) before it is handled and its
/// status after.
pub(crate) async fn record(
    State(shared): State<SharedState>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let mut headers = BTreeMap::new();
    for name in KEPT_HEADERS {
        if let Some(value) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
            headers.insert(name.to_owned(), value.to_owned());
        }
    }
    if let Some(value) = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        headers.insert("authorization".to_owned(), redact_authorization(value));
    }
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let entry = RecordedRequest {
        seq: 0,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(redact_query),
        headers,
        body: body_value(content_type, &bytes),
        status: None,
        account_id: None,
        fault: None,
        at: Utc::now(),
    };
    let method = entry.method.clone();
    let path = entry.path.clone();
    let seq = shared.lock().log.push(entry);
    let started = Instant::now();

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;

    let status = response.status().as_u16();
    let account = response
        .extensions()
        .get::<CallerAccount>()
        .map(|a| a.0.clone());
    let fault = response.extensions().get::<InjectedFault>().map(|f| f.0);
    // Method, path, status and account only: never a header or body value.
    tracing::info!(
        method = %method,
        path = %path,
        status,
        account_id = account.as_deref().unwrap_or("-"),
        fault = fault.unwrap_or("-"),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "simulator request"
    );
    shared.lock().log.finish(seq, status, account, fault);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fingerprinted_and_the_rest_kept() {
        assert_eq!(
            redact_authorization("Bearer abc"),
            format!("Bearer {}", fingerprint("abc"))
        );
        assert_eq!(redact_authorization("api-123"), fingerprint("api-123"));
        let form = body_value(
            Some("application/x-www-form-urlencoded"),
            b"grant_type=refresh_token&refresh_token=secret-rt&client_secret=cs",
        );
        let form = form.unwrap_or_default().to_string();
        assert!(form.contains("refresh_token\":\"sha256:"));
        assert!(!form.contains("secret-rt") && !form.contains("\"cs\""));
        assert!(form.contains("\"grant_type\":\"refresh_token\""));
    }
}
