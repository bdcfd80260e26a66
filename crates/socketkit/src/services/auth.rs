//! Who may use a service that acts on the server (exec, recv): the peer's
//! Unix uid, a client certificate, or a token; and the gate in front of that
//! decision: how many connections may be authenticating at once (per source
//! and in total, OpenSSH's MaxStartups as hard caps), and the per-source
//! penalty that makes guessing slow.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::exec::CommandList;
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
    pub authorized_certificates: Option<HashMap<Fingerprint, Option<CommandList>>>,
    /// Admit clients that prove nothing, when no token is configured (the
    /// file receiver on a loopback address). Never for exec.
    pub allow_anonymous: bool,
    /// How many connections may be authenticating at once.
    pub startups: StartupLimits,
}

/// Caps on connections that have not authenticated yet (greeted, but no
/// `READY` or refusal so far). A connection beyond either cap gets a `busy`
/// `ERROR` and is closed at once, so peers that never authenticate cannot
/// fill the server's connection slots. Unix-socket peers count as one
/// source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupLimits {
    /// From one source address. Default 32.
    pub per_source: usize,
    /// From all sources together. Default 256.
    pub total: usize,
}

/// `PER_SOURCE:TOTAL`, e.g. `32:256`; both at least 1.
impl std::str::FromStr for StartupLimits {
    type Err = crate::Error;

    fn from_str(text: &str) -> crate::Result<StartupLimits> {
        let invalid = || {
            crate::Error::new(
                crate::ErrorKind::Config,
                format!("'{text}' is not PER_SOURCE:TOTAL (two counts of at least 1, e.g. 32:256)"),
            )
        };
        let (per_source, total) = text.split_once(':').ok_or_else(invalid)?;
        let count = |n: &str| n.trim().parse::<usize>().ok().filter(|&n| n > 0);
        match (count(per_source), count(total)) {
            (Some(per_source), Some(total)) => Ok(StartupLimits { per_source, total }),
            _ => Err(invalid()),
        }
    }
}

impl Default for StartupLimits {
    fn default() -> StartupLimits {
        StartupLimits {
            per_source: 32,
            total: 256,
        }
    }
}

/// An authenticated client.
#[derive(Debug, Clone)]
pub struct Identity {
    /// How it is named in logs and in `READY`.
    pub label: String,
    /// Commands this client alone is limited to, if any.
    pub allowed_commands: Option<CommandList>,
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
    pub(crate) fn admit(
        &self,
        proof: &Proof,
        token: Option<&str>,
    ) -> std::result::Result<Identity, Unadmitted> {
        match proof {
            Proof::Uid(uid) => {
                let ours = current_uid();
                if *uid == ours {
                    Ok(Identity {
                        label: format!("uid {uid}"),
                        allowed_commands: None,
                    })
                } else {
                    Err(Unadmitted::ForeignUid { uid: *uid, ours })
                }
            }
            Proof::Certificate(fingerprint) => self.admit_certificate(fingerprint),
            Proof::Nothing => match (&self.token, token) {
                (Some(expected), Some(offered)) if expected.matches(offered) => Ok(Identity {
                    label: "token".to_owned(),
                    allowed_commands: None,
                }),
                (Some(_), Some(_)) => Err(Unadmitted::WrongToken),
                (Some(_), None) => Err(Unadmitted::NoToken),
                (None, _) if self.allow_anonymous => Ok(Identity {
                    label: "anonymous".to_owned(),
                    allowed_commands: None,
                }),
                (None, _) => Err(Unadmitted::NoMethod),
            },
        }
    }

    fn admit_certificate(
        &self,
        fingerprint: &Fingerprint,
    ) -> std::result::Result<Identity, Unadmitted> {
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
                None => Err(Unadmitted::UnlistedCertificate { label }),
            },
        }
    }
}

/// Why [`AuthPolicy::admit`] refused a client: for the server's log (the
/// client hears only that its credentials were not accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unadmitted {
    /// A Unix peer running as another user.
    ForeignUid { uid: u32, ours: u32 },
    /// A certificate not in the authorized list.
    UnlistedCertificate { label: String },
    /// A token that is not the server's.
    WrongToken,
    /// No token, where one is required.
    NoToken,
    /// Nothing this server accepts (no token configured, anonymous off).
    NoMethod,
}

impl fmt::Display for Unadmitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unadmitted::ForeignUid { uid, ours } => {
                write!(f, "peer uid {uid} is not this server's uid {ours}")
            }
            Unadmitted::UnlistedCertificate { label } => {
                write!(f, "{label} is not in the authorized list")
            }
            Unadmitted::WrongToken => f.write_str("wrong token"),
            Unadmitted::NoToken => f.write_str("no token offered"),
            Unadmitted::NoMethod => f.write_str("no way to authenticate this connection"),
        }
    }
}

