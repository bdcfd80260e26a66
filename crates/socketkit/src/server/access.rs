//! Access lists: which IP peers a server admits, by CIDR.
//!
//! An [`AccessList`] holds allow and deny prefixes. Deny wins over allow;
//! once any allow prefix is given, every peer not allowed is refused; an
//! empty list admits everyone. IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`, what
//! a dual-stack socket reports for an IPv4 client) compare as IPv4, so
//! `--deny 10.0.0.0/8` cannot be dodged by the address family. Unix peers
//! are not IP peers and always pass: a list has nothing to say about them.
//! The list only decides; the server's accept and datagram loops apply it
//! (see [`super::ServerConfig::access`]) and this type is independent of
//! them so any listener (`listen`, `forward`) can reuse it.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use ipnet::{IpNet, Ipv4Net};

use crate::error::{Error, ErrorKind, Result};
use crate::transport::SocketAddress;

/// Allow and deny prefixes for IP peers. The default admits everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

/// Whether a rule admits or refuses the peers it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Admit (and, once any allow rule exists, refuse everything else).
    Allow,
    /// Refuse, whatever the allow rules say.
    Deny,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::Allow => "allow",
            Rule::Deny => "deny",
        })
    }
}

impl AccessList {
    /// A list that admits everyone (the same as `default()`).
    pub fn new() -> AccessList {
        AccessList::default()
    }

    /// Adds a prefix: `10.0.0.0/8`, `2001:db8::/32`, or a bare address
    /// (`127.0.0.1` is /32, `::1` is /128).
    pub fn add(&mut self, rule: Rule, cidr: &str) -> Result<()> {
        let net = parse_cidr(cidr).map_err(|why| {
            Error::new(
                ErrorKind::InvalidAddress,
                format!("invalid {rule} entry '{cidr}': {why}"),
            )
        })?;
        self.push(rule, net);
        Ok(())
    }

    /// Adds every prefix in `text`, one per line; blank lines and `#`
    /// comments (whole-line or trailing) are skipped. A bad line is an error
    /// naming `origin:LINE`, and nothing from `text` is added.
    pub fn add_lines(&mut self, rule: Rule, text: &str, origin: &str) -> Result<()> {
        let mut nets = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or_default().trim();
            if entry.is_empty() {
                continue;
            }
            let net = parse_cidr(entry).map_err(|why| {
                Error::new(
                    ErrorKind::InvalidAddress,
                    format!(
                        "{origin}:{}: invalid {rule} entry '{entry}': {why}",
                        number + 1
                    ),
                )
            })?;
            nets.push(net);
        }
        for net in nets {
            self.push(rule, net);
        }
        Ok(())
    }

    /// Reads `path` and adds its prefixes as [`AccessList::add_lines`] does.
    pub fn add_file(&mut self, rule: Rule, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::with_source(
                ErrorKind::Io,
                format!("cannot read {rule} file {}", path.display()),
                e,
            )
        })?;
        self.add_lines(rule, &text, &path.display().to_string())
    }

    fn push(&mut self, rule: Rule, net: IpNet) {
        match rule {
            Rule::Allow => self.allow.push(net),
            Rule::Deny => self.deny.push(net),
        }
    }

    /// Whether the list admits everyone (no rules at all).
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether the list has allow rules, i.e. admits only what they match.
    pub fn restricts(&self) -> bool {
        !self.allow.is_empty()
    }

    /// Whether an allow rule matches `ip` (not merely "no rule refuses
    /// it"): what overrides a default refusal, such as a proxy's guard.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow.iter().any(|net| net.contains(&ip))
    }

    /// Whether a deny rule matches `ip`.
    pub fn denies(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.deny.iter().any(|net| net.contains(&ip))
    }

    /// Whether `peer` may talk to the server. Unix peers always may.
    pub fn permits(&self, peer: &SocketAddress) -> bool {
        match peer {
            SocketAddress::Inet(addr) => self.permits_ip(addr.ip()),
            SocketAddress::Unix(_) => true,
        }
    }

    /// Whether the IP address `ip` is admitted: not denied, and allowed if
    /// any allow rule exists.
    pub fn permits_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|net| net.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// A prefix or a bare address, host bits cleared, an IPv4-mapped IPv6
