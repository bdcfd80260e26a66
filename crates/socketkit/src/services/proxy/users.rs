//! Who may use a proxy: the `--users FILE` of name and argon2id password
//! hash pairs, the check of offered credentials (SOCKS5's RFC 1929
//! sub-negotiation, HTTP's `Proxy-Authorization: Basic`), and the hash
//! function behind `socketkit passwd`.
//!
//! A check costs the same whether or not the user exists (an unknown name
//! is verified against a dummy hash with the same parameters), runs on the
//! blocking pool (argon2id is tens of milliseconds of CPU and ~19 MiB by
//! design), a few at a time, and behind the per-source gate (`auth.rs`) that exec
//! uses: a failure is logged with the peer and the user and delays that
//! source's next attempt. Names and passwords never reach a log unescaped,
//! and passwords never reach one at all.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::super::auth::{Gate, StartupLimits, StartupSlot};
use super::super::exec::audit::escape;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::SocketAddress;

/// Longest user name and password: RFC 1929 carries each in at most 255
/// bytes, and HTTP Basic credentials are held to the same.
pub const MAX_CREDENTIAL: usize = 255;

/// The users of a proxy, from a `--users` file.
#[derive(Debug)]
pub struct Users {
    /// Name → PHC hash string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    hashes: HashMap<String, String>,
    /// Verified against for unknown names, so they take as long as known
    /// ones: made with the first user's parameters.
    dummy: String,
    /// Argon2 verifications running at once, each holding `m` KiB; more
    /// wait their turn rather than exhaust memory and CPU.
    verifying: Arc<Semaphore>,
    /// Connections authenticating at once, and failure penalties per source.
    gate: Gate,
}

/// Why credentials were not accepted. The client learns only that they
/// were not; the log gets the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// Unknown user or wrong password (which one is not said, on purpose).
    BadCredentials,
    /// The source failed recently and must wait before its next attempt.
    Penalised,
}

impl Users {
    /// Parses a users file: one `NAME:HASH` per line, HASH an argon2 PHC
    /// string as `socketkit passwd` prints; blank lines and lines starting
    /// with `#` are skipped. A bad line is an error naming `origin:LINE`.
    pub fn parse(text: &str, origin: &str) -> Result<Users> {
        let mut hashes = HashMap::new();
        let mut first_params = None;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |why: String| {
                Error::new(
                    ErrorKind::Config,
                    format!("{origin}:{}: {why}", number.saturating_add(1)),
                )
            };
            // The hash has no ':' (PHC strings use '$' and ','), so the
            // name is everything before the last one.
            let (name, hash) = line
                .rsplit_once(':')
                .ok_or_else(|| at("expected NAME:HASH".to_owned()))?;
            if name.is_empty() || name.len() > MAX_CREDENTIAL {
                return Err(at(format!(
                    "a user name must have 1 to {MAX_CREDENTIAL} bytes"
                )));
            }
            let parsed = PasswordHash::new(hash)
                .map_err(|e| at(format!("'{name}': not a password hash ({e})")))?;
            if parsed.algorithm != Algorithm::Argon2id.ident() {
                return Err(at(format!(
                    "'{name}': the hash is {}, not argon2id (hint: socketkit passwd {name})",
                    parsed.algorithm
                )));
            }
            let params = Params::try_from(&parsed)
                .map_err(|e| at(format!("'{name}': bad argon2 parameters ({e})")))?;
            first_params.get_or_insert(params);
            if hashes.insert(name.to_owned(), hash.to_owned()).is_some() {
                return Err(at(format!("user '{name}' is listed twice")));
            }
        }
        let params = first_params.ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!("{origin} lists no users (hint: socketkit passwd NAME >> {origin})"),
            )
        })?;
        let dummy = hash_with(b"no such user", params)?;
        let parallel = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(Users {
            hashes,
            dummy,
            verifying: Arc::new(Semaphore::new(parallel)),
            gate: Gate::new(StartupLimits::default()),
        })
    }

    /// Reads and parses a users file (see [`Users::parse`]).
    pub fn load(path: &Path) -> Result<Users> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::with_source(
                ErrorKind::Io,
                format!("cannot read users file {}", path.display()),
                e,
            )
        })?;
        Users::parse(&text, &path.display().to_string())
    }

    /// Caps the connections authenticating at once (default 32 per source,
    /// 256 in total, as exec's `--max-startups`).
    pub fn with_startup_limits(self, limits: StartupLimits) -> Users {
        Users {
            gate: Gate::new(limits),
            ..self
        }
    }

    /// How many users are listed.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no user is listed (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// A place among the connections authenticating now, or `None` when
    /// `peer`'s source or the server has as many as the limits allow.
    pub(crate) fn enter(&self, peer: &SocketAddress) -> Option<StartupSlot<'_>> {
        self.gate.enter(peer)
    }

    /// Checks `name` and `password` from `peer`: `Ok` admits, `Err` says
    /// why not; either way the outcome is logged (with the peer and the
    /// escaped name) and a failure penalises the source.
    pub async fn check(
        &self,
        peer: &SocketAddress,
        name: &str,
        password: &[u8],
    ) -> Result<(), Rejection> {
        let penalties = self.gate.penalties();
        if let Err(wait) = penalties.admit(peer) {
            info!(%peer, user = %escape(name), wait_ms = wait.as_millis() as u64, "proxy authentication refused: source is penalised for earlier failures");
            return Err(Rejection::Penalised);
        }
        let hash = self.hashes.get(name).unwrap_or(&self.dummy).clone();
        let known = self.hashes.contains_key(name);
        let ok = self.verify(hash, password.to_vec()).await && known;
        if ok {
            penalties.forgive(peer);
            return Ok(());
        }
        let delay = penalties.strike(peer);
        warn!(%peer, user = %escape(name), known_user = known, penalty_ms = delay.as_millis() as u64, "proxy authentication failed");
        Err(Rejection::BadCredentials)
    }

    /// Verifies `password` against `hash` on the blocking pool, a few at a
    /// time.
    async fn verify(&self, hash: String, password: Vec<u8>) -> bool {
        let Ok(turn) = self.verifying.clone().acquire_owned().await else {
            return false;
        };
        // The permit moves into the task: a client that gives up (the
        // deadline drops this future) does not free its turn before the
        // verification it started has finished.
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(&password, &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false)
    }
}

