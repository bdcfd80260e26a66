//! The `get` HTTP client through the public API, against a canned origin:
//! a std `TcpListener` on loopback whose thread reads each request head and
//! answers with fixed bytes, so what `get` parses is exactly what a test
//! wrote. A response body arrives whole, a redirect is followed (and is
//! not, unless asked), and a response head over [`MAX_HEADER_BYTES`] is a
//! protocol error, never a short success.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use socketkit::client::http::{get, GetOptions, HttpUrl, Response, MAX_HEADER_BYTES};
use socketkit::ErrorKind;

/// Bound for anything a test waits on: generous, because the machine is
/// shared; a correct run takes milliseconds.
const PATIENCE: Duration = Duration::from_secs(30);

/// Starts the canned origin; it answers every connection (one request
/// each, then close) until the test process ends.
fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Ok(reader) = stream.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(reader);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // The rest of the head, up to its blank line.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim_end() != "" {
                line.clear();
            }
            let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
            let _ = stream.write_all(&answer(&path));
        }
    });
    addr
}

fn answer(path: &str) -> Vec<u8> {
    let close = "Connection: close\r\n";
    match path {
        "/start" => format!(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: /final\r\nContent-Length: 0\r\n{close}\r\n"
        )
        .into_bytes(),
        "/final" => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n{close}\r\narrived\n"
        )
        .into_bytes(),
        "/huge-head" => {
            let filler = "x".repeat(MAX_HEADER_BYTES + 1024);
            format!("HTTP/1.1 200 OK\r\nX-Filler: {filler}\r\nContent-Length: 2\r\n{close}\r\nok")
                .into_bytes()
        }
        _ => format!("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n{close}\r\n").into_bytes(),
    }
}

fn url(origin: SocketAddr, path: &str) -> HttpUrl {
    format!("http://{origin}{path}").parse().unwrap()
}

async fn fetch(url: &HttpUrl, options: &GetOptions) -> socketkit::Result<Response> {
    tokio::time::timeout(PATIENCE, get(url, options))
        .await
        .expect("an answer in time")
}

async fn body(response: &mut Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    body
}

#[tokio::test]
async fn a_redirect_is_followed_when_asked() {
    let origin = origin();
    let mut response = fetch(&url(origin, "/start"), &GetOptions::default())
        .await
        .unwrap();
    assert_eq!(response.head().status(), 301);
    assert_eq!(response.head().header("location"), Some("/final"));
    assert_eq!(body(&mut response).await, b"");

    let mut options = GetOptions::default();
    options.follow_redirects = true;
    let mut response = fetch(&url(origin, "/start"), &options).await.unwrap();
    assert_eq!(response.head().status(), 200);
    assert_eq!(response.url().to_string(), format!("http://{origin}/final"));
    assert_eq!(response.history().len(), 1);
    assert_eq!(response.history()[0].status(), 301);
    assert_eq!(body(&mut response).await, b"arrived\n");
    assert_eq!(response.received(), 8);
}

#[tokio::test]
async fn a_response_head_over_the_limit_is_a_protocol_error() {
    let origin = origin();
    let error = fetch(&url(origin, "/huge-head"), &GetOptions::default())
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Protocol, "{error:#}");
    assert!(error.is_protocol());
    // hyper's own error is the cause, boxed, not flattened into an
    // io::Error: the chain names what was wrong.
    let chain = format!("{error:#}");
    assert!(chain.contains("malformed response"), "{chain}");
    assert!(chain.contains("too large"), "{chain}");
}

#[tokio::test]
async fn nothing_listening_is_a_connection_error_with_its_cause() {
    // A port that was just free: bound, read back, released.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let error = fetch(&url(addr, "/"), &GetOptions::default())
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(error.is_connection_refused(), "{error:#}");
    assert!(!error.is_timeout() && !error.is_protocol(), "{error:#}");
}
