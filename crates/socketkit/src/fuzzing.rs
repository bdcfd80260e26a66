//! Entry points for the fuzz targets in `fuzz/` that need something the
//! public API does not show: the chat command parser and the chat bus
//! decoder. Everything else the targets reach through the public API.
//!
//! The module exists only under `--cfg fuzzing`, which `cargo fuzz` sets
//! for every crate it builds, so it is no part of socketkit's API and an
//! ordinary build never compiles it. (The alternative, a `#[doc(hidden)]`
//! public module, would ship fuzz hooks in every build and make crate
//! internals public-by-accident.) The checks here are the fuzz targets'
//! invariants: a failed one is a bug the fuzzer found.

use crate::services::chat::text::sanitize;
use crate::services::chat::{bus, command, hub::Hub, ChatConfig};

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

/// Feeds one bus payload to a fresh hub with one local member, as a
/// message from Redis would arrive. Panics only if the hub does.
pub fn chat_bus(payload: &[u8]) {
    let hub = Hub::new(ChatConfig::default());
    let _member = hub.join(Some("local"), false);
    bus::receive(&hub, "fuzz-local-node", payload);
}
