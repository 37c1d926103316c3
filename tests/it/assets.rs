//! Static assets: linked under content-hashed names cached for a year, the
//! plain names still answering with a short cache, and compressed bodies for
//! browsers that accept gzip or br.

use std::io::Read;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, VARY};
use sha2::{Digest, Sha256};

use crate::support::helpers::{TestApp, spawn_app};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The bytes of `static/<name>` as they are on disk.
fn on_disk(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/static/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Every `/static/...` URL a page links, as (plain file name, URL).
async fn linked_assets(app: &TestApp) -> Vec<(String, String)> {
    let html = reqwest::get(app.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let link = regex::Regex::new(r#""(/static/([a-z]+)\.([0-9a-f]{12})\.([a-z]+))""#).unwrap();
    link.captures_iter(&html)
        .map(|c| (format!("{}.{}", &c[2], &c[4]), c[1].to_owned()))
        .collect()
}

#[tokio::test]
async fn pages_link_assets_by_the_hash_of_their_bytes_and_those_urls_are_cached_for_a_year() {
    let app = spawn_app().await;
    let linked = linked_assets(&app).await;
    let mut names: Vec<_> = linked.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["app.js", "favicon.svg", "logo.svg", "style.css"]);
    let http = reqwest::Client::new();
    for (name, url) in &linked {
        let bytes = on_disk(name);
        let hash = &hex::encode(Sha256::digest(&bytes))[..12];
        assert!(
            url.contains(hash),
            "{url} is named after the bytes of {name}"
        );

        let res = http.get(app.url(url)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{url}");
        assert_eq!(res.headers()[CACHE_CONTROL], IMMUTABLE, "{url}");
        assert_eq!(res.bytes().await.unwrap(), bytes, "{url}");

        // The plain name still answers, but is not kept for long.
        let res = http
            .get(app.url(&format!("/static/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert_eq!(res.headers()[CACHE_CONTROL], "public, max-age=300");
    }
    // A hash from another build (a page from an older replica) gets today's file,
    // never cached as immutable; garbage is a 404.
    let res = http
        .get(app.url("/static/style.000000000000.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CACHE_CONTROL], "public, max-age=300");
    let res = http
        .get(app.url("/static/style.zz.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn assets_are_compressed_for_browsers_that_accept_gzip_or_br_and_decompress_to_the_file() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    for (name, url) in linked_assets(&app)
        .await
        .into_iter()
        .filter(|(name, _)| name == "style.css" || name == "app.js")
    {
        let original = on_disk(&name);
        for encoding in ["gzip", "br"] {
            let res = http
                .get(app.url(&url))
                .header(ACCEPT_ENCODING, encoding)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()[CONTENT_ENCODING], encoding, "{name}");
            assert_eq!(res.headers()[CACHE_CONTROL], IMMUTABLE);
            assert!(
                res.headers().get_all(VARY).iter().any(|v| v
                    .to_str()
                    .unwrap()
                    .to_ascii_lowercase()
                    .contains("accept-encoding")),
                "caches must key on Accept-Encoding"
            );
            let body = res.bytes().await.unwrap();
            assert!(
                body.len() * 2 < original.len(),
                "{name} as {encoding}: {} of {} bytes",
                body.len(),
                original.len()
            );
            let mut plain = Vec::new();
            match encoding {
                "gzip" => flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut plain)
                    .unwrap(),
                _ => brotli::Decompressor::new(&body[..], 4096)
                    .read_to_end(&mut plain)
                    .unwrap(),
            };
            assert_eq!(plain, original, "{name} as {encoding}");
        }
        // Without Accept-Encoding the body is the file itself.
        let res = http.get(app.url(&url)).send().await.unwrap();
        assert!(res.headers().get(CONTENT_ENCODING).is_none());
        assert_eq!(res.bytes().await.unwrap(), original);
    }
}
