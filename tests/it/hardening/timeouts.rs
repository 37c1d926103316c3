//! Slow and idle clients over real TCP: a header that never ends, a body
//! that never arrives, an idle keep-alive connection, more connections than
//! the bound.

use std::time::Duration;

use ld_eaas::server::ServerLimits;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{closed_within, read_response, socket_addr};
use crate::support::helpers::{TestApp, spawn_app_with};

async fn app_with(limits: ServerLimits) -> TestApp {
    spawn_app_with(move |mut c| {
        c.server = limits;
        c
    })
    .await
}

fn limits() -> ServerLimits {
    ServerLimits {
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
        max_connections: 64,
    }
}

#[tokio::test]
async fn a_client_that_stalls_half_way_through_its_headers_is_cut_off() {
    let app = app_with(ServerLimits {
        header_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    let mut stream = TcpStream::connect(socket_addr(&app.address)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let closed = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("the half-sent request's connection is closed");
    assert!(
        closed >= Duration::from_millis(800),
        "closed after {closed:?}, before the header timeout"
    );

    // A client that finishes in time is served on the same server.
    let mut stream = TcpStream::connect(socket_addr(&app.address)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut stream, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = app_with(ServerLimits {
        idle_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    let mut stream = TcpStream::connect(socket_addr(&app.address)).await.unwrap();
    for _ in 0..2 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let answer = read_response(&mut stream, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            answer.status, 200,
            "kept alive between requests: {answer:?}"
        );
    }
    let closed = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("the idle connection is closed");
    assert!(
        closed >= Duration::from_millis(800),
        "closed after {closed:?}"
    );
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_in_the_envelope() {
    let app = app_with(ServerLimits {
        body_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    let mut stream = TcpStream::connect(socket_addr(&app.address)).await.unwrap();
    let head = format!(
        "PUT /api/v1/tenants/slow HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"display_name\":",
        app.api_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_response(&mut stream, Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.json()["error"]["code"], "request_timeout");
    assert!(
        closed_within(&mut stream, Duration::from_secs(3))
            .await
            .is_some(),
        "the connection is closed after a 408"
    );
    let (status, _) = app.api(reqwest::Method::GET, "/tenants/slow", None).await;
    assert_eq!(
        status,
        reqwest::StatusCode::NOT_FOUND,
        "nothing was written"
    );
}

#[tokio::test]
async fn connections_beyond_the_bound_wait_until_one_is_closed() {
    let app = app_with(ServerLimits {
        max_connections: 2,
        ..limits()
    })
    .await;
    let addr = socket_addr(&app.address);
    let first = TcpStream::connect(&addr).await.unwrap();
    let mut second = TcpStream::connect(&addr).await.unwrap();
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut second, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "within the bound: {answer:?}");

    let mut third = TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let waited = tokio::time::timeout(
        Duration::from_millis(800),
        read_response(&mut third, Duration::from_secs(5)),
    )
    .await;
    assert!(waited.is_err(), "a third connection is not served yet");

    drop(first);
    let answer = read_response(&mut third, Duration::from_secs(5))
        .await
        .expect("served once a slot is free");
    assert_eq!(answer.status, 200, "{answer:?}");
}