/// Parses an authorized-clients file: one client certificate per line,
/// `sha256:HEX` optionally followed by the only commands it may run, as
/// shell words, each an allow-list entry (`sha256:ab12… uptime 'git status'`
/// admits `uptime …` and `git status …`); `#` starts a comment.
pub fn parse_authorized_clients(
    text: &str,
) -> crate::Result<HashMap<Fingerprint, Option<CommandList>>> {
    let mut clients = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let at_line = |e: crate::Error| {
            crate::Error::new(
                crate::ErrorKind::Config,
                format!("line {}: {e}", number.saturating_add(1)),
            )
        };
        // shell_words treats an unquoted `#` word as a comment, and keeps a
        // quoted one (`'grep #todo'`) as part of the entry.
        let words = shell_words::split(line.trim())
            .map_err(|e| at_line(crate::Error::new(crate::ErrorKind::Config, e.to_string())))?;
        let Some((first, entries)) = words.split_first() else {
            continue;
        };
        let fingerprint: Fingerprint = first.parse().map_err(at_line)?;
        let commands = CommandList::parse(entries).map_err(at_line)?;
        clients.insert(fingerprint, (!entries.is_empty()).then_some(commands));
    }
    Ok(clients)
}

/// This process's effective uid.
pub(crate) fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The source a connection is counted under: its IPv4 address, its IPv6
/// /64 (what one subscriber is usually given, so rotating through it gains
/// nothing), or `None` for a Unix-socket peer.
type Source = Option<IpAddr>;

fn source_of(peer: &SocketAddress) -> Source {
    peer.as_inet().map(|addr| match addr.ip() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    })
}

/// What stands in front of authentication for one service: startup slots
/// and failure penalties.
#[derive(Debug)]
pub(crate) struct Gate {
    limits: StartupLimits,
    /// Connections authenticating now: per source, and the total.
    startups: Mutex<(HashMap<Source, usize>, usize)>,
    penalties: Penalties,
}

/// A connection's place among those authenticating; dropping it (after
/// `READY`, a refusal, or a disconnect) frees it.
#[derive(Debug)]
pub(crate) struct StartupSlot<'a> {
    gate: &'a Gate,
    source: Source,
}

impl Gate {
    pub(crate) fn new(limits: StartupLimits) -> Gate {
        Gate {
            limits,
            startups: Mutex::new((HashMap::new(), 0)),
            penalties: Penalties::default(),
        }
    }

    /// A startup slot for `peer`, or `None` when its source or the server
    /// has as many connections authenticating as the limits allow.
    pub(crate) fn enter(&self, peer: &SocketAddress) -> Option<StartupSlot<'_>> {
        let source = source_of(peer);
        let mut guard = lock(&self.startups);
        let (per_source, total) = &mut *guard;
        let here = per_source.get(&source).copied().unwrap_or(0);
        if *total >= self.limits.total.max(1) || here >= self.limits.per_source.max(1) {
            return None;
        }
        // Both counts are below their caps, so neither can overflow.
        per_source.insert(source, here.saturating_add(1));
        *total = total.saturating_add(1);
        Some(StartupSlot { gate: self, source })
    }

    pub(crate) fn penalties(&self) -> &Penalties {
        &self.penalties
    }
}

