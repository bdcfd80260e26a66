//! Parsing one line of user input into what it asks for.

/// What a line asks for. Borrowed from the (already sanitized) line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    /// Say this in the room (a plain line, or `//text` for a line that
    /// starts with `/`).
    Say(&'a str),
    /// `/me ACTION`.
    Me(&'a str),
    /// `/nick NAME`.
    Nick(&'a str),
    /// `/join ROOM`.
    Join(&'a str),
    /// `/msg NICK TEXT`.
    Msg(&'a str, &'a str),
    /// `/rooms`.
    Rooms,
    /// `/who`.
    Who,
    /// `/help`.
    Help,
    /// `/quit [MESSAGE]`.
    Quit(Option<&'a str>),
    /// A known command used wrongly: its usage line.
    Usage(&'static str),
    /// `/something` we do not know.
    Unknown(&'a str),
}

/// The `/help` text, one line per command.
pub(crate) const HELP: &[&str] = &[
    "Commands:",
    "  /nick NAME       change your nickname (up to 32 letters, digits, - _ . [ ] { } | ^ `)",
    "  /join ROOM       leave this room for ROOM (made if new)",
    "  /rooms           list rooms and how many are in each",
    "  /who             who is in this room",
    "  /me ACTION       say that you do something",
    "  /msg NICK TEXT   private message",
    "  /help            this list",
    "  /quit [MESSAGE]  leave",
    "  //text           say a line that starts with /",
];

pub(crate) fn parse(line: &str) -> Command<'_> {
    let Some(rest) = line.strip_prefix('/') else {
        return Command::Say(line);
    };
    if rest.starts_with('/') {
        return Command::Say(rest);
    }
    let (name, args) = match rest.split_once(' ') {
        Some((name, args)) => (name, args.trim()),
        None => (rest, ""),
    };
    let one_word = (!args.is_empty() && !args.contains(' ')).then_some(args);
    match (name.to_ascii_lowercase().as_str(), args) {
        ("nick", _) => one_word.map_or(Command::Usage("/nick NAME"), Command::Nick),
        ("join", _) => one_word.map_or(Command::Usage("/join ROOM"), Command::Join),
        ("rooms", _) => Command::Rooms,
        ("who", _) => Command::Who,
        ("help", _) => Command::Help,
        ("me", "") => Command::Usage("/me ACTION"),
        ("me", action) => Command::Me(action),
        ("msg", args) => match args.split_once(' ') {
            Some((nick, text)) if !text.trim().is_empty() => Command::Msg(nick, text.trim()),
            _ => Command::Usage("/msg NICK TEXT"),
        },
        ("quit", "") => Command::Quit(None),
        ("quit", message) => Command::Quit(Some(message)),
        _ => Command::Unknown(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_commands() {
        assert_eq!(parse("hello"), Command::Say("hello"));
        assert_eq!(parse("//slash"), Command::Say("/slash"));
        assert_eq!(parse("/nick bob"), Command::Nick("bob"));
        assert_eq!(parse("/NICK bob"), Command::Nick("bob"));
        assert_eq!(parse("/nick"), Command::Usage("/nick NAME"));
        assert_eq!(parse("/nick two words"), Command::Usage("/nick NAME"));
        assert_eq!(parse("/join #rust"), Command::Join("#rust"));
        assert_eq!(parse("/me waves"), Command::Me("waves"));
        assert_eq!(parse("/msg bob hi there"), Command::Msg("bob", "hi there"));
        assert_eq!(parse("/msg bob"), Command::Usage("/msg NICK TEXT"));
        assert_eq!(parse("/quit"), Command::Quit(None));
        assert_eq!(
            parse("/quit gone fishing"),
            Command::Quit(Some("gone fishing"))
        );
        assert_eq!(parse("/frobnicate"), Command::Unknown("frobnicate"));
        assert_eq!(parse("/who"), Command::Who);
        assert_eq!(parse("/rooms"), Command::Rooms);
        assert_eq!(parse("/help"), Command::Help);
    }
}
