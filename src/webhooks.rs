//! Outgoing webhooks, delivered from the outbox with retries.
//!
//! Each delivery is `POST <LD_EAAS_WEBHOOK_URL>` with a JSON body
//! `{"id", "type", "created_at", "tenant_id", "data"}` and the header
//! `LD-EaaS-Signature: t=<unix seconds>,v1=<hex hmac-sha256(secret, "<t>.<body>")>`.
//! Receivers should check the signature and that `t` is recent, and treat
//! `id` as an idempotency key: an event may arrive more than once.

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::store::outbox::{self, OutboxEvent};

pub const SIGNATURE_HEADER: &str = "LD-EaaS-Signature";
pub const EVENT_HEADER: &str = "LD-EaaS-Event";
pub const DELIVERY_HEADER: &str = "LD-EaaS-Delivery";

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Checks a received signature header (for receivers written in Rust, and
/// the tests): right secret, right body, and `t` within `tolerance` of `now`.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance: i64) -> bool {
    let mut timestamp = None;
    let mut given = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => given = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(given)) = (timestamp, given) else {
        return false;
    };
    if (now - timestamp).abs() > tolerance {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&given).is_ok()
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ld-eaas-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Delivers every due event once; returns how many were tried.
pub async fn deliver_due(state: &AppState) -> anyhow::Result<usize> {
    let Some(config) = state.config.webhook.as_ref() else {
        return Ok(0);
    };
    let tuning = &state.config.lifecycle;
    // Built on the first due event: most calls find nothing to send.
    let mut http: Option<reqwest::Client> = None;
    let mut tried = 0;
    loop {
        let now = state.now();
        // The lease: long enough for one delivery; a sender that dies leaves
        // the event to be picked up after it.
        let lease_until = now + chrono::Duration::from_std(tuning.webhook_timeout * 3)?;
        let Some(event) = outbox::claim_due(&state.db, now, lease_until).await? else {
            return Ok(tried);
        };
        tried += 1;
        let http = http.get_or_insert_with(|| client(tuning.webhook_timeout));
        let result = deliver(state, http, config, &event).await;
        let now = state.now();
        match result {
            Ok(()) => {
                outbox::mark_delivered(&state.db, event.id, now).await?;
                count(state, "delivered");
            }
            Err(error) if event.attempts >= tuning.webhook_max_attempts => {
                tracing::error!(event_id = %event.id, event_type = %event.event_type, error = %error,
                    attempts = event.attempts, "webhook abandoned after its last attempt");
                outbox::abandon(&state.db, event.id, &error, now).await?;
                count(state, "abandoned");
            }
            Err(error) => {
                let base = crate::retry::backoff(
                    tuning.webhook_backoff_base,
                    tuning.webhook_backoff_max,
                    event.attempts,
                );
                tracing::warn!(event_id = %event.id, event_type = %event.event_type, error = %error,
                    attempts = event.attempts, "webhook delivery failed; will retry");
                outbox::schedule_retry(&state.db, event.id, now + base, &error).await?;
                count(state, "failed");
            }
        }
    }
}

fn count(state: &AppState, outcome: &'static str) {
    state.metrics.inc(
        "ld_eaas_webhook_deliveries_total",
        "Webhook delivery attempts by outcome",
        &[("outcome", outcome)],
    );
}

/// One attempt. The error says what went wrong without echoing the
/// receiver's body (it is not ours to store).
async fn deliver(
    state: &AppState,
    http: &reqwest::Client,
    config: &crate::config::WebhookConfig,
    event: &OutboxEvent,
) -> Result<(), String> {
    let body = json!({
        "id": event.id,
        "type": event.event_type,
        "created_at": event.created_at,
        "tenant_id": event.tenant_id,
        "data": event.payload,
    });
    let body = serde_json::to_vec(&body).map_err(|e| format!("encoding the event: {e}"))?;
    let timestamp = state.now().timestamp();
    let signed = signature(config.secret.expose_secret(), timestamp, &body);
    let sent = http
        .post(config.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signed)
        .header(EVENT_HEADER, &event.event_type)
        .header(DELIVERY_HEADER, event.id.to_string())
        .body(body)
        .send()
        .await;
    match sent {
        Ok(res) if res.status().is_success() => Ok(()),
        Ok(res) => Err(format!("the receiver answered {}", res.status().as_u16())),
        Err(err) if err.is_timeout() => Err("the receiver did not answer in time".to_owned()),
        Err(err) if err.is_connect() => Err("could not connect to the receiver".to_owned()),
        Err(_) => Err("the request to the receiver failed".to_owned()),
    }
}

pub(crate) async fn delivery_loop(state: AppState, shutdown: CancellationToken) {
    let poll = state.config.lifecycle.poll_interval;
    while !shutdown.is_cancelled() {
        if let Err(err) = deliver_due(&state).await {
            tracing::error!(error = format!("{err:#}"), "webhook delivery loop failed");
        }
        tokio::select! {
            () = state.lifecycle.outbox.notified() => {}
            () = tokio::time::sleep(poll) => {}
            () = shutdown.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_right_secret_body_and_time() {
        let header = signature("s3cret-value", 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify(
            "s3cret-value",
            &header,
            b"{\"a\":1}",
            1_700_000_010,
            300
        ));
        assert!(!verify(
            "other-secret",
            &header,
            b"{\"a\":1}",
            1_700_000_010,
            300
        ));
        assert!(!verify(
            "s3cret-value",
            &header,
            b"{\"a\":2}",
            1_700_000_010,
            300
        ));
        assert!(!verify(
            "s3cret-value",
            &header,
            b"{\"a\":1}",
            1_700_009_999,
            300
        ));
        assert!(!verify(
            "s3cret-value",
            "garbage",
            b"{\"a\":1}",
            1_700_000_010,
            300
        ));
    }
}
