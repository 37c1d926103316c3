//! Where a customer goes back to in the vendor's app: the `return_url` a
//! connect link may carry. Only absolute http(s) URLs whose origin is one of
//! `LD_EAAS_RETURN_URL_ORIGINS` are taken, so the "Back to …" link can never
//! send a person somewhere the operator did not allow (no open redirect).

use url::Url;

/// The longest `return_url` kept.
pub const MAX_LEN: usize = 2048;

/// Why a `return_url` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnUrlError {
    #[error(
        "return_url is not accepted here: this deployment allows no return URL origins (LD_EAAS_RETURN_URL_ORIGINS is empty)"
    )]
    NoneAllowed,
    #[error(
        "return_url must be an absolute http or https URL with a host and no user name or password, at most 2048 characters"
    )]
    Malformed,
    #[error("return_url's origin {0} is not one of LD_EAAS_RETURN_URL_ORIGINS")]
    OriginNotAllowed(String),
}

impl ReturnUrlError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "invalid_return_url",
            Self::NoneAllowed | Self::OriginNotAllowed(_) => "return_url_not_allowed",
        }
    }
}

/// Checks `raw` against the allowed origins (serialized, as
/// [`crate::config::parse_origins`] makes them) and returns the URL to keep,
/// in its normalized form.
pub fn check(raw: &str, allowed: &[String]) -> Result<Url, ReturnUrlError> {
    if allowed.is_empty() {
        return Err(ReturnUrlError::NoneAllowed);
    }
    // Strict on the raw text: the URL parser would quietly drop tabs and
    // newlines and read `\` as `/`, so what it parses could differ from
    // what the vendor meant. Only `scheme://` forms are absolute enough.
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    let shaped = raw.len() <= MAX_LEN
        && (lower.starts_with("http://") || lower.starts_with("https://"))
        && !raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\');
    if !shaped {
        return Err(ReturnUrlError::Malformed);
    }
    let url = Url::parse(raw).map_err(|_| ReturnUrlError::Malformed)?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.as_str().len() <= MAX_LEN;
    if !ok {
        return Err(ReturnUrlError::Malformed);
    }
    let origin = url.origin().ascii_serialization();
    if allowed.contains(&origin) {
        Ok(url)
    } else {
        Err(ReturnUrlError::OriginNotAllowed(origin))
    }
}

/// A stored `return_url` as it may be shown now: checked again against the
/// origins allowed today, so an origin the operator removed is not linked.
pub fn still_allowed(stored: Option<String>, allowed: &[String]) -> Option<String> {
    stored.filter(|url| check(url, allowed).is_ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn allowed() -> Vec<String> {
        crate::config::parse_origins("https://app.vendor.test,http://localhost:3000").unwrap()
    }

    #[test]
    fn urls_on_an_allowed_origin_are_kept_normalized() {
        let url = check("https://APP.vendor.test/projects/42?tab=ld#top", &allowed()).unwrap();
        assert_eq!(
            url.as_str(),
            "https://app.vendor.test/projects/42?tab=ld#top"
        );
        assert!(check("https://app.vendor.test:443/", &allowed()).is_ok());
        assert!(check("http://localhost:3000/x", &allowed()).is_ok());
    }

    #[test]
    fn a_stored_url_is_shown_only_while_its_origin_is_still_allowed() {
        let kept = Some("https://app.vendor.test/x".to_owned());
        assert_eq!(still_allowed(kept.clone(), &allowed()), kept);
        let now = crate::config::parse_origins("https://other.vendor.test").unwrap();
        assert_eq!(still_allowed(kept, &now), None);
        assert_eq!(still_allowed(None, &allowed()), None);
    }

    #[test]
    fn other_origins_and_odd_shapes_are_refused() {
        let a = allowed();
        for (raw, code) in [
            (
                "https://app.vendor.test.evil.test/",
                "return_url_not_allowed",
            ),
            ("http://app.vendor.test/", "return_url_not_allowed"),
            ("https://app.vendor.test:8443/", "return_url_not_allowed"),
            ("http://localhost:3001/", "return_url_not_allowed"),
            (
                "https://evil.test/@app.vendor.test",
                "return_url_not_allowed",
            ),
            ("https://app.vendor.test@evil.test/", "invalid_return_url"),
            ("https://user:pw@app.vendor.test/", "invalid_return_url"),
            ("//app.vendor.test/", "invalid_return_url"),
            ("/settings", "invalid_return_url"),
            ("https:app.vendor.test", "invalid_return_url"),
            ("https:/\\evil.test", "invalid_return_url"),
            ("javascript:alert(1)", "invalid_return_url"),
            ("https://app.vendor.test/\nx", "invalid_return_url"),
            (" https://app.vendor.test/", "invalid_return_url"),
            ("", "invalid_return_url"),
        ] {
            let err = check(raw, &a).unwrap_err();
            assert_eq!(err.code(), code, "{raw:?}: {err}");
        }
        let long = format!("https://app.vendor.test/{}", "a".repeat(MAX_LEN));
        assert_eq!(check(&long, &a).unwrap_err(), ReturnUrlError::Malformed);
        assert_eq!(
            check("https://app.vendor.test/", &[]).unwrap_err(),
            ReturnUrlError::NoneAllowed
        );
    }
}
