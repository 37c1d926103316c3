//! Every error under `/api/v1` is our JSON envelope, whichever layer
//! answers it; browser paths keep their HTML pages.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};

use super::raw_request;
use crate::support::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn unknown_api_paths_and_the_api_root_answer_a_json_404() {
    let app = spawn_app().await;
    for path in ["/", "", "/nope", "/tenants", "/tenants/acme/nope/deeper"] {
        let (status, body) = app.api(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_error(&body, "not_found");
    }
    // Without a key the answer is still JSON.
    let res = app.client.get(app.url("/api/v1/")).send().await.unwrap();
    assert!(res.status().is_client_error());
    assert!(
        res.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    // A browser path keeps its page.
    let res = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(
        res.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn wrong_methods_oversized_bodies_and_wrong_media_types_answer_in_the_envelope() {
    let app = spawn_app().await;
    let (status, body) = app.api(Method::PATCH, "/tenants/acme", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_error(&body, "method_not_allowed");
    let res = app
        .client
        .post(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(res.headers().contains_key("allow"));
    assert_error(&res.json().await.unwrap(), "method_not_allowed");

    let huge = format!("{{\"display_name\": \"{}\"}}", "x".repeat(200 * 1024));
    let res = app
        .client
        .put(app.url("/api/v1/tenants/acme"))
        .bearer_auth(&app.api_key)
        .header(CONTENT_TYPE, "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&res.json().await.unwrap(), "payload_too_large");

    let res = app
        .client
        .put(app.url("/api/v1/tenants/acme"))
        .bearer_auth(&app.api_key)
        .header(CONTENT_TYPE, "text/plain")
        .body("{\"display_name\": \"Acme\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&res.json().await.unwrap(), "unsupported_media_type");
    let (status, _) = app.api(Method::GET, "/tenants/acme", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was written");
}

#[tokio::test]
async fn answers_the_http_parser_gives_on_its_own_carry_the_envelope() {
    let app = spawn_app().await;
    // A request line longer than the parser takes: 414.
    let long = format!(
        "GET /api/v1/tenants/{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(70_000)
    );
    let answer = raw_request(&app.address, long.as_bytes()).await;
    assert_eq!(answer.status, 414, "{answer:?}");
    assert_error(&answer.json(), "uri_too_long");

    // A negative Content-Length: 400.
    let answer = raw_request(
        &app.address,
        b"PUT /api/v1/tenants/acme HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_error(&answer.json(), "bad_request");
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/json")
    );

    // A path that is not valid percent-encoded UTF-8: 400 from our routes.
    let request = format!(
        "GET /api/v1/tenants/%FF%FE HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        app.api_key
    );
    let answer = raw_request(&app.address, request.as_bytes()).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_error(&answer.json(), "invalid_request");
}
