//! Checks of single settings: http(s) URLs, return-URL origins, the instance id.

use url::Url;

use super::{ConfigError, invalid};

pub(super) fn http_url(setting: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| invalid(setting, format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(setting, "must be an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(setting, "must not have a query or fragment"));
    }
    Ok(url)
}

/// `LD_EAAS_RETURN_URL_ORIGINS`: comma-separated http(s) origins, each
/// written as `scheme://host[:port]` (a trailing `/` is tolerated) with no
/// user name, path, query or fragment. Returned in their serialized form,
/// which is what a URL's origin is compared with.
pub fn parse_origins(raw: &str) -> Result<Vec<String>, ConfigError> {
    const SETTING: &str = "LD_EAAS_RETURN_URL_ORIGINS";
    let mut origins = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: &str| invalid(SETTING, format!("'{entry}' {why}"));
        let url = Url::parse(entry).map_err(|_| bad("is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(bad("must be an http(s) origin with a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not carry a user name or password"));
        }
        let bare = entry.trim_end_matches('/');
        if url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
            || bare.contains(['?', '#'])
        {
            return Err(bad(
                "must be an origin only (scheme://host[:port]), without a path, query or fragment",
            ));
        }
        let origin = url.origin().ascii_serialization();
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

/// The instance id goes into a LaunchDarkly tag `ld-eaas.<id>` (max 64 chars).
pub fn validate_instance_id(raw: &str) -> Result<(), ConfigError> {
    let ok = !raw.is_empty()
        && raw.len() <= 56
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "LD_EAAS_INSTANCE_ID",
            "must be 1-56 characters of letters, digits, '.', '_' or '-'",
        ))
    }
}
