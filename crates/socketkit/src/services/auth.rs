//! Who may use a service that acts on the server (exec, recv): the peer's
//! Unix uid, a client certificate, or a token; and the penalty that makes
//! guessing slow.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::tls::Fingerprint;
use crate::transport::SocketAddress;

/// A token, kept only as its SHA-256 digest: comparing equal-length digests
/// in constant time leaks neither the token's content nor its length.
#[derive(Clone)]
pub struct Token([u8; 32]);

impl Token {
    /// The token for `secret` (surrounding whitespace, such as the newline
    /// at the end of a token file, is not part of it).
    pub fn new(secret: &str) -> Token {
        Token(Sha256::digest(secret.trim().as_bytes()).into())
    }

    fn matches(&self, offered: &str) -> bool {
        Token::new(offered).0.ct_eq(&self.0).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Which clients a server admits.
#[derive(Debug, Clone, Default)]
pub struct AuthPolicy {
    /// Accept clients that send this token (over TLS, or plaintext loopback
    /// for demos).
    pub token: Option<Token>,
    /// With mutual TLS: if set, only these client certificates, each
    /// optionally limited to a set of commands (OpenSSH's `command=`).
    pub authorized_certificates: Option<HashMap<Fingerprint, Option<BTreeSet<String>>>>,
    /// Admit clients that prove nothing, when no token is configured (the
    /// file receiver on a loopback address). Never for exec.
    pub allow_anonymous: bool,
}

/// An authenticated client.
#[derive(Debug, Clone)]
pub struct Identity {
    /// How it is named in logs and in `READY`.
    pub label: String,
    /// Commands this client alone is limited to, if any.
    pub allowed_commands: Option<BTreeSet<String>>,
}

/// What the connection itself proves, before any frame.
#[derive(Debug, Clone)]
pub(crate) enum Proof {
    /// A Unix peer of this uid.
    Uid(u32),
    /// A TLS client certificate the handshake verified.
    Certificate(Fingerprint),
    /// Nothing: a token is needed.
    Nothing,
}

impl AuthPolicy {
    /// What the greeting tells the client about authentication: what the
    /// connection proved, or that a token is needed (nothing at all for an
    /// anonymous-friendly server without a token).
    pub(crate) fn requirement(&self, proof: &Proof) -> Option<&'static str> {
        match proof {
            Proof::Uid(_) => Some("peer-uid"),
            Proof::Certificate(_) => Some("certificate"),
            Proof::Nothing if self.token.is_none() && self.allow_anonymous => None,
            Proof::Nothing => Some("token"),
        }
    }

    /// Decides on a client from what its connection proves and the token it
    /// offered. `Err` says why it is refused (for the log, not the client).
    pub(crate) fn admit(&self, proof: &Proof, token: Option<&str>) -> Result<Identity, String> {
        match proof {
            Proof::Uid(uid) => {
                let ours = current_uid();
                if *uid == ours {
                    Ok(Identity {
                        label: format!("uid {uid}"),
                        allowed_commands: None,
                    })
                } else {
                    Err(format!("peer uid {uid} is not this server's uid {ours}"))
                }
            }
            Proof::Certificate(fingerprint) => self.admit_certificate(fingerprint),
            Proof::Nothing => match (&self.token, token) {
                (Some(expected), Some(offered)) if expected.matches(offered) => Ok(Identity {
                    label: "token".to_owned(),
                    allowed_commands: None,
                }),
                (Some(_), Some(_)) => Err("wrong token".to_owned()),
                (Some(_), None) => Err("no token offered".to_owned()),
                (None, _) if self.allow_anonymous => Ok(Identity {
                    label: "anonymous".to_owned(),
                    allowed_commands: None,
                }),
                (None, _) => Err("no way to authenticate this connection".to_owned()),
            },
        }
    }

    fn admit_certificate(&self, fingerprint: &Fingerprint) -> Result<Identity, String> {
        let label = format!("certificate {fingerprint}");
        match &self.authorized_certificates {
            None => Ok(Identity {
                label,
                allowed_commands: None,
            }),
            Some(listed) => match listed.get(fingerprint) {
                Some(commands) => Ok(Identity {
                    label,
                    allowed_commands: commands.clone(),
                }),
                None => Err(format!("{label} is not in the authorized list")),
            },
        }
    }
}

/// Parses an authorized-clients file: one client certificate per line,
/// `sha256:HEX` optionally followed by the only commands it may run
/// (`sha256:ab12… uptime df`); `#` starts a comment.
pub fn parse_authorized_clients(
    text: &str,
) -> Result<HashMap<Fingerprint, Option<BTreeSet<String>>>, String> {
    let mut clients = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        let fingerprint: Fingerprint = first
            .parse()
            .map_err(|e: crate::Error| format!("line {}: {e}", number + 1))?;
        let commands: BTreeSet<String> = words.map(str::to_owned).collect();
        clients.insert(fingerprint, (!commands.is_empty()).then_some(commands));
    }
    Ok(clients)
}

/// This process's effective uid.
pub(crate) fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Failed attempts per source address, and the delay before answering the
/// next failure: 250 ms doubling to 5 s, forgotten after 10 minutes quiet.
#[derive(Debug, Default)]
pub(crate) struct Penalties {
    strikes: Mutex<HashMap<Option<IpAddr>, (u32, Instant)>>,
}

/// Remembered sources; beyond this the table is cleared rather than grown
/// (an attacker rotating addresses gets the base delay, never memory).
const MAX_TRACKED_SOURCES: usize = 10_000;
const FORGET_AFTER: Duration = Duration::from_secs(600);

impl Penalties {
    /// Records a failure from `peer` and returns how long to wait before
    /// answering it.
    pub(crate) fn strike(&self, peer: &SocketAddress) -> Duration {
        let source = peer.as_inet().map(|addr| addr.ip());
        let now = Instant::now();
        let mut strikes = self
            .strikes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if strikes.len() >= MAX_TRACKED_SOURCES {
            strikes.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
            if strikes.len() >= MAX_TRACKED_SOURCES {
                strikes.clear();
            }
        }
        let entry = strikes.entry(source).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let doublings = entry.0.saturating_sub(1).min(5);
        (Duration::from_millis(250) * 2u32.pow(doublings)).min(Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_content_ignoring_the_trailing_newline() {
        let policy = AuthPolicy {
            token: Some(Token::new("s3cret\n")),
            ..AuthPolicy::default()
        };
        assert!(policy.admit(&Proof::Nothing, Some("s3cret")).is_ok());
        assert!(policy.admit(&Proof::Nothing, Some("s3cre")).is_err());
        assert!(policy.admit(&Proof::Nothing, None).is_err());
        assert!(AuthPolicy::default()
            .admit(&Proof::Nothing, Some("x"))
            .is_err());
    }

    #[test]
    fn penalties_grow_per_source_and_stay_bounded() {
        let penalties = Penalties::default();
        let peer = SocketAddress::Inet("127.0.0.1:5000".parse().unwrap());
        let delays: Vec<_> = (0..8).map(|_| penalties.strike(&peer)).collect();
        assert_eq!(delays[0], Duration::from_millis(250));
        assert_eq!(delays[1], Duration::from_millis(500));
        assert_eq!(delays[7], Duration::from_secs(5));
        let other = SocketAddress::Inet("127.0.0.2:5000".parse().unwrap());
        assert_eq!(penalties.strike(&other), Duration::from_millis(250));
    }
}
