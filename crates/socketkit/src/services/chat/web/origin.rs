//! Which requests the chat's web page answers: the `Host` every request
//! names, and the `Origin` a WebSocket upgrade comes from.
//!
//! Two attacks reach a page on loopback or an intranet through the user's
//! own browser. DNS rebinding: `evil.example` resolves to the attacker's
//! server, then to 127.0.0.1, and the browser, thinking it still talks to
//! `evil.example`, sends `Host: evil.example:PORT` to us; a page answers
//! only the names and addresses it was bound to (and `--web-host`).
//! Cross-site WebSocket hijacking: any site may open `ws://127.0.0.1:PORT/ws`
//! (WebSockets are not covered by the same-origin policy), but the browser
//! always says which site asked, in `Origin`; an upgrade is accepted only
//! when that origin is the page's own (its host and port those of the
//! `Host` header) or one listed with `--web-origin`.

use std::net::IpAddr;

use crate::addr::{Endpoint, Host};
use crate::error::{Error, ErrorKind, Result};

/// A host as a browser would compare it: an address, or a lowercased
/// (IDNA) domain name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Name {
    Ip(IpAddr),
    Domain(String),
}

impl Name {
    fn parse(host: &str) -> Option<Name> {
        match url::Host::parse(host).ok()? {
            url::Host::Domain(domain) => Some(Name::Domain(domain)),
            url::Host::Ipv4(ip) => Some(Name::Ip(ip.into())),
            url::Host::Ipv6(ip) => Some(Name::Ip(ip.into())),
        }
    }

    fn localhost() -> Name {
        Name::Domain("localhost".to_owned())
    }
}

/// `NAME` or `NAME:PORT` (`[V6]:PORT` for IPv6), as in a `Host` header.
/// Only the characters a host and port can hold are let through to the
/// URL parser, so nothing like `a@b` or `a/b` is reinterpreted.
fn split_host_port(value: &str) -> Option<(Name, Option<u16>)> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b);
    if value.is_empty() || !value.bytes().all(allowed) {
        return None;
    }
    let (host, port) = match value.rfind(':') {
        // A colon after the last `]` (or in a name) starts the port.
        Some(colon) if !value[colon..].contains(']') => {
            let port = value.get(colon + 1..)?.parse::<u16>().ok()?;
            (&value[..colon], Some(port))
        }
        _ => (value, None),
    };
    Some((Name::parse(host)?, port))
}

/// A host allowed with `--web-host`: any port unless one is given.
#[derive(Debug, Clone)]
pub(super) struct HostRule {
    name: Name,
    port: Option<u16>,
}

impl HostRule {
    pub(super) fn parse(value: &str) -> Result<HostRule> {
        let (name, port) = split_host_port(&value.to_ascii_lowercase()).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidAddress,
                format!("{value:?} is not a host name (NAME or NAME:PORT)"),
            )
        })?;
        Ok(HostRule { name, port })
    }

    fn matches(&self, name: &Name, port: u16) -> bool {
        self.name == *name && self.port.is_none_or(|p| p == port)
    }
}

/// An origin allowed with `--web-origin`, kept as a browser serializes it
/// (`https://chat.example.com`, `http://127.0.0.1:8080`).
pub(super) fn parse_origin_rule(value: &str) -> Result<String> {
    let invalid = || {
        Error::new(
            ErrorKind::InvalidAddress,
            format!("{value:?} is not an origin (SCHEME://HOST[:PORT], such as https://chat.example.com)"),
        )
    };
    let url = url::Url::parse(value).map_err(|_| invalid())?;
    let bare = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !matches!(url.scheme(), "http" | "https") || !bare {
        return Err(invalid());
    }
    Ok(url.origin().ascii_serialization())
}

/// An `Origin` header as sent by a browser: its scheme, host and port, or
/// `None` when it is not a plain http(s) origin in serialized form
/// (`null`, a path, odd spelling).
fn parse_origin(value: &str) -> Option<(String, Name, u16)> {
    let url = url::Url::parse(value).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.origin().ascii_serialization() != value {
        return None;
    }
    let name = Name::parse(url.host_str()?)?;
    Some((url.scheme().to_owned(), name, url.port_or_known_default()?))
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// No `Host`, several, or one this page was not bound to (421).
    Host,
    /// A WebSocket upgrade from another site's page (403).
    Origin,
}

