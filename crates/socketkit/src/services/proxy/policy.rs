//! Where a proxy may connect: the destination policy (`--allow-dest`,
//! `--deny-dest`: CIDRs or host-name suffixes), the SSRF guard of a proxy
//! reachable from the network, and the start-up rule that keeps an open
//! proxy from starting by accident.
//!
//! A destination is checked on its name (when the client sent one) and on
//! every address it resolved to, and refused if any of them is refused: a
//! name under an allowed suffix that resolves to a guarded address is
//! exactly what DNS rebinding would do. Deny rules win. Once any allow rule
//! exists, a destination must match one (by name suffix, or every address
//! by CIDR). Off loopback, loopback, link-local, unspecified (and the rest
//! of 0.0.0.0/8, which Linux connects to this host) and the server's own
//! addresses are refused unless an allow CIDR names them: a name suffix
//! cannot lift the guard, since whoever controls the name controls where it
//! points.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::addr::{Endpoint, Host};
use crate::error::{Error, ErrorKind, Result};
use crate::server::{AccessList, Rule};

/// The destination policy of a proxy. The default allows everything
/// except what the guard refuses (and the guard is off until
/// [`DestPolicy::guard_for`] finds a listener off loopback).
#[derive(Debug, Clone, Default)]
pub struct DestPolicy {
    /// Allow and deny CIDRs for the resolved addresses.
    nets: AccessList,
    /// Host-name suffixes, lower case, without a leading or trailing dot.
    allow_names: Vec<String>,
    deny_names: Vec<String>,
    /// The SSRF guard: on when some listener is reachable off this host.
    guard: Option<Guard>,
}

/// Addresses refused as destinations unless an allow CIDR names them.
#[derive(Debug, Clone, Default)]
struct Guard {
    /// The listeners' own specific addresses; the machine's interface
    /// addresses are read at each check (they change with DHCP, VPNs).
    listeners: Vec<IpAddr>,
}

/// Why a destination was refused (for the log and the client's error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial(String);

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl DestPolicy {
    /// Allows everything (until the guard is turned on).
    pub fn new() -> DestPolicy {
        DestPolicy::default()
    }

    /// Adds an entry: an address or CIDR (`10.0.0.0/8`, `::1`) or a host
    /// name suffix (`example.com` matches it and `www.example.com`; a
    /// leading `.` or `*.` is the same).
    pub fn add(&mut self, rule: Rule, entry: &str) -> Result<()> {
        let entry = entry.trim();
        if entry.parse::<IpAddr>().is_ok() || entry.contains('/') {
            return self.nets.add(rule, entry);
        }
        let name = normalize(entry.trim_start_matches("*.").trim_start_matches('.'));
        if !is_host_name(&name) {
            return Err(Error::new(
                ErrorKind::Config,
                format!("invalid {rule}-dest entry '{entry}': expected ADDRESS, ADDRESS/PREFIX or a host name suffix"),
            ));
        }
        match rule {
            Rule::Allow => self.allow_names.push(name),
            Rule::Deny => self.deny_names.push(name),
        }
        Ok(())
    }

    /// Turns the SSRF guard on if any of `listeners` is reachable from
    /// other machines (not loopback, not a Unix socket), remembering their
    /// specific addresses as the server's own.
    pub fn guard_for(mut self, listeners: &[Endpoint]) -> DestPolicy {
        let exposed = listeners
            .iter()
            .filter_map(Endpoint::host_port)
            .filter(|hp| !hp.host.is_loopback())
            .map(|hp| match hp.host {
                Host::Ip(ip) => Some(ip.to_canonical()),
                _ => None,
            })
            .collect::<Vec<_>>();
        if !exposed.is_empty() {
            self.guard = Some(Guard {
                listeners: exposed.into_iter().flatten().collect(),
            });
        }
        self
    }

    /// Whether the SSRF guard is on.
    pub fn guarded(&self) -> bool {
        self.guard.is_some()
    }

    /// Checks a destination: its name, if it was given as one, and every
    /// address it resolved to (an IP destination is its own address).
    pub fn check(&self, name: Option<&str>, addrs: &[IpAddr]) -> Result<(), Denial> {
        let by_name = match name {
            Some(name) => self.check_name(name)?,
            None => false,
        };
        for ip in addrs {
            self.check_ip(*ip, by_name)?;
        }
        Ok(())
    }

    /// The name alone, before resolving it: `Ok(true)` when an allow
    /// suffix matches, so its addresses need no allow CIDR (the guard and
    /// deny rules still apply to them).
    pub fn check_name(&self, name: &str) -> Result<bool, Denial> {
        let name = normalize(name);
        if let Some(suffix) = self.deny_names.iter().find(|s| has_suffix(&name, s)) {
            return Err(Denial(format!("{name} is denied (--deny-dest {suffix})")));
        }
        Ok(self.allow_names.iter().any(|s| has_suffix(&name, s)))
    }

    fn check_ip(&self, ip: IpAddr, allowed_by_name: bool) -> Result<(), Denial> {
        let ip = ip.to_canonical();
        if self.nets.denies(ip) {
            return Err(Denial(format!("{ip} is denied (--deny-dest)")));
        }
        let explicitly = self.nets.allows(ip);
        if let Some(guard) = &self.guard {
            if let Some(why) = guard.refuses(ip) {
                if !explicitly {
                    return Err(Denial(format!(
                        "{ip} is {why}, refused off loopback unless --allow-dest names it"
                    )));
                }
            }
        }
        let restricted = self.nets.restricts() || !self.allow_names.is_empty();
        if restricted && !explicitly && !allowed_by_name {
            return Err(Denial(format!("{ip} is not in --allow-dest")));
        }
        Ok(())
    }
}

