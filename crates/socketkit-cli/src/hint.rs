//! Hints a command attaches to a library error because it knows which of
//! its flags would have changed the outcome. The library's messages never
//! name a flag (a library user has none); `main`'s report prints the hint
//! after the error, on the same line, as it does for the hints it derives
//! from the error's predicates.

use std::fmt;

/// A library error and the hint for it. Prints as the error itself, with
/// the same causes, so wrapping changes nothing but the hint.
#[derive(Debug)]
pub struct Hinted {
    error: socketkit::Error,
    hint: &'static str,
}

impl Hinted {
    /// The hint to print after the error.
    pub fn hint(&self) -> &'static str {
        self.hint
    }
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for Hinted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

/// For a client whose server asked for a token it did not give.
pub const TOKEN_HINT: &str = "the server asks for a token: pass it with --token-file FILE";

/// `error` with `hint` when `applies`, else `error` as it is.
pub fn hint_if(applies: bool, error: socketkit::Error, hint: &'static str) -> anyhow::Error {
    if applies {
        Hinted { error, hint }.into()
    } else {
        error.into()
    }
}

/// The server's refusal of a request, if `error` is one, and its kind.
pub fn refusal(error: &socketkit::Error) -> Option<socketkit::protocol::exec::Refusal> {
    error
        .find_source::<socketkit::protocol::exec::ErrorMessage>()
        .map(|message| message.kind)
}
