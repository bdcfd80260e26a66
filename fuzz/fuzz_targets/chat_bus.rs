//! The chat bus decoder: an arbitrary payload, as if published on the
//! Redis channel by another node, applied to a hub with a local member.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    socketkit::fuzzing::chat_bus(payload);
});
