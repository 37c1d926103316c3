//! Hardening: slow and idle clients are cut off, every API error is JSON
//! whatever layer answers, text Postgres cannot store is refused with the
//! field named, the server rides out a Postgres outage, and property tests
//! for ids, keys, name templates and sealing.

mod envelope;
mod properties;
mod restart;
mod timeouts;
mod validation;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// The address (`host:port`) of an app URL like `http://127.0.0.1:1234`.
pub fn socket_addr(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Sends `request` as is and reads one answer (the server closes or the
/// body's Content-Length is reached).
pub async fn raw_request(base: &str, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(socket_addr(base)).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_response(&mut stream, Duration::from_secs(10))
        .await
        .expect("an answer")
}

/// Reads one HTTP/1.1 answer with a Content-Length (or up to EOF); `None`
/// when the connection closes before a whole head arrived.
pub async fn read_response(stream: &mut TcpStream, limit: Duration) -> Option<RawResponse> {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length = head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            let body_start = end + 4;
            let complete = length.is_some_and(|len| buf.len() >= body_start + len);
            if complete {
                let len = length.unwrap_or(0);
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                let body = String::from_utf8_lossy(&buf[body_start..body_start + len]).into_owned();
                return Some(RawResponse { status, head, body });
            }
        }
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("the server answered in time");
        match read {
            Ok(0) | Err(_) => {
                let end = find(&buf, b"\r\n\r\n")?;
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                let body = String::from_utf8_lossy(&buf[end + 4..]).into_owned();
                return Some(RawResponse { status, head, body });
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Waits until the peer closes the connection; how long that took, or
/// `None` if it was still open after `limit`.
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(started + limit, stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}
