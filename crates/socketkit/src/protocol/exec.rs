//! The control messages of remote exec, as PROTOCOL.md defines them. Each is
//! the JSON body of one control frame; unknown fields are ignored so later
//! versions can add some.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// `HELLO` from the server: the greeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello {
    /// Protocol version spoken.
    pub protocol: u32,
    /// Implementation name and version.
    pub server: String,
    /// The service: `"exec"`.
    pub service: String,
    /// What the client must prove or has proven: `token`, `certificate`, `peer-uid`.
    pub auth: Vec<String>,
    /// Whether `RUN` may ask for a shell line.
    pub shell: bool,
}

/// `HELLO` from the client: its version and, when asked for, its token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// Protocol version spoken.
    pub protocol: u32,
    /// Implementation name and version.
    pub client: String,
    /// The shared secret, when the server's `auth` lists `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Never prints the token.
impl fmt::Debug for ClientHello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHello")
            .field("protocol", &self.protocol)
            .field("client", &self.client)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `READY`: authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// Who the server took the client to be.
    pub identity: String,
}

/// `RUN`: a command to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Program and arguments, run without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// A command line for `/bin/sh -c`, if the server allows shells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// A directory relative to the server's working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Extra environment variables (the server allows only some names).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Whether standard input will be sent; `false` closes it at once.
    #[serde(default = "default_true")]
    pub stdin: bool,
}

fn default_true() -> bool {
    true
}

impl Run {
    /// What the command is, for logs and errors.
    pub fn describe(&self) -> String {
        match (&self.argv, &self.shell) {
            (Some(argv), _) => format!("{argv:?}"),
            (None, Some(line)) => format!("sh -c {line:?}"),
            (None, None) => "(nothing)".to_owned(),
        }
    }
}

/// `STARTED`: the command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// Process id, which is also the process group id.
    pub pid: u32,
}

/// `SIGNAL`: a signal for the command's process group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalRequest {
    /// `INT`, `TERM` or `HUP`.
    pub signal: String,
}

/// `EXIT`: how the command ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit status, if it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// The signal's name without `SIG` (`KILL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_name: Option<String>,
    /// Wall-clock run time.
    pub duration_ms: u64,
    /// The server's time limit ended the command.
    #[serde(default, skip_serializing_if = "is_false")]
    pub timed_out: bool,
    /// The server's output limit was reached and the command killed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The largest signal number a report may name (Linux's `SIGRTMAX`).
pub const MAX_SIGNAL: i32 = 64;

impl Exit {
    /// The status a shell would report: the code, or 128 + the signal.
    /// `None` for a report no process could produce (a code outside
    /// 0..=255, a signal outside 1..=[`MAX_SIGNAL`], neither): a peer's
    /// numbers are checked, never trusted into arithmetic.
    pub fn shell_status(&self) -> Option<u8> {
        match (self.code, self.signal) {
            (Some(code), _) => u8::try_from(code).ok(),
            (None, Some(signal)) if (1..=MAX_SIGNAL).contains(&signal) => {
                u8::try_from(signal).ok()?.checked_add(128)
            }
            (None, _) => None,
        }
    }
}

/// The `kind` of an `ERROR` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// Malformed or unexpected frame; the connection closes.
    Protocol,
    /// Unsupported protocol version; the connection closes.
    Version,
    /// Authentication failed; the connection closes.
    Auth,
    /// Not allowed by the server's policy; the connection stays.
    Denied,
    /// Too many commands running; the connection stays.
    Busy,
    /// The program could not be started; the connection stays.
    Spawn,
    /// A failure on the server; the connection closes.
    Internal,
    /// Transfer: not a plain, safe file name.
    Name,
    /// Transfer: the file exists and the receiver does not overwrite.
    Exists,
    /// Transfer: over the receiver's per-file limit.
    TooLarge,
    /// Transfer: not enough free space.
    NoSpace,
    /// Transfer: sizes or hashes differ.
    Mismatch,
    /// Transfer: the receiver could not write.
    Io,
    /// A kind this version does not know.
    #[serde(other)]
    Unknown,
}

impl Refusal {
    /// Whether the connection can carry another `RUN` after this error.
    pub fn keeps_connection(self) -> bool {
        !matches!(
            self,
            Refusal::Protocol
                | Refusal::Version
                | Refusal::Auth
                | Refusal::Internal
                | Refusal::Unknown
        )
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Refusal::Protocol => "protocol error",
            Refusal::Version => "unsupported protocol version",
            Refusal::Auth => "authentication failed",
            Refusal::Denied => "not allowed",
            Refusal::Busy => "server busy",
            Refusal::Spawn => "cannot start the command",
            Refusal::Internal => "server error",
            Refusal::Name => "unsafe file name",
            Refusal::Exists => "file exists",
            Refusal::TooLarge => "file too large",
            Refusal::NoSpace => "not enough space",
            Refusal::Mismatch => "verification failed",
            Refusal::Io => "write failed",
            Refusal::Unknown => "error",
        };
        f.write_str(text)
    }
}

/// `ERROR`: a refusal or failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// What kind of error.
    pub kind: Refusal,
    /// A description for people.
    pub message: String,
    /// How long to wait before trying again (`auth` refusals), in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// `kind: message`, as a client reports the server's refusal.
impl fmt::Display for ErrorMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// A client's error for a server's `ERROR` carries this as its cause, so a
/// caller can read the refusal's kind back (`Error::find_source`).
impl std::error::Error for ErrorMessage {}

impl ErrorMessage {
    /// An error of `kind` explained by `message`.
    pub fn new(kind: Refusal, message: impl Into<String>) -> ErrorMessage {
        ErrorMessage {
            kind,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_defaults_and_unknown_fields() {
        let run: Run = serde_json::from_str(r#"{"argv":["ls"],"future":1}"#).unwrap();
        assert_eq!(run.argv, Some(vec!["ls".to_owned()]));
        assert!(run.stdin && run.env.is_empty() && run.shell.is_none());
        let error: ErrorMessage =
            serde_json::from_str(r#"{"kind":"martian","message":"?"}"#).unwrap();
        assert_eq!(error.kind, Refusal::Unknown);
    }

    #[test]
    fn exit_numbers_from_a_peer_are_range_checked() {
        let status = |code: Option<i32>, signal: Option<i32>| {
            Exit {
                code,
                signal,
                ..Exit::default()
            }
            .shell_status()
        };
        assert_eq!(status(Some(3), None), Some(3));
        assert_eq!(status(None, Some(9)), Some(137));
        assert_eq!(status(None, Some(MAX_SIGNAL)), Some(192));
        assert_eq!(status(None, Some(i32::MAX)), None);
        assert_eq!(status(None, Some(0)), None);
        assert_eq!(status(None, Some(-1)), None);
        assert_eq!(status(Some(256), None), None);
        assert_eq!(status(Some(-1), None), None);
        assert_eq!(status(None, None), None);
    }

    #[test]
    fn tokens_never_reach_debug_output() {
        let hello = ClientHello {
            protocol: 1,
            client: "t".into(),
            token: Some("s3cret".into()),
        };
        assert!(!format!("{hello:?}").contains("s3cret"));
    }
}
