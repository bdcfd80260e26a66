//! `check`: is anything listening? The `connect_ex` of Python's socket
//! module, for many targets at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::addr::{Endpoint, SocketKind};
use crate::error::Error;
use crate::transport::{self, ConnectOptions, SocketAddress};

/// Options of [`check`].
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Per-target limit on resolution and connecting. Default 3 s.
    pub timeout: Duration,
    /// Most checks in flight at once. Default 64.
    pub concurrency: usize,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            timeout: Duration::from_secs(3),
            concurrency: 64,
        }
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

/// Checks every target, at most `options.concurrency` at a time; results
/// come back in the order of `targets`.
pub async fn check(targets: &[Endpoint], options: &CheckOptions) -> Vec<CheckResult> {
    let limit = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let connect_options = ConnectOptions {
        timeout: options.timeout,
        ..ConnectOptions::default()
    };
    let mut checks = JoinSet::new();
    for (index, target) in targets.iter().cloned().enumerate() {
        let (limit, connect_options) = (limit.clone(), connect_options.clone());
        checks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (index, check_one(target, &connect_options).await)
        });
    }
    let mut results: Vec<Option<CheckResult>> = vec![None; targets.len()];
    while let Some(joined) = checks.join_next().await {
        if let Ok((index, result)) = joined {
            results[index] = Some(result);
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
