//! What chat text may contain: the sanitizer every line passes before it is
//! shown to anyone, and the rules for nicknames and room names.
//!
//! Terminal users read other people's bytes raw, so a line could carry
//! escape sequences that recolour, retitle or rewrite their terminal (ESC,
//! CSI, OSC, the C1 controls), ring the bell, or reorder text with bidi
//! overrides. [`sanitize`] removes whole sequences, not just the ESC byte, so
//! no half-sequence is left to print as garbage.

use std::fmt;

/// Longest nickname, in characters.
pub const MAX_NICK_CHARS: usize = 32;
/// Longest room name, in characters (without the leading `#`).
pub const MAX_ROOM_CHARS: usize = 32;

const ESC: char = '\u{1b}';
const BEL: char = '\u{7}';
/// The C1 forms of CSI, OSC/DCS/SOS/PM/APC and ST.
const C1_CSI: char = '\u{9b}';
const C1_ST: char = '\u{9c}';

/// Removes control characters and terminal escape sequences: C0 controls
/// (a tab becomes a space), DEL, C1 controls, complete ESC/CSI/OSC/DCS
/// sequences, and the Unicode bidi overrides and isolates. Trailing
/// whitespace goes too.
pub fn sanitize(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\t' => out.push(' '),
            ESC => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                _ => {}
            },
            C1_CSI => skip_csi(&mut chars),
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            c if is_unsafe(c) => {}
            c => out.push(c),
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// A line of chat text as anyone may see it: [`sanitize`]d, and `None`
/// when nothing but whitespace is left. Every line passes here, whether a
/// member typed it or a linked server sent it over the bus.
pub fn clean(input: &str) -> Option<String> {
    let line = sanitize(input);
    (!line.trim().is_empty()).then_some(line)
}

/// Skips a control sequence's parameters up to and including its final byte.
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            return;
        }
        if c.is_control() && c != ESC {
            return;
        }
    }
}

/// Skips an OSC/DCS-style string up to its terminator (BEL, ST or ESC \).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            BEL | C1_ST => return,
            ESC => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                return;
            }
            _ => {}
        }
    }
}

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Why a name or a chat command was refused; its `Display` is what the
/// member is told.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChatRefusal {
    /// An empty nickname.
    EmptyNick,
    /// A nickname over [`MAX_NICK_CHARS`] characters.
    NickTooLong,
    /// A nickname starting with a character commands and rooms use.
    NickStart,
    /// A nickname with characters outside the allowed set.
    NickChars,
    /// A room name that is empty, too long or has other characters.
    RoomName,
    /// Someone here or on a linked server has the nickname.
    NickTaken(String),
    /// `/join` of the room the member is in.
    AlreadyIn(String),
    /// No room for another room.
    TooManyRooms,
    /// `/msg` to a nickname no one has.
    NoSuchNick(String),
    /// A command with the wrong arguments: its usage.
    Usage(String),
    /// A command that does not exist.
    UnknownCommand(String),
}

impl fmt::Display for ChatRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatRefusal::EmptyNick => f.write_str("a nickname cannot be empty"),
            ChatRefusal::NickTooLong => {
                write!(f, "nicknames are at most {MAX_NICK_CHARS} characters")
            }
            ChatRefusal::NickStart => f.write_str("a nickname cannot start with # / ! * or -"),
            ChatRefusal::NickChars => {
                f.write_str("nicknames use letters, digits and - _ . [ ] { } | ^ ` only")
            }
            ChatRefusal::RoomName => write!(
                f,
                "room names are 1 to {MAX_ROOM_CHARS} letters, digits, - or _ (an optional # in front)"
            ),
            ChatRefusal::NickTaken(nick) => write!(f, "the nickname {nick} is taken"),
            ChatRefusal::AlreadyIn(room) => write!(f, "you are already in #{room}"),
            ChatRefusal::TooManyRooms => {
                f.write_str("too many rooms; join an existing one (/rooms lists them)")
            }
            ChatRefusal::NoSuchNick(nick) => write!(f, "no one called {nick} is here"),
            ChatRefusal::Usage(usage) => write!(f, "usage: {usage}"),
            ChatRefusal::UnknownCommand(name) => {
                write!(f, "unknown command /{name}; /help lists them")
            }
        }
    }
}

impl std::error::Error for ChatRefusal {}