impl Guard {
    /// What makes `ip` (canonical) a guarded address, if it is one.
    fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        let special = match ip {
            IpAddr::V4(v4) if v4.is_loopback() => Some("a loopback address"),
            IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address"),
            // 0.0.0.0/8: "this network"; connecting to it reaches this host.
            IpAddr::V4(v4) if v4.octets()[0] == 0 => Some("an unspecified address"),
            IpAddr::V6(v6) if v6.is_loopback() => Some("a loopback address"),
            IpAddr::V6(v6) if v6.is_unspecified() => Some("an unspecified address"),
            IpAddr::V6(v6) if is_unicast_link_local(v6) => Some("a link-local address"),
            _ => None,
        };
        special.or_else(|| {
            let own = self.listeners.contains(&ip) || interface_addresses().contains(&ip);
            own.then_some("this server's own address")
        })
    }
}

fn is_unicast_link_local(v6: Ipv6Addr) -> bool {
    v6.segments()[0] & 0xffc0 == 0xfe80
}

/// Lower case, without a trailing dot (`Example.COM.` is `example.com`).
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `name` is `suffix` or ends with `.suffix`.
fn has_suffix(name: &str, suffix: &str) -> bool {
    name == suffix
        || name
            .strip_suffix(suffix)
            .is_some_and(|head| head.ends_with('.'))
}

