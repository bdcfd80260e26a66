//! `check`: is anything listening? The `connect_ex` of Python's socket
//! module, for many targets at once, and the `HOST:PORTS` syntax that
//! names many targets (`22`, `20-25`, `22,80,443`, combinations).

use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::addr::{Endpoint, Family, HostPort, SocketKind};
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{self, ConnectOptions, SocketAddress};

/// Options of [`check`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckOptions {
    /// Per-target limit on resolution and connecting. Default 3 s.
    pub timeout: Duration,
    /// Most checks in flight at once. Default 256; never more than the
    /// open-file limit allows (each check holds a socket), see
    /// [`CheckOptions::effective_concurrency`].
    pub concurrency: usize,
    /// Try only addresses of this family. Default: both.
    pub family: Option<Family>,
}

/// [`CheckOptions::timeout`]'s default.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// [`CheckOptions::concurrency`]'s default.
pub const DEFAULT_CHECK_CONCURRENCY: usize = 256;

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            timeout: DEFAULT_CHECK_TIMEOUT,
            concurrency: DEFAULT_CHECK_CONCURRENCY,
            family: None,
        }
    }
}

/// File descriptors left for everything else when the open-file limit caps
/// the checks in flight (stdio, the runtime's own, a log file).
const FD_RESERVE: u64 = 32;

impl CheckOptions {
    /// `concurrency`, at least 1 and capped so the checks in flight cannot
    /// exhaust RLIMIT_NOFILE (a check that failed with EMFILE would be
    /// reported as a closed port, which is a lie).
    pub fn effective_concurrency(&self) -> usize {
        let wanted = self.concurrency.max(1);
        match open_file_limit() {
            Some(limit) => {
                let budget = limit.saturating_sub(FD_RESERVE).max(1);
                wanted.min(usize::try_from(budget).unwrap_or(usize::MAX))
            }
            None => wanted,
        }
    }
}

fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Parses one `check` target: an address whose port may be a list of ports
/// and ranges, `HOST:22`, `HOST:20-25`, `HOST:22,80,443`, `HOST:1-1024,8080`
/// (with any scheme and host form [`Endpoint`] takes, e.g. `[::1]:1-100`).
/// Ports run 1 to 65535 (0 cannot be checked); a range runs upwards; a port
/// listed twice is checked once. `unix:` targets pass through unchanged.
pub fn parse_targets(text: &str) -> Result<Vec<Endpoint>> {
    let invalid = |why: String| {
        Error::new(
            ErrorKind::InvalidAddress,
            format!("invalid target '{text}': {why}"),
        )
    };
    if text.starts_with("unix:") || text.starts_with("unixgram:") {
        return Ok(vec![text.parse()?]);
    }
    let Some((head, spec)) = split_port_spec(text) else {
        return Ok(vec![text.parse()?]);
    };
    let ports = parse_ports(spec).map_err(invalid)?;
    let first = ports.first().copied().unwrap_or(1);
    // The host part is parsed once, with the first port; the rest reuse it.
    let template: Endpoint = format!("{head}{first}").parse()?;
    Ok(ports
        .into_iter()
        .map(|port| with_port(&template, port))
        .collect())
}

/// Splits `text` before its port spec when that spec is made of digits,
/// commas and dashes; `head` keeps everything before (scheme, host and the
/// `:`). A bare spec (`20-25`) means 127.0.0.1, as a bare port does.
fn split_port_spec(text: &str) -> Option<(String, &str)> {
    let is_spec = |spec: &str| {
        !spec.is_empty()
            && spec
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b',' || b == b'-')
    };
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (&text[..scheme.len() + 3], rest),
        None => ("", text),
    };
    if is_spec(rest) {
        return Some((format!("{scheme}127.0.0.1:"), rest));
    }
    let (host, spec) = rest.rsplit_once(':')?;
    is_spec(spec).then(|| (format!("{scheme}{host}:"), spec))
}

/// `22`, `20-25`, `22,80,443` and mixes, in the order given, each port
/// once. The error says what is wrong with which part.
fn parse_ports(spec: &str) -> std::result::Result<Vec<u16>, String> {
    let port = |part: &str, whole: &str| -> std::result::Result<u16, String> {
        match part.parse::<u32>() {
            Ok(0) => Err("port 0 cannot be checked (ports run 1-65535)".to_owned()),
            Ok(n) => u16::try_from(n)
                .map_err(|_| format!("port {n} is out of range (ports run 1-65535)")),
            Err(_) => Err(format!("'{whole}' is not a port or a range like 20-25")),
        }
    };
    let mut seen = vec![false; usize::from(u16::MAX) + 1];
    let mut ports = Vec::new();
    for item in spec.split(',') {
        let (low, high) = match item.split_once('-') {
            Some((low, high)) => (port(low, item)?, port(high, item)?),
            None => {
                let single = port(item, item)?;
                (single, single)
            }
        };
        if low > high {
            return Err(format!(
                "range '{item}' runs backwards (write {high}-{low})"
            ));
        }
        for p in low..=high {
            if !std::mem::replace(&mut seen[usize::from(p)], true) {
                ports.push(p);
            }
        }
    }
    Ok(ports)
}

fn with_port(template: &Endpoint, port: u16) -> Endpoint {
    let at = |hp: &HostPort| HostPort {
        host: hp.host.clone(),
        port,
    };
    match template {
        Endpoint::Tcp(hp) => Endpoint::Tcp(at(hp)),
        Endpoint::Udp(hp) => Endpoint::Udp(at(hp)),
        Endpoint::Tls(hp) => Endpoint::Tls(at(hp)),
        other => other.clone(),
    }
}

