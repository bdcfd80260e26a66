//! Entry points for the fuzz targets in `fuzz/` that need something the
//! public API does not show: the chat command parser, the chat bus
//! decoder and the proxy clients' reply parsers. Everything else the targets reach through the public API.
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
