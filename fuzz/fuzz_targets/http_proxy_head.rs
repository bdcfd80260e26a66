//! The HTTP proxy's handling of a request head on arbitrary bytes: the
//! destination of CONNECT and absolute-form targets, Basic credentials,
//! and the request rewritten for the origin (see
//! `socketkit::fuzzing::http_proxy_head` for the invariants checked).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    socketkit::fuzzing::http_proxy_head(data);
});
