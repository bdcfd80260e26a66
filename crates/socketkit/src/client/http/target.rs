//! The URL side of a request: which URLs `get` accepts, where each one
//! connects, what goes in its request line and `Host` header, and which
//! credentials travel with it. Parsing is the `url` crate's (WHATWG rules:
//! IDNA, IPv6 literals, default ports, relative redirects).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use percent_encoding::percent_decode_str;
use url::{Position, Url};

use crate::addr::{Host, HostPort};
use crate::error::{Error, ErrorKind, Result};

/// An `http://` or `https://` URL with a host: something `get` can fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(Url);

impl HttpUrl {
    /// Resolves a redirect's `Location` against this URL and checks the
    /// result like any URL given on the command line.
    pub(crate) fn join(&self, location: &str) -> Result<HttpUrl> {
        let joined = self.0.join(location).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                format!("{self} redirected to an invalid location '{location}': {e}"),
            )
        })?;
        HttpUrl::checked(joined).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                format!("{self} redirected to a location get cannot follow: {e}"),
            )
        })
    }

    fn checked(url: Url) -> Result<HttpUrl> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidAddress,
                format!("invalid URL '{url}': {why}"),
            )
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("only http:// and https:// are supported"));
        }
        if url.host().is_none() {
            return Err(invalid("no host"));
        }
        Ok(HttpUrl(url))
    }

    /// Whether the connection needs TLS.
    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }

    /// Where to connect: the host and the port (80 and 443 by default).
    pub fn host_port(&self) -> HostPort {
        let host = match self.0.host() {
            Some(url::Host::Ipv4(ip)) => Host::Ip(ip.into()),
            Some(url::Host::Ipv6(ip)) => Host::Ip(ip.into()),
            Some(url::Host::Domain(name)) => Host::Name(name.to_owned()),
            None => Host::Any,
        };
        let port = self.0.port_or_known_default().unwrap_or(80);
        HostPort { host, port }
    }

    /// The `Host` header: the host as written in URLs (IPv6 in brackets),
    /// with the port only when it is not the scheme's default.
    pub(crate) fn host_header(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        match self.0.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// The request target in origin form: path and query, never the fragment.
    pub(crate) fn request_target(&self) -> &str {
        &self.0[Position::BeforePath..Position::AfterQuery]
    }

    /// The request target in absolute form, for an HTTP proxy:
    /// scheme, host, port if not the default, path and query; never the
    /// credentials or the fragment.
    pub(crate) fn absolute_form(&self) -> String {
        format!(
            "{}://{}{}",
            self.0.scheme(),
            self.host_header(),
            self.request_target()
        )
    }

    /// `Basic` credentials from `user:password@` in the URL, if any.
    pub(crate) fn basic_auth(&self) -> Option<String> {
        let (user, password) = (self.0.username(), self.0.password());
        if user.is_empty() && password.is_none() {
            return None;
        }
        let decode = |text: &str| percent_decode_str(text).collect::<Vec<u8>>();
        let mut pair = decode(user);
        pair.push(b':');
        pair.extend(decode(password.unwrap_or_default()));
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        Some(format!("Basic {encoded}"))
    }

    /// Same scheme, host and port: credentials may go along on a redirect.
    pub(crate) fn same_origin(&self, other: &HttpUrl) -> bool {
        self.0.origin() == other.0.origin()
    }
}

impl FromStr for HttpUrl {
    type Err = Error;

    fn from_str(text: &str) -> Result<HttpUrl> {
        let url = Url::parse(text).map_err(|e| {
            Error::new(
                ErrorKind::InvalidAddress,
                format!("invalid URL '{text}': {e}"),
            )
        })?;
        HttpUrl::checked(url)
    }
}

/// The URL without its password, so it can be printed and logged.
impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.password().is_none() {
            return f.write_str(self.0.as_str());
        }
        let mut shown = self.0.clone();
        // Cannot fail: the URL has a host, or it would have no password.
        let _ = shown.set_password(Some("***"));
        f.write_str(shown.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> HttpUrl {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn default_ports_ipv6_literals_and_the_host_header() {
        let plain = url("http://Example.COM/a/b?q=1#frag");
        assert_eq!(plain.host_port().to_string(), "example.com:80");
        assert_eq!(plain.host_header(), "example.com");
        assert_eq!(plain.request_target(), "/a/b?q=1");
        assert_eq!(
            url("http://u:pw@[::1]:8080/a?q#f").absolute_form(),
            "http://[::1]:8080/a?q"
        );
        let tls = url("https://example.com");
        assert_eq!(tls.host_port().port, 443);
        assert_eq!(tls.request_target(), "/");
        let v6 = url("http://[::1]:8080/x");
        assert_eq!(v6.host_port().to_string(), "[::1]:8080");
        assert_eq!(v6.host_header(), "[::1]:8080");
        assert_eq!(url("https://[::1]:443/").host_header(), "[::1]");
    }

    #[test]
    fn only_http_and_https_with_a_host() {
        for (text, reason) in [
            ("ftp://example.com/", "only http:// and https://"),
            ("file:///etc/passwd", "only http:// and https://"),
            ("http://", "empty host"),
            ("example.com", "relative URL without a base"),
            ("http://[::1/", "invalid IPv6 address"),
        ] {
            let err = text.parse::<HttpUrl>().unwrap_err();
            assert!(err.is_invalid_address(), "{text}");
            assert!(err.to_string().contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn credentials_become_basic_auth_and_are_never_printed() {
        let with = url("http://al%20ice:s%3Acret@example.com/");
        // base64("al ice:s:cret")
        assert_eq!(with.basic_auth().unwrap(), "Basic YWwgaWNlOnM6Y3JldA==");
        assert_eq!(with.to_string(), "http://al%20ice:***@example.com/");
        assert_eq!(url("http://example.com/").basic_auth(), None);
    }

    #[test]
    fn redirects_resolve_relative_locations_and_compare_origins() {
        let base = url("http://example.com:8080/a/b");
        assert_eq!(
            base.join("../c").unwrap().to_string(),
            "http://example.com:8080/c"
        );
        assert!(base.same_origin(&base.join("/d").unwrap()));
        for other in [
            "https://example.com:8080/",
            "http://example.com/",
            "http://other.example:8080/",
        ] {
            assert!(!base.same_origin(&base.join(other).unwrap()), "{other}");
        }
        let err = base.join("ftp://example.com/").unwrap_err();
        assert!(err.to_string().contains("cannot follow"), "{err}");
    }
}