/// prefix (`::ffff:10.0.0.0/104`) turned into its IPv4 form so it matches
/// the canonical peers [`AccessList::permits_ip`] compares.
fn parse_cidr(text: &str) -> std::result::Result<IpNet, String> {
    let net = if text.contains('/') {
        text.parse::<IpNet>()
            .map_err(|_| "expected ADDRESS or ADDRESS/PREFIX, like 10.0.0.0/8 or ::1".to_owned())?
    } else {
        let ip: IpAddr = text
            .parse()
            .map_err(|_| "not an IP address (expected ADDRESS or ADDRESS/PREFIX)".to_owned())?;
        IpNet::from(ip)
    };
    Ok(canonical(net).trunc())
}

fn canonical(net: IpNet) -> IpNet {
    const MAPPED_PREFIX: u8 = 96;
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= MAPPED_PREFIX => match v6.addr().to_ipv4_mapped() {
            // Cannot fail: 96..=128 minus 96 is a valid IPv4 prefix length.
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - MAPPED_PREFIX)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn list(allow: &[&str], deny: &[&str]) -> AccessList {
        let mut list = AccessList::new();
        for cidr in allow {
            list.add(Rule::Allow, cidr).unwrap();
        }
        for cidr in deny {
            list.add(Rule::Deny, cidr).unwrap();
        }
        list
    }

    #[test]
    fn empty_list_admits_everyone() {
        let open = AccessList::new();
        assert!(open.is_open());
        assert!(open.permits_ip(ip("203.0.113.9")));
        assert!(open.permits_ip(ip("::1")));
    }

    #[test]
    fn any_allow_refuses_everything_else() {
        let l = list(&["127.0.0.1"], &[]);
        assert!(l.permits_ip(ip("127.0.0.1")));
        assert!(!l.permits_ip(ip("127.0.0.2")));
        assert!(!l.permits_ip(ip("::1")));
    }

    #[test]
    fn deny_wins_over_allow() {
        let l = list(&["127.0.0.0/8"], &["127.0.0.2"]);
        assert!(l.permits_ip(ip("127.0.0.1")));
        assert!(!l.permits_ip(ip("127.0.0.2")));
        let only_deny = list(&[], &["10.0.0.0/8"]);
        assert!(!only_deny.permits_ip(ip("10.1.2.3")));
        assert!(only_deny.permits_ip(ip("11.0.0.1")));
    }

    #[test]
    fn mapped_ipv6_peers_and_rules_compare_as_ipv4() {
        let l = list(&[], &["10.0.0.0/8"]);
        assert!(!l.permits_ip(ip("::ffff:10.9.8.7")));
        let mapped_rule = list(&["::ffff:127.0.0.0/104"], &[]);
        assert!(mapped_rule.permits_ip(ip("127.0.0.5")));
        assert!(mapped_rule.permits_ip(ip("::ffff:127.0.0.5")));
        assert!(!mapped_rule.permits_ip(ip("10.0.0.1")));
    }

    #[test]
    fn ipv6_prefixes_and_bare_addresses() {
        let l = list(&["2001:db8::/32", "::1"], &[]);
        assert!(l.permits_ip(ip("2001:db8::42")));
        assert!(l.permits_ip(ip("::1")));
        assert!(!l.permits_ip(ip("::2")));
        // Host bits in a prefix are ignored, as routers do.
        let l = list(&["192.168.1.77/24"], &[]);
        assert!(l.permits_ip(ip("192.168.1.1")));
    }

    #[test]
    fn unix_peers_always_pass() {
        let l = list(&["127.0.0.1"], &["0.0.0.0/0", "::/0"]);
        assert!(l.permits(&SocketAddress::Unix(None)));
    }

    #[test]
    fn bad_entries_are_errors() {
        let mut l = AccessList::new();
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "host.example",
            "10.0.0",
            "1.2.3.4/",
        ] {
            assert!(l.add(Rule::Allow, bad).is_err(), "{bad:?} accepted");
        }
        assert!(l.is_open());
    }

    #[test]
    fn lines_skip_comments_and_name_the_bad_line() {
        let mut l = AccessList::new();
        l.add_lines(
            Rule::Deny,
            "# office\n10.0.0.0/8  # lab\n\n  ::1\n",
            "deny.txt",
        )
        .unwrap();
        assert!(!l.permits_ip(ip("10.2.3.4")));
        assert!(!l.permits_ip(ip("::1")));
        let mut l = AccessList::new();
        let error = l
            .add_lines(Rule::Allow, "127.0.0.1\n# ok\n300.1.1.1\n", "allow.txt")
            .unwrap_err();
        assert!(error.to_string().contains("allow.txt:3:"), "{error}");
        assert!(error.to_string().contains("300.1.1.1"), "{error}");
        assert!(l.is_open(), "a bad file adds nothing");
    }
}