/// The names, addresses and origins one web server answers.
#[derive(Debug, Default)]
pub(super) struct Guard {
    /// `(name, port)` pairs from what was bound: each address, the name it
    /// was given as, and `localhost` for loopback.
    bound: Vec<(Name, u16)>,
    /// Ports bound on every interface: any address literal naming one is
    /// ours (a rebinding attack needs a domain name).
    wildcard_ports: Vec<u16>,
    /// Served on a Unix socket (behind a proxy): the `Host` is the proxy's
    /// concern unless `--web-host` names some.
    unix: bool,
    hosts: Vec<HostRule>,
    origins: Vec<String>,
}

impl Guard {
    /// `requested` is the endpoint as given (`localhost:8080` keeps its
    /// name); `bound` are the sockets it became.
    pub(super) fn new<'a>(
        requested: &Endpoint,
        bound: impl IntoIterator<Item = &'a Endpoint>,
        hosts: Vec<HostRule>,
        origins: Vec<String>,
    ) -> Guard {
        let mut guard = Guard {
            hosts,
            origins,
            ..Guard::default()
        };
        let requested_name = match requested.host_port().map(|hp| &hp.host) {
            Some(Host::Name(name)) => Name::parse(&name.to_ascii_lowercase()),
            _ => None,
        };
        for endpoint in bound {
            let Some(hp) = endpoint.host_port() else {
                guard.unix = true;
                continue;
            };
            let mut names = Vec::new();
            match &hp.host {
                Host::Ip(ip) if ip.is_unspecified() => {
                    guard.wildcard_ports.push(hp.port);
                    names.push(Name::localhost());
                }
                Host::Ip(ip) => {
                    names.push(Name::Ip(*ip));
                    if ip.is_loopback() {
                        names.push(Name::localhost());
                    }
                }
                Host::Any => {
                    guard.wildcard_ports.push(hp.port);
                    names.push(Name::localhost());
                }
                Host::Name(name) => names.extend(Name::parse(&name.to_ascii_lowercase())),
            }
            names.extend(requested_name.clone());
            for name in names {
                if !guard.bound.contains(&(name.clone(), hp.port)) {
                    guard.bound.push((name, hp.port));
                }
            }
        }
        guard
    }

    /// Checks the `Host` a request named (its header, and the authority of
    /// an absolute-form target, which takes precedence in HTTP/1.1).
    /// `default_port`: 80, or 443 on TLS. Returns the host and port, which
    /// a same-origin `Origin` must repeat.
    pub(super) fn check_host(
        &self,
        headers: &hyper::HeaderMap,
        uri: &hyper::Uri,
        default_port: u16,
    ) -> std::result::Result<(Name, u16), Refusal> {
        let mut values = headers.get_all(hyper::header::HOST).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(Refusal::Host);
        };
        let host = self.allowed_host(value.to_str().map_err(|_| Refusal::Host)?, default_port)?;
        if let Some(authority) = uri.authority() {
            if self.allowed_host(authority.as_str(), default_port)? != host {
                return Err(Refusal::Host);
            }
        }
        Ok(host)
    }

    fn allowed_host(
        &self,
        value: &str,
        default_port: u16,
    ) -> std::result::Result<(Name, u16), Refusal> {
        let (name, port) = split_host_port(value).ok_or(Refusal::Host)?;
        let port = port.unwrap_or(default_port);
        let ours = self.bound.iter().any(|(n, p)| *n == name && *p == port)
            || (matches!(name, Name::Ip(_)) && self.wildcard_ports.contains(&port))
            || self.hosts.iter().any(|rule| rule.matches(&name, port))
            || (self.unix && self.hosts.is_empty());
        if ours {
            Ok((name, port))
        } else {
            Err(Refusal::Host)
        }
    }

    /// Checks the `Origin` of a WebSocket upgrade against the request's
    /// (already checked) host and the connection's scheme (`http`, `https`,
    /// or `None` on a Unix socket, where a proxy in front decides). A
    /// client that sends no `Origin` is not a browser, so no site is riding
    /// on a user's browser through it (and such a client could send any
    /// `Origin` it liked): it is let in.
    pub(super) fn check_origin(
        &self,
        origin: Option<&hyper::header::HeaderValue>,
        scheme: Option<&str>,
        host: &(Name, u16),
    ) -> std::result::Result<(), Refusal> {
        let Some(origin) = origin else {
            return Ok(());
        };
        let origin = origin.to_str().map_err(|_| Refusal::Origin)?;
        if self.origins.iter().any(|listed| listed == origin) {
            return Ok(());
        }
        match parse_origin(origin) {
            Some((their_scheme, name, port))
                if scheme.is_none_or(|ours| ours == their_scheme)
                    && name == host.0
                    && port == host.1 =>
            {
                Ok(())
            }
            _ => Err(Refusal::Origin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(requested: &str, bound: &[&str], hosts: &[&str], origins: &[&str]) -> Guard {
        let requested: Endpoint = requested.parse().unwrap();
        let bound: Vec<Endpoint> = bound.iter().map(|b| b.parse().unwrap()).collect();
        Guard::new(
            &requested,
            &bound,
            hosts.iter().map(|h| HostRule::parse(h).unwrap()).collect(),
            origins
                .iter()
                .map(|o| parse_origin_rule(o).unwrap())
                .collect(),
        )
    }

    fn host(guard: &Guard, value: &str) -> bool {
        guard.allowed_host(value, 80).is_ok()
    }

    #[test]
    fn hosts_are_the_bound_addresses_and_names() {
        let g = guard(
            "localhost:8080",
            &["127.0.0.1:8080", "[::1]:8080"],
            &[],
            &[],
        );
        for ok in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "localhost:8080",
            "LocalHost:8080",
        ] {
            assert!(host(&g, ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "127.0.0.1:8081",
            "127.0.0.1",
            "localhost",
            "",
            "::1:8080",
            "a@127.0.0.1:8080",
            "127.0.0.1:8080/x",
            "127.0.0.1:",
            "127.0.0.1:99999",
        ] {
            assert!(!host(&g, bad), "{bad}");
        }
    }

    #[test]
    fn every_interface_means_any_address_but_no_foreign_name() {
        let g = guard(":8080", &["0.0.0.0:8080", "[::]:8080"], &[], &[]);
        assert!(host(&g, "192.0.2.7:8080"));
        assert!(host(&g, "[2001:db8::1]:8080"));
        assert!(host(&g, "localhost:8080"));
        assert!(!host(&g, "192.0.2.7:9090"));
        assert!(!host(&g, "rebind.evil.example:8080"));
    }

    #[test]
    fn web_host_adds_names_with_or_without_a_port() {
        let g = guard(
            "127.0.0.1:8080",
            &["127.0.0.1:8080"],
            &["chat.example.com", "other.example:9000"],
            &[],
        );
        assert!(host(&g, "chat.example.com"));
        assert!(host(&g, "Chat.Example.com:8080"));
        assert!(host(&g, "other.example:9000"));
        assert!(!host(&g, "other.example:8080"));
        assert!(HostRule::parse("bad/name").is_err());
    }

    #[test]
    fn origins_are_same_origin_or_listed() {
        let g = guard(
            "127.0.0.1:8080",
            &["127.0.0.1:8080"],
            &[],
            &["https://chat.example.com/"],
        );
        let here = g.allowed_host("127.0.0.1:8080", 80).unwrap();
        let origin = |value: &str| {
            let value = hyper::header::HeaderValue::from_str(value).unwrap();
            g.check_origin(Some(&value), Some("http"), &here).is_ok()
        };
        assert!(origin("http://127.0.0.1:8080"));
        assert!(origin("https://chat.example.com"));
        assert!(g.check_origin(None, Some("http"), &here).is_ok());
        for bad in [
            "http://evil.example",
            "http://127.0.0.1:8081",
            "http://127.0.0.1",
            "null",
            "http://127.0.0.1:8080/",
            "http://localhost:8080",
            "https://chat.example.com:8443",
            "https://127.0.0.1:8080",
        ] {
            assert!(!origin(bad), "{bad}");
        }
        assert!(parse_origin_rule("https://x.example/path").is_err());
        assert!(parse_origin_rule("ftp://x.example").is_err());
        assert_eq!(
            parse_origin_rule("HTTPS://X.example:443").unwrap(),
            "https://x.example"
        );
    }
}
