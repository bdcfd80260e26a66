//! The chat command parser on arbitrary lines, after the sanitizer as a
//! member's lines are; the invariants are checked in
//! `socketkit::fuzzing::chat_command`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &str| {
    socketkit::fuzzing::chat_command(line);
});