/// Checks a nickname; `Err` says why it is refused.
pub fn check_nick(nick: &str) -> Result<(), ChatRefusal> {
    let count = nick.chars().count();
    if count == 0 {
        return Err(ChatRefusal::EmptyNick);
    }
    if count > MAX_NICK_CHARS {
        return Err(ChatRefusal::NickTooLong);
    }
    if nick.starts_with(['#', '/', '!', '*', '-']) {
        return Err(ChatRefusal::NickStart);
    }
    let allowed = |c: char| c.is_alphanumeric() || "-_.[]{}|^`".contains(c);
    if !nick.chars().all(allowed) {
        return Err(ChatRefusal::NickChars);
    }
    Ok(())
}

/// A room name without its `#`, checked; `Err` says why not.
pub fn check_room(room: &str) -> Result<&str, ChatRefusal> {
    let name = room.strip_prefix('#').unwrap_or(room);
    let valid_chars = name
        .chars()
        .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
    let count = name.chars().count();
    if count == 0 || count > MAX_ROOM_CHARS || !valid_chars {
        return Err(ChatRefusal::RoomName);
    }
    Ok(name)
}

/// The case-insensitive key of a nickname or room: `Alice` and `alice` are
/// the same person.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What no sanitized line may hold: a control character (C0, DEL, C1,
    /// so no ESC and no CSI either) or a bidi override/isolate/mark.
    fn forbidden(c: char) -> bool {
        is_unsafe(c)
    }

    proptest! {
        #[test]
        fn sanitized_text_holds_no_control_escape_or_bidi(input in any::<String>()) {
            let out = sanitize(&input);
            prop_assert!(!out.chars().any(forbidden), "{out:?}");
            prop_assert_eq!(out.trim_end(), out.as_str());
        }

        /// Escape-heavy input: the generic strategy rarely builds a whole
        /// sequence, so this one is made of sequence pieces.
        #[test]
        fn escape_sequences_never_survive(
            pieces in proptest::collection::vec(prop_oneof![
                Just("\u{1b}".to_owned()), Just("[".to_owned()), Just("]".to_owned()),
                Just("\u{9b}".to_owned()), Just("\u{9d}".to_owned()), Just("\u{7}".to_owned()),
                Just("\u{202e}".to_owned()), Just("\r\n".to_owned()), Just("\\".to_owned()),
                "[0-9;?]{0,3}", "[a-zA-Z ]{0,3}",
            ], 0..40)
        ) {
            let out = sanitize(&pieces.concat());
            prop_assert!(!out.chars().any(forbidden), "{out:?}");
        }

        #[test]
        fn sanitizing_twice_changes_nothing(input in any::<String>()) {
            let once = sanitize(&input);
            prop_assert_eq!(sanitize(&once), once);
        }
    }

    #[test]
    fn plain_text_passes_unchanged() {
        assert_eq!(sanitize("héllo wörld ✓ 日本"), "héllo wörld ✓ 日本");
    }

    #[test]
    fn escape_sequences_are_removed_whole() {
        assert_eq!(sanitize("a\u{1b}[31;1mred\u{1b}[0m b"), "ared b");
        assert_eq!(sanitize("x\u{1b}]0;pwned title\u{7}y"), "xy");
        assert_eq!(
            sanitize("x\u{1b}]8;;http://e\u{1b}\\link\u{1b}]8;;\u{1b}\\y"),
            "xlinky"
        );
        assert_eq!(sanitize("x\u{9b}2Jy\u{9d}title\u{9c}z"), "xyz");
        assert_eq!(sanitize("bell\u{7}\u{7} ok\u{1b}c"), "bell ok");
        assert_eq!(sanitize("cr\rlf\u{0}del\u{7f}"), "crlfdel");
    }

    #[test]
    fn bidi_overrides_go_and_tabs_become_spaces() {
        assert_eq!(sanitize("a\u{202e}cba\u{2066}\tb  "), "acba b");
    }

    #[test]
    fn nicknames() {
        assert!(check_nick("alice").is_ok());
        assert!(check_nick("Zoë_[away]").is_ok());
        assert!(check_nick(&"x".repeat(32)).is_ok());
        assert!(check_nick(&"x".repeat(33)).is_err());
        assert!(check_nick("two words").is_err());
        assert!(check_nick("#room").is_err());
        assert!(check_nick("").is_err());
    }

    #[test]
    fn room_names() {
        assert_eq!(check_room("#rust"), Ok("rust"));
        assert_eq!(check_room("rust-lang"), Ok("rust-lang"));
        assert!(check_room("#").is_err());
        assert!(check_room("a b").is_err());
    }
}