/// The verdict on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckStatus {
    /// A connection was established (and closed at once).
    Open,
    /// The connection was refused or the host unreachable.
    Closed,
    /// No answer within the timeout (typically a firewall dropping packets).
    Timeout,
    /// The target could not be checked: unresolvable name, datagram target.
    Error(String),
}

impl CheckStatus {
    /// `open`, `closed`, `timeout` or `error`.
    pub fn label(&self) -> &'static str {
        match self {
            CheckStatus::Open => "open",
            CheckStatus::Closed => "closed",
            CheckStatus::Timeout => "timeout",
            CheckStatus::Error(_) => "error",
        }
    }
}

/// The result for one target.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckResult {
    /// The target as given.
    pub target: Endpoint,
    /// What was found.
    pub status: CheckStatus,
    /// Time from the start of this check to its verdict.
    pub latency: Duration,
    /// The address that answered, when open.
    pub address: Option<SocketAddress>,
}

/// Checks every target, at most [`CheckOptions::effective_concurrency`] at
/// a time; results come back in the order of `targets`. Only the checks in
/// flight exist as tasks, so 65,535 targets cost 65,535 results, not
/// 65,535 waiting tasks.
pub async fn check(targets: &[Endpoint], options: &CheckOptions) -> Vec<CheckResult> {
    let limit = options.effective_concurrency();
    let connect_options = ConnectOptions {
        timeout: options.timeout,
        family: options.family,
        ..ConnectOptions::default()
    };
    let mut waiting = targets.iter().cloned().enumerate();
    let mut checks = JoinSet::new();
    let mut results: Vec<Option<CheckResult>> = vec![None; targets.len()];
    loop {
        while checks.len() < limit {
            let Some((index, target)) = waiting.next() else {
                break;
            };
            let connect_options = connect_options.clone();
            checks.spawn(async move { (index, check_one(target, &connect_options).await) });
        }
        match checks.join_next().await {
            Some(Ok((index, result))) => results[index] = Some(result),
            Some(Err(_join_error)) => {}
            None => break,
        }
    }
    results
        .into_iter()
        .zip(targets)
        .map(|(result, target)| {
            result.unwrap_or_else(|| CheckResult {
                target: target.clone(),
                status: CheckStatus::Error("check did not complete".into()),
                latency: Duration::ZERO,
                address: None,
            })
        })
        .collect()
}

async fn check_one(target: Endpoint, options: &ConnectOptions) -> CheckResult {
    let started = Instant::now();
    let (status, address) = if target.kind() == SocketKind::Datagram {
        let why = "datagram targets cannot be checked: there is no connection to make";
        (CheckStatus::Error(why.into()), None)
    } else {
        match transport::connect(&target, options).await {
            Ok(stream) => (CheckStatus::Open, stream.peer_addr().ok()),
            Err(error) => (status_of(&error), None),
        }
    };
    CheckResult {
        target,
        status,
        latency: started.elapsed(),
        address,
    }
}

fn status_of(error: &Error) -> CheckStatus {
    if error.is_timeout() {
        CheckStatus::Timeout
    } else if error.is_unresolved() {
        CheckStatus::Error(error.to_string())
    } else {
        CheckStatus::Closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(text: &str) -> Vec<u16> {
        parse_targets(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .iter()
            .map(|e| e.host_port().map(|hp| hp.port).unwrap_or(0))
            .collect()
    }

    #[test]
    fn ports_lists_and_ranges() {
        assert_eq!(ports("127.0.0.1:22"), [22]);
        assert_eq!(ports("127.0.0.1:20-25"), [20, 21, 22, 23, 24, 25]);
        assert_eq!(ports("127.0.0.1:22,80,443"), [22, 80, 443]);
        assert_eq!(ports("localhost:1-3,2,80,79-80"), [1, 2, 3, 80, 79]);
        assert_eq!(ports("127.0.0.1:1-65535").len(), 65535);
        assert_eq!(ports("[::1]:5-6"), [5, 6]);
        assert_eq!(ports("tls://example.com:443,8443"), [443, 8443]);
        assert_eq!(ports("20-21"), [20, 21]);
        let targets = parse_targets("[::1]:5-6").unwrap();
        assert_eq!(targets[1].to_string(), "tcp://[::1]:6");
        let targets = parse_targets("udp://127.0.0.1:53,54").unwrap();
        assert_eq!(targets[1].to_string(), "udp://127.0.0.1:54");
        assert_eq!(parse_targets("unix:/tmp/a:1-2").unwrap().len(), 1);
    }

    #[test]
    fn bad_ports_name_the_problem() {
        for (text, why) in [
            ("127.0.0.1:0", "port 0"),
            ("127.0.0.1:5-3", "runs backwards"),
            ("127.0.0.1:70000", "out of range"),
            ("127.0.0.1:1-", "not a port or a range"),
            ("127.0.0.1:1,,2", "not a port or a range"),
            ("127.0.0.1:1-2-3", "not a port or a range"),
            ("127.0.0.1:99999999999", "not a port or a range"),
            ("127.0.0.1:http", "0 to 65535"),
        ] {
            let error = parse_targets(text).unwrap_err();
            assert!(error.is_invalid_address(), "{text}");
            assert!(error.to_string().contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn concurrency_is_at_least_one_and_within_the_file_limit() {
        let options = CheckOptions {
            concurrency: 0,
            ..CheckOptions::default()
        };
        assert_eq!(options.effective_concurrency(), 1);
        let huge = CheckOptions {
            concurrency: usize::MAX,
            ..CheckOptions::default()
        };
        if let Some(limit) = open_file_limit() {
            assert!(huge.effective_concurrency() as u64 <= limit);
        }
    }
}