/// A new argon2id hash of `password` with a random salt and the crate's
/// recommended parameters (OWASP's: 19 MiB, 2 passes, 1 lane), as a PHC
/// string for a users file.
pub fn hash_password(password: &[u8]) -> Result<String> {
    hash_with(password, Params::default())
}

fn hash_with(password: &[u8], params: Params) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::new(ErrorKind::Config, format!("cannot hash the password: {e}")))
}

/// A users-file line for `name`: `NAME:HASH`. The name may not contain
/// `:` or a line break, and must fit RFC 1929.
pub fn users_line(name: &str, password: &[u8]) -> Result<String> {
    if name.is_empty()
        || name.len() > MAX_CREDENTIAL
        || name.contains([':', '\n', '\r'])
        || name.starts_with('#')
    {
        return Err(Error::new(
            ErrorKind::Config,
            format!("'{name}' cannot be a user name: 1 to {MAX_CREDENTIAL} bytes, no ':', no line break, not starting with '#'"),
        ));
    }
    if password.len() > MAX_CREDENTIAL {
        return Err(Error::new(
            ErrorKind::Config,
            format!("a password may have at most {MAX_CREDENTIAL} bytes (SOCKS5 carries no more)"),
        ));
    }
    Ok(format!("{name}:{}", hash_password(password)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters so the tests do not spend seconds hashing.
    fn quick_line(name: &str, password: &[u8]) -> String {
        let params = Params::new(256, 1, 1, None).unwrap();
        format!("{name}:{}", hash_with(password, params).unwrap())
    }

    #[tokio::test]
    async fn known_users_pass_and_everything_else_fails_and_is_penalised() {
        let text = format!(
            "# team\n\n{}\n{}\n",
            quick_line("alice", b"wonder"),
            quick_line("bob", b"builder")
        );
        let users = Users::parse(&text, "users").unwrap();
        assert_eq!(users.len(), 2);
        let peer = SocketAddress::Inet("127.0.0.1:5000".parse().unwrap());
        assert_eq!(users.check(&peer, "alice", b"wonder").await, Ok(()));
        assert_eq!(users.check(&peer, "bob", b"builder").await, Ok(()));
        assert_eq!(
            users.check(&peer, "alice", b"builder").await,
            Err(Rejection::BadCredentials)
        );
        let other = SocketAddress::Inet("127.0.0.2:5000".parse().unwrap());
        assert_eq!(
            users.check(&other, "carol", b"wonder").await,
            Err(Rejection::BadCredentials),
            "an unknown user fails like a wrong password"
        );
        assert_eq!(
            users.check(&peer, "alice", b"wonder").await,
            Err(Rejection::Penalised),
            "right after a failure the source waits"
        );
    }

    #[test]
    fn bad_files_name_the_line() {
        let error = Users::parse("alice\n", "f").unwrap_err();
        assert!(error.to_string().starts_with("f:1:"), "{error}");
        let error = Users::parse("# c\nalice:plain\n", "f").unwrap_err();
        assert!(error.to_string().starts_with("f:2:"), "{error}");
        assert!(Users::parse("# nobody\n", "f").is_err());
        let twice = format!("{}\n{}\n", quick_line("a", b"x"), quick_line("a", b"y"));
        assert!(Users::parse(&twice, "f").is_err());
    }

    #[test]
    fn users_lines_refuse_names_that_would_break_the_file() {
        assert!(users_line("a:b", b"x").is_err());
        assert!(users_line("", b"x").is_err());
        assert!(users_line("#x", b"x").is_err());
        assert!(users_line("a", &[b'x'; 256]).is_err());
    }
}
