//! The chat sanitizer on arbitrary text: its output holds no control
//! character (C0, DEL, C1, so no ESC and no escape sequence), no bidi
//! override or isolate, no trailing whitespace, and sanitizing it again
//! changes nothing. The name checks accept only what sanitizing keeps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketkit::services::chat::text::{check_nick, check_room, fold, sanitize};

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let clean = sanitize(&text);
    for c in clean.chars() {
        assert!(!c.is_control(), "control {c:?} in {clean:?}");
        assert!(!is_bidi_control(c), "bidi {c:?} in {clean:?}");
    }
    assert_eq!(clean.trim_end(), clean, "trailing whitespace");
    assert_eq!(sanitize(&clean), clean, "sanitizing twice");

    if check_nick(&text).is_ok() {
        assert_eq!(sanitize(&text), text, "a valid nickname is clean");
        let _ = fold(&text);
    }
    if let Ok(room) = check_room(&text) {
        assert_eq!(sanitize(room), room, "a valid room name is clean");
        assert!(check_room(room).is_ok(), "without its # still valid");
    }
});
