//! The HTTP client both the REST client and OAuth use, and body decoding.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;

use super::{API_VERSION, API_VERSION_HEADER};

/// Builds a reqwest client that
/// - never follows redirects: a redirect from LaunchDarkly is unexpected, and
///   following it could carry the `Authorization` header (or a code) elsewhere;
/// - bounds connect and total time;
/// - sends `LD-API-Version` and the partner User-Agent on every request.
pub(crate) fn build_client(
    user_agent: &str,
    request_timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut headers = HeaderMap::new();
    headers.insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
    reqwest::Client::builder()
        .user_agent(user_agent)
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(request_timeout)
        .connect_timeout(connect_timeout)
        .build()
}

/// `launchdarkly-<vendor>-int/<version>`, LaunchDarkly's partner User-Agent format.
pub(crate) fn user_agent(vendor: &str) -> String {
    format!("launchdarkly-{vendor}-int/{}", env!("CARGO_PKG_VERSION"))
}

/// Decodes a JSON body. The error names where decoding failed but never quotes the
/// body: a response may hold SDK keys or tokens.
pub(crate) fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|err| {
        let kind = match err.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "malformed JSON",
            serde_json::error::Category::Data => "JSON of an unexpected shape",
            serde_json::error::Category::Eof => "truncated JSON",
        };
        format!("{kind} at line {} column {}", err.line(), err.column())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_never_quote_the_body() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Shape {
            count: u32,
        }
        let err = decode_json::<Shape>(br#"{"count": "sdk-very-secret"}"#).err();
        let message = err.unwrap_or_default();
        assert!(message.contains("unexpected shape"), "{message}");
        assert!(!message.contains("sdk-very-secret"), "{message}");
    }

    #[test]
    fn the_user_agent_names_the_vendor_and_our_version() {
        assert_eq!(
            user_agent("acme"),
            format!("launchdarkly-acme-int/{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
