//! Entry points for the fuzz targets in `fuzz/` that need something the
//! public API does not show: the chat command parser, the chat bus
//! decoder, the proxy clients' reply parsers, and what the HTTP proxy makes of a request head. Everything else the targets reach through the public API.
//!
//! The module exists only under `--cfg fuzzing`, which `cargo fuzz` sets
//! for every crate it builds, so it is no part of socketkit's API and an
//! ordinary build never compiles it. (The alternative, a `#[doc(hidden)]`
//! public module, would ship fuzz hooks in every build and make crate
//! internals public-by-accident.) The checks here are the fuzz targets'
//! invariants: a failed one is a bug the fuzzer found.

use std::future::Future;

use crate::services::chat::text::sanitize;
use crate::services::chat::{bus, command, hub::Hub, participant::Participant, ChatConfig};

/// Parses one chat input line as a member's line is handled: sanitized,
/// then parsed into a command. Panics if the parse breaks its invariants.
pub fn chat_command(line: &str) {
    let line = sanitize(line);
    match command::parse(&line) {
        command::Command::Say(text) => {
            assert!(line.ends_with(text), "Say({text:?}) is a tail of {line:?}");
        }
        command::Command::Nick(word) | command::Command::Join(word) => {
            assert!(
                !word.is_empty() && !word.contains(' '),
                "one word: {word:?}"
            );
        }
        command::Command::Msg(nick, text) => {
            assert!(
                !nick.is_empty() && !text.trim().is_empty(),
                "{nick:?} {text:?}"
            );
        }
        command::Command::Me(action) => assert!(!action.is_empty()),
        command::Command::Quit(Some(message)) => assert!(!message.is_empty()),
        command::Command::Unknown(name) => {
            assert!(line.starts_with('/') && line.contains(name), "{name:?}");
        }
        _ => {}
    }
}

/// Decodes one bus payload as if another node published it and, if it
/// passes, applies it to a fresh hub with one local member: whatever that
/// member is then told renders as terminal lines free of control characters
/// (the line's own `\r\n` aside). A forged payload must never reach a
/// terminal as escape sequences or a fake server line.
pub fn chat_bus(payload: &[u8]) {
    let Ok(decoded) = bus::decode(payload) else {
        return;
    };
    let hub = std::sync::Arc::new(Hub::new(ChatConfig::default()));
    let member = hub.join(Some("local"), false);
    let (_participant, mut inbox) = Participant::new(hub.clone(), member);
    let envelope = decoded.envelope;
    hub.apply_remote(&envelope.node, envelope.wire);
    for event in inbox.take_now() {
        let text = event.text();
        let line = text.strip_suffix(b"\r\n").unwrap_or(text);
        let line = String::from_utf8_lossy(line);
        assert!(
            !line.chars().any(char::is_control),
            "a control character reaches a terminal: {line:?}"
        );
    }
}

/// Runs the SOCKS5 and HTTP `CONNECT` client handshakes against a proxy
/// whose every reply byte is `reply` (then the end of the stream): each
/// ends in success or a typed error, never a panic, and an HTTP status
/// line shown to the user has no control characters. The reads come from
/// memory, so one poll runs the handshakes to the end.
pub fn proxy_replies(reply: &[u8]) {
    let mut handshakes = std::pin::pin!(crate::transport::proxy::fuzz_handshakes(reply));
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        handshakes.as_mut().poll(&mut context).is_ready(),
        "an in-memory handshake waited"
    );
}

/// What the HTTP proxy does with one request head, without a socket:
/// `data` is a method line's target, a newline, then `Name: value` header
/// lines. The destination is taken as CONNECT and as an absolute-form GET
/// would take it, `Proxy-Authorization` decoded, and the request rewritten
/// for the origin; the rewrite must leave no hop-by-hop header, none the
/// client's `Connection` named, one `Host`, our `Via` last, and an
/// origin-form target.
pub fn http_proxy_head(data: &[u8]) {
    use crate::services::proxy::http::{basic_credentials, destination, outgoing};
    use hyper::header::{self, HeaderName, HeaderValue};
    use hyper::{Method, Request, Uri};

    let (target, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let mut builder = Request::builder().uri(uri);
    for line in rest.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        builder = builder.header(name, value);
    }
    let Ok(mut request) = builder.body(()) else {
        return;
    };
    if let Some(value) = request.headers().get(header::PROXY_AUTHORIZATION) {
        if let Some((name, password)) = basic_credentials(value) {
            assert!(name.len() <= 255 && password.len() <= 255);
        }
    }
    *request.method_mut() = Method::CONNECT;
    if let Ok(to) = destination(&request) {
        assert_ne!(to.port, 0);
    }
    *request.method_mut() = Method::GET;
    let Ok(to) = destination(&request) else {
        return;
    };
    assert_ne!(to.port, 0);
    let named: Vec<String> = request
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let Ok(sent) = outgoing(request, &to) else {
        return;
    };
    let headers = sent.headers();
    for gone in [
        "connection",
        "proxy-connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
    ] {
        assert!(!headers.contains_key(gone), "{gone} forwarded");
    }
    for name in &named {
        if name != "host" && name != "via" {
            assert!(
                !headers.contains_key(name.as_str()),
                "{name} named by Connection, forwarded"
            );
        }
    }
    assert_eq!(headers.get_all(header::HOST).iter().count(), 1);
    let via = headers.get_all(header::VIA).iter().last();
    assert!(via.is_some_and(|v| v.as_bytes().ends_with(b" socketkit")));
    assert!(sent.uri().scheme().is_none() && sent.uri().authority().is_none());
}