impl Drop for StartupSlot<'_> {
    fn drop(&mut self) {
        let mut guard = lock(&self.gate.startups);
        let (per_source, total) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(count) = per_source.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_source.remove(&self.source);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The tables stay consistent at every step, so a panic elsewhere while
    // holding the lock leaves nothing half-done.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Failed attempts per source address. A failure is answered at once (a
/// held connection would tell a guesser nothing new and keep real users
/// out); instead the source's next attempt is refused until a delay has
/// passed: 250 ms after the first failure, doubling to 5 s, forgotten after
/// 10 minutes quiet. Only one attempt per source is judged per delay, so
/// parallel connections do not multiply the guessing rate.
#[derive(Debug, Default)]
pub(crate) struct Penalties {
    strikes: Mutex<HashMap<Source, Strikes>>,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    count: u32,
    last: Instant,
    /// No attempt from the source is judged before this.
    not_before: Instant,
}

/// Remembered sources; beyond this the table is cleared rather than grown
/// (an attacker rotating addresses gets the base delay, never memory).
const MAX_TRACKED_SOURCES: usize = 10_000;
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The penalty after `count` failures: 250 ms doubling, at most 5 s.
fn penalty(count: u32) -> Duration {
    let doublings = count.saturating_sub(1).min(5);
    Duration::from_millis(250)
        .saturating_mul(1 << doublings)
        .min(Duration::from_secs(5))
}

impl Penalties {
    /// May an attempt from `peer` be judged now? `Err` holds how long it
    /// must still wait. A source with failures behind it claims its next
    /// window here, so a second connection racing this one waits too.
    pub(crate) fn admit(&self, peer: &SocketAddress) -> Result<(), Duration> {
        let now = Instant::now();
        let mut strikes = lock(&self.strikes);
        let Some(entry) = strikes.get_mut(&source_of(peer)) else {
            return Ok(());
        };
        if now.duration_since(entry.last) >= FORGET_AFTER {
            return Ok(());
        }
        if let Some(wait) = entry
            .not_before
            .checked_duration_since(now)
            .filter(|w| !w.is_zero())
        {
            return Err(wait);
        }
        entry.not_before = now + penalty(entry.count);
        Ok(())
    }

    /// Records a failure from `peer`; returns how long its next attempt
    /// must wait.
    pub(crate) fn strike(&self, peer: &SocketAddress) -> Duration {
        let source = source_of(peer);
        let now = Instant::now();
        let mut strikes = lock(&self.strikes);
        if strikes.len() >= MAX_TRACKED_SOURCES {
            strikes.retain(|_, entry| now.duration_since(entry.last) < FORGET_AFTER);
            if strikes.len() >= MAX_TRACKED_SOURCES {
                strikes.clear();
            }
        }
        let entry = strikes.entry(source).or_insert(Strikes {
            count: 0,
            last: now,
            not_before: now,
        });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        let delay = penalty(entry.count);
        entry.not_before = now + delay;
        delay
    }

    /// `peer` authenticated: its source starts afresh.
    pub(crate) fn forgive(&self, peer: &SocketAddress) {
        lock(&self.strikes).remove(&source_of(peer));
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
        assert_eq!(penalties.admit(&peer), Ok(()), "no failures yet");
        let delays: Vec<_> = (0..8).map(|_| penalties.strike(&peer)).collect();
        assert_eq!(delays[0], Duration::from_millis(250));
        assert_eq!(delays[1], Duration::from_millis(500));
        assert_eq!(delays[7], Duration::from_secs(5));
        assert!(penalties.admit(&peer).is_err(), "inside the penalty");
        let other = SocketAddress::Inet("127.0.0.2:5000".parse().unwrap());
        assert_eq!(penalties.admit(&other), Ok(()));
        assert_eq!(penalties.strike(&other), Duration::from_millis(250));
        penalties.forgive(&peer);
        assert_eq!(penalties.admit(&peer), Ok(()));
    }

    #[test]
    fn authorized_clients_list_entries_as_shell_words() {
        let fingerprint = format!("sha256:{}", "ab".repeat(32));
        let text = format!("# comment\n{fingerprint} uptime 'git status' 'grep #todo' # note\n\n");
        let clients = parse_authorized_clients(&text).unwrap();
        let list = clients.values().next().unwrap().as_ref().unwrap();
        let argv = |w: &[&str]| w.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        assert!(list.admits(&argv(&["git", "status", "-s"])));
        assert!(!list.admits(&argv(&["git", "push"])));
        assert!(list.admits(&argv(&["uptime"])));
        assert!(list.admits(&argv(&["grep", "#todo", "notes"])));
        assert!(
            !list.admits(&argv(&["note"])),
            "a trailing comment is no entry"
        );
        let error =
            parse_authorized_clients(&format!("{fingerprint} ls\n{fingerprint} sh\n")).unwrap_err();
        assert!(error.to_string().starts_with("line 2:"), "{error}");
        let bare = parse_authorized_clients(&format!("{fingerprint}\n")).unwrap();
        assert!(
            bare.values().next().unwrap().is_none(),
            "no list: any command"
        );
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source_and_mapped_ipv4_is_ipv4() {
        let source = |addr: &str| source_of(&SocketAddress::Inet(addr.parse().unwrap()));
        assert_eq!(
            source("[2001:db8:1:2:aaaa::1]:1"),
            source("[2001:db8:1:2:bbbb::9]:2")
        );
        assert_ne!(source("[2001:db8:1:2::1]:1"), source("[2001:db8:1:3::1]:1"));
        assert_eq!(source("[::ffff:127.0.0.1]:1"), source("127.0.0.1:2"));
        assert_ne!(source("127.0.0.1:1"), source("127.0.0.2:1"));
    }

    #[test]
    fn startup_slots_are_capped_per_source_and_in_total() {
        let gate = Gate::new(StartupLimits {
            per_source: 2,
            total: 3,
        });
        let a = SocketAddress::Inet("127.0.0.1:1".parse().unwrap());
        let b = SocketAddress::Inet("127.0.0.2:1".parse().unwrap());
        let c = SocketAddress::Inet("127.0.0.3:1".parse().unwrap());
        let first = gate.enter(&a).unwrap();
        let _second = gate.enter(&a).unwrap();
        assert!(gate.enter(&a).is_none(), "per-source cap");
        let _third = gate.enter(&b).unwrap();
        assert!(gate.enter(&c).is_none(), "total cap");
        drop(first);
        assert!(gate.enter(&c).is_some(), "a freed slot is reused");
    }
}
