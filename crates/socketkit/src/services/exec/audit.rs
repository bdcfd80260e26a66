//! The audit trail: one `socketkit::audit` line per command, however its
//! session ends, with every field a client could influence escaped so no
//! argv, name or path can forge a line or paint the operator's terminal.

use std::fmt;

use tokio::time::Instant;
use tracing::info;

use super::process::Outcome;
use crate::protocol::exec::Run;
use crate::transport::SocketAddress;

/// A field for a log line: quoted, with newlines, control characters,
/// escape sequences, bidi overrides and quotes escaped (Rust's `Debug`
/// string form). The only way client-supplied text reaches exec's logs.
pub(crate) struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// `text` as an escaped log field.
pub(crate) fn escape(text: &str) -> Escaped<'_> {
    Escaped(text)
}

/// The command a request runs, each word escaped: `"sh" "-c" "line"`.
pub(crate) fn command(request: &Run) -> String {
    let words: Vec<&str> = match (&request.argv, &request.shell) {
        (Some(argv), _) => argv.iter().map(String::as_str).collect(),
        (None, Some(line)) => vec!["sh", "-c", line],
        (None, None) => Vec::new(),
    };
    let escaped: Vec<String> = words.iter().map(|w| escape(w).to_string()).collect();
    escaped.join(" ")
}

/// The audit record of one started command. [`Audit::finished`] writes the
/// full line; if the session ends first (dropped, aborted at the drain
/// deadline, unwound by a panic), `Drop` writes one saying so.
pub(super) struct Audit {
    peer: String,
    identity: String,
    command: String,
    pid: u32,
    started: Instant,
    written: bool,
}

impl Audit {
    pub(super) fn new(peer: &SocketAddress, identity: &str, request: &Run, pid: u32) -> Audit {
        Audit {
            peer: peer.to_string(),
            identity: identity.to_owned(),
            command: command(request),
            pid,
            started: Instant::now(),
            written: false,
        }
    }

    /// Writes the line for a command whose supervision ran to its end.
    pub(super) fn finished(mut self, outcome: &Outcome) {
        self.write(Some(outcome));
        self.written = true;
    }

    /// The one audit line; without an outcome, the session was cut short.
    fn write(&self, outcome: Option<&Outcome>) {
        let exit = outcome.map(|o| &o.exit);
        info!(
            target: "socketkit::audit",
            peer = %escape(&self.peer),
            identity = %escape(&self.identity),
            command = %self.command,
            pid = self.pid,
            exit = ?exit.and_then(|e| e.code),
            signal = ?exit.and_then(|e| e.signal_name.as_deref()),
            timed_out = exit.is_some_and(|e| e.timed_out),
            truncated = exit.is_some_and(|e| e.truncated),
            secs = exit.map_or(self.started.elapsed().as_secs_f64(), |e| e.duration_ms as f64 / 1000.0),
            bytes_out = outcome.map_or(0, |o| o.bytes_out),
            client_gone = outcome.is_some_and(|o| o.client_gone.is_some()),
            "exec command {}",
            if outcome.is_some() { "finished" } else { "killed: its session was aborted" }
        );
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        if !self.written {
            self.write(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_control_character_survives_escaping() {
        let hostile = "x\n2026-01-01 INFO forged\r\u{1b}[2J\u{7}\u{9b}\u{202e}\"";
        let field = escape(hostile).to_string();
        assert!(!field.chars().any(|c| c.is_control()), "{field}");
        assert!(!field.contains('\u{202e}'), "{field}");
        assert_eq!(
            field.matches('"').count(),
            3,
            "only the quotes around it and one escaped: {field}"
        );
        let run = Run {
            argv: Some(vec!["echo".to_owned(), "a\nb".to_owned()]),
            ..serde_json::from_str("{}").unwrap()
        };
        assert_eq!(command(&run), r#""echo" "a\nb""#);
    }
}
