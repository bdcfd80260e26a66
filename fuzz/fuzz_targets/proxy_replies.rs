//! The proxy clients' reply parsers (SOCKS5 greeting, RFC 1929 and
//! CONNECT replies; the HTTP CONNECT response head) on arbitrary bytes
//! from a proxy: every handshake ends in success or a typed error, never
//! a panic or a wait, and no status line shown carries control characters.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|reply: &[u8]| {
    socketkit::fuzzing::proxy_replies(reply);
});
