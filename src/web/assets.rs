//! Static assets, compiled into the binary so a deployment is one file.
//!
//! Each file is also served under a content-hashed name
//! (`/static/style.<hash>.css`, the hash taken from its bytes when first asked
//! for), cached for a year as immutable: a changed file gets a new name, so
//! browsers never hold a stale copy. Templates link the hashed names through
//! [`url`]. The plain name still answers, with a short cache, for anything that
//! links it directly; so does a hashed name that no longer matches (a page
//! rendered by an older replica during a rollout), which must not be cached long.
//! Answers are compressed (gzip or br) when the browser accepts it.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use sha2::{Digest, Sha256};
use tower_http::compression::CompressionLayer;

/// Cache policy of a content-hashed name.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache policy of a plain (or outdated hashed) name.
pub const SHORT: &str = "public, max-age=300";
/// Hex digits of the content hash in a file name.
const HASH_LEN: usize = 12;

const FILES: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../static/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/app.js"),
    ),
    (
        "logo.svg",
        "image/svg+xml",
        include_str!("../../static/logo.svg"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../static/favicon.svg"),
    ),
];

struct Asset {
    name: &'static str,
    /// `stem.<hash>.ext`.
    hashed: String,
    content_type: &'static str,
    body: &'static str,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, body)| Asset {
            name,
            hashed: hashed_name(name, body.as_bytes()),
            content_type,
            body,
        })
        .collect()
});

/// `style.css` with these bytes → `style.<first hex digits of their SHA-256>.css`.
pub fn hashed_name(name: &str, bytes: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(bytes));
    let hash = &digest[..HASH_LEN];
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
        None => format!("{name}.{hash}"),
    }
}

/// The URL templates link for a static file: its content-hashed name. An unknown
/// file keeps its plain name (and answers 404).
pub fn url(name: &str) -> String {
    let file = ASSETS
        .iter()
        .find(|a| a.name == name)
        .map_or(name, |a| a.hashed.as_str());
    format!("/static/{file}")
}

/// The `/static/{file}` route: the files, compressed when the browser accepts it.
pub fn route<S: Clone + Send + Sync + 'static>() -> MethodRouter<S> {
    get(serve).layer(CompressionLayer::new().gzip(true).br(true))
}

pub async fn serve(Path(file): Path<String>) -> Response {
    let Some((asset, cache)) = find(&file) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
        ],
        asset.body,
    )
        .into_response()
}

/// The asset a requested file name stands for, and how long it may be cached.
fn find(file: &str) -> Option<(&'static Asset, &'static str)> {
    if let Some(asset) = ASSETS.iter().find(|a| a.hashed == file) {
        return Some((asset, IMMUTABLE));
    }
    if let Some(asset) = ASSETS.iter().find(|a| a.name == file) {
        return Some((asset, SHORT));
    }
    // `stem.<other hash>.ext`: the file as it is now, not to be kept.
    let (rest, ext) = file.rsplit_once('.')?;
    let (stem, hash) = rest.rsplit_once('.')?;
    if hash.len() != HASH_LEN || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let plain = format!("{stem}.{ext}");
    ASSETS
        .iter()
        .find(|a| a.name == plain)
        .map(|asset| (asset, SHORT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_gets_a_new_name_and_the_same_bytes_the_same_name() {
        let before = hashed_name("style.css", b"body { color: red }");
        let after = hashed_name("style.css", b"body { color: blue }");
        assert_ne!(before, after);
        assert_eq!(before, hashed_name("style.css", b"body { color: red }"));
        assert!(before.starts_with("style.") && before.ends_with(".css"));
        assert_eq!(before.len(), "style..css".len() + HASH_LEN);
    }

    #[test]
    fn hashed_names_are_immutable_while_plain_and_outdated_names_are_short_lived() {
        let url = url("app.js");
        let hashed = url.trim_start_matches("/static/");
        assert_ne!(hashed, "app.js");
        assert_eq!(find(hashed).map(|(_, cache)| cache), Some(IMMUTABLE));
        assert_eq!(find("app.js").map(|(_, cache)| cache), Some(SHORT));
        assert_eq!(
            find("app.0123456789ab.js").map(|(_, cache)| cache),
            Some(SHORT)
        );
        assert!(find("app.zzzz.js").is_none());
        assert!(find("secret.0123456789ab.txt").is_none());
        assert_eq!(super::url("nope.css"), "/static/nope.css");
    }
}