/// Letters, digits, `-` and `_` in dot-separated labels of 1 to 63 bytes,
/// at most 253 in all.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The addresses of this machine's interfaces (getifaddrs), canonical.
/// Empty if they cannot be read: loopback and the listeners are still
/// guarded then.
fn interface_addresses() -> Vec<IpAddr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we own until the
    // freeifaddrs below; on failure it leaves it untouched.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return found;
    }
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned.
        let entry = unsafe { &*cursor };
        if !entry.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says which
            // larger struct it is.
            let family = i32::from(unsafe { (*entry.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                found.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                found.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)).to_canonical());
            }
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// The start-up rule: a proxy on a listener other machines can reach must
/// authenticate its clients (`--users`) or admit only some (`--allow`);
/// loopback addresses and Unix sockets need neither. An error names the
/// first endpoint that would be an open proxy.
pub fn check_exposure(
    service: &str,
    endpoints: &[Endpoint],
    users: bool,
    access: &AccessList,
) -> Result<()> {
    if users || access.restricts() {
        return Ok(());
    }
    match endpoints
        .iter()
        .find(|e| e.host_port().is_some_and(|hp| !hp.host.is_loopback()))
    {
        Some(endpoint) => Err(Error::new(
            ErrorKind::Config,
            format!("refusing to run an open {service} proxy on {endpoint}: anyone who can reach it could relay through it (hint: --users FILE, or --allow CIDR to admit only those clients; loopback addresses need neither)"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn policy(allow: &[&str], deny: &[&str]) -> DestPolicy {
        let mut policy = DestPolicy::new();
        for entry in allow {
            policy.add(Rule::Allow, entry).unwrap();
        }
        for entry in deny {
            policy.add(Rule::Deny, entry).unwrap();
        }
        policy
    }

    fn exposed(policy: DestPolicy) -> DestPolicy {
        // A synthetic listener off loopback: what `serve socks5 0.0.0.0`
        // or a LAN address would give.
        policy.guard_for(&["tcp://192.0.2.10:1080".parse().unwrap()])
    }

    #[test]
    fn on_loopback_everything_is_allowed_by_default() {
        let open = DestPolicy::new().guard_for(&["tcp://127.0.0.1:1080".parse().unwrap()]);
        assert!(!open.guarded());
        assert_eq!(open.check(None, &[ip("127.0.0.1")]), Ok(()));
        assert_eq!(open.check(Some("localhost"), &[ip("::1")]), Ok(()));
        let unix = DestPolicy::new().guard_for(&["unix:/tmp/s".parse().unwrap()]);
        assert!(!unix.guarded());
    }

    #[test]
    fn off_loopback_the_guard_refuses_local_addresses() {
        let guarded = exposed(DestPolicy::new());
        assert!(guarded.guarded());
        for local in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "192.0.2.10",
        ] {
            let denial = guarded.check(None, &[ip(local)]).unwrap_err();
            assert!(denial.to_string().contains("--allow-dest"), "{denial}");
        }
        assert_eq!(guarded.check(None, &[ip("198.51.100.7")]), Ok(()));
        assert!(
            guarded
                .check(Some("example.com"), &[ip("198.51.100.7"), ip("127.0.0.1")])
                .is_err(),
            "one guarded address among many refuses the name"
        );
    }

    #[test]
    fn the_guard_yields_to_an_allow_cidr_but_not_to_a_name() {
        let cidr = exposed(policy(&["127.0.0.0/8"], &[]));
        assert_eq!(cidr.check(None, &[ip("127.0.0.1")]), Ok(()));
        let name = exposed(policy(&["rebind.example"], &[]));
        assert!(name
            .check(Some("evil.rebind.example"), &[ip("127.0.0.1")])
            .is_err());
        assert_eq!(
            name.check(Some("ok.rebind.example"), &[ip("198.51.100.1")]),
            Ok(())
        );
    }

    #[test]
    fn allow_rules_restrict_and_deny_rules_win() {
        let p = policy(
            &["10.0.0.0/8", "Example.COM."],
            &["10.9.0.0/16", "bad.example.com"],
        );
        assert_eq!(p.check(None, &[ip("10.1.2.3")]), Ok(()));
        assert!(p.check(None, &[ip("10.9.1.1")]).is_err());
        assert!(p.check(None, &[ip("11.0.0.1")]).is_err());
        assert_eq!(p.check(Some("www.example.com"), &[ip("11.0.0.1")]), Ok(()));
        assert_eq!(p.check(Some("EXAMPLE.com."), &[ip("11.0.0.1")]), Ok(()));
        assert!(p.check(Some("notexample.com"), &[ip("11.0.0.1")]).is_err());
        assert!(p
            .check(Some("x.bad.example.com"), &[ip("10.1.1.1")])
            .is_err());
        assert!(
            p.check(Some("www.example.com"), &[ip("10.9.0.1")]).is_err(),
            "a denied address behind an allowed name"
        );
        let deny_only = policy(&[], &["::ffff:10.0.0.0/104", "*.corp"]);
        assert!(deny_only.check(None, &[ip("10.0.0.1")]).is_err());
        assert!(deny_only.check(Some("db.corp"), &[ip("8.8.8.8")]).is_err());
        assert_eq!(deny_only.check(Some("corpx"), &[ip("8.8.8.8")]), Ok(()));
    }

    #[test]
    fn bad_entries_are_errors() {
        let mut p = DestPolicy::new();
        for bad in ["", "10.0.0.0/33", "bad name", "a..b", "ex*ample.com"] {
            assert!(p.add(Rule::Allow, bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_exposed_listener_needs_users_or_an_allow_list() {
        let any: Endpoint = "tcp://0.0.0.0:1080".parse().unwrap();
        let lo: Endpoint = "tcp://127.0.0.1:1080".parse().unwrap();
        let unix: Endpoint = "unix:/tmp/s".parse().unwrap();
        let open = AccessList::new();
        assert!(check_exposure("SOCKS5", &[lo.clone(), unix], false, &open).is_ok());
        let error = check_exposure("SOCKS5", &[lo, any.clone()], false, &open).unwrap_err();
        assert!(error.to_string().contains("0.0.0.0"), "{error}");
        assert!(check_exposure("SOCKS5", std::slice::from_ref(&any), true, &open).is_ok());
        let mut allow = AccessList::new();
        allow.add(Rule::Allow, "10.0.0.0/8").unwrap();
        assert!(check_exposure("SOCKS5", &[any], false, &allow).is_ok());
    }

    #[test]
    fn interface_addresses_include_loopback() {
        assert!(interface_addresses().contains(&ip("127.0.0.1")));
    }
}
