//! Which proxy `get` uses for a URL, by curl's rules: `--proxy` (or its
//! empty value, "none") wins over the environment; otherwise `http_proxy`
//! (lower case only, as curl: a CGI program gets a request's `Proxy:`
//! header as `HTTP_PROXY`) for `http://`, `https_proxy`/`HTTPS_PROXY` for
//! `https://`, then `all_proxy`/`ALL_PROXY`; and no proxy at all for hosts
//! that `--noproxy`, else `no_proxy`/`NO_PROXY`, lists. The caller reads the
//! environment and passes a lookup function in, so the rules are tested
//! without touching the process's variables. How a proxy is then used
//! (absolute form or a tunnel) is the client's decision in `mod.rs`.

use std::net::IpAddr;

use ipnet::IpNet;

use super::HttpUrl;
use crate::addr::Host;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::ProxyUrl;

/// The proxy rules of one `get`. The default uses no proxy.
#[derive(Debug, Clone, Default)]
pub struct ProxyRules {
    /// `--proxy`: `Some(None)` is `--proxy ''`, no proxy and no
    /// environment; `None` lets the environment decide.
    explicit: Option<Option<ProxyUrl>>,
    /// `http_proxy`.
    http: Option<ProxyUrl>,
    /// `https_proxy`, else `HTTPS_PROXY`.
    https: Option<ProxyUrl>,
    /// `all_proxy`, else `ALL_PROXY`.
    all: Option<ProxyUrl>,
    /// `--noproxy`, else `no_proxy`/`NO_PROXY`.
    no_proxy: NoProxy,
}

impl ProxyRules {
    /// The rules from `--proxy` (`Some("")` for none) and `--noproxy`
    /// (`None`: not given) and the environment, read through `var` (for the
    /// process: `|name| std::env::var(name).ok()`). An empty variable counts
    /// as unset; a malformed proxy URL is an error naming the variable.
    pub fn new(
        proxy: Option<&str>,
        noproxy: Option<&str>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<ProxyRules> {
        let explicit = match proxy {
            Some("") => Some(None),
            Some(text) => Some(Some(text.parse()?)),
            None => None,
        };
        let from_env = |names: &[&str]| -> Result<Option<ProxyUrl>> {
            for name in names {
                if let Some(value) = var(name).filter(|v| !v.is_empty()) {
                    return value.parse().map(Some).map_err(|e: Error| {
                        Error::new(ErrorKind::Config, format!("${name}: {e}"))
                    });
                }
            }
            Ok(None)
        };
        // The environment matters only when --proxy was not given.
        let (http, https, all) = if explicit.is_some() {
            (None, None, None)
        } else {
            (
                from_env(&["http_proxy"])?,
                from_env(&["https_proxy", "HTTPS_PROXY"])?,
                from_env(&["all_proxy", "ALL_PROXY"])?,
            )
        };
        let no_proxy = match noproxy {
            Some(list) => NoProxy::parse(list),
            None => ["no_proxy", "NO_PROXY"]
                .iter()
                .find_map(|name| var(name))
                .map(|list| NoProxy::parse(&list))
                .unwrap_or_default(),
        };
        Ok(ProxyRules {
            explicit,
            http,
            https,
            all,
            no_proxy,
        })
    }

    /// The proxy for `url`, if any.
    pub fn proxy_for(&self, url: &HttpUrl) -> Option<&ProxyUrl> {
        let proxy = match &self.explicit {
            Some(explicit) => explicit.as_ref(),
            None if url.is_https() => self.https.as_ref().or(self.all.as_ref()),
            None => self.http.as_ref().or(self.all.as_ref()),
        }?;
        (!self.no_proxy.matches(&url.host_port().host)).then_some(proxy)
    }
}

/// A `no_proxy` list: comma- (or space-) separated host names, each
/// matching itself and its subdomains (a leading `.` changes nothing),
/// IP addresses or CIDR blocks, or `*` for every host. Matching ignores
/// case and a trailing dot, as curl's does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NoProxy {
    every_host: bool,
    names: Vec<String>,
    networks: Vec<IpNet>,
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in list.split([',', ' ', '\t']).filter(|e| !e.is_empty()) {
            if entry == "*" {
                no_proxy.every_host = true;
            } else if let Ok(net) = entry.parse::<IpNet>() {
                no_proxy.networks.push(net);
            } else if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
                no_proxy.networks.push(IpNet::from(ip));
            } else {
                let name = entry.trim_start_matches('.').trim_end_matches('.');
                no_proxy.names.push(name.to_ascii_lowercase());
            }
        }
        no_proxy
    }

    fn matches(&self, host: &Host) -> bool {
        if self.every_host {
            return true;
        }
        match host {
            Host::Ip(ip) => self.networks.iter().any(|net| net.contains(ip)),
            Host::Name(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                self.names.iter().any(|entry| {
                    name == *entry
                        || name
                            .strip_suffix(entry.as_str())
                            .is_some_and(|head| head.ends_with('.'))
                })
            }
            Host::Any => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn rules(proxy: Option<&str>, noproxy: Option<&str>, env: &[(&str, &str)]) -> ProxyRules {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ProxyRules::new(proxy, noproxy, |name| env.get(name).cloned()).unwrap()
    }

    fn chosen(rules: &ProxyRules, url: &str) -> Option<String> {
        rules
            .proxy_for(&url.parse().unwrap())
            .map(ToString::to_string)
    }

    #[test]
    fn each_scheme_has_its_variable_then_all_proxy() {
        let env = [
            ("http_proxy", "h:1"),
            ("HTTPS_PROXY", "socks5h://s:2"),
            ("ALL_PROXY", "http://a:3"),
        ];
        let r = rules(None, None, &env);
        assert_eq!(chosen(&r, "http://x/").as_deref(), Some("http://h:1"));
        assert_eq!(chosen(&r, "https://x/").as_deref(), Some("socks5h://s:2"));
        let r = rules(None, None, &[("all_proxy", "a:3"), ("https_proxy", "")]);
        assert_eq!(chosen(&r, "https://x/").as_deref(), Some("http://a:3"));
        // Lower case wins; HTTP_PROXY is never read (curl's CGI rule).
        let r = rules(None, None, &[("HTTP_PROXY", "evil:1")]);
        assert_eq!(chosen(&r, "http://x/"), None);
        let r = rules(
            None,
            None,
            &[("https_proxy", "l:1"), ("HTTPS_PROXY", "u:2")],
        );
        assert_eq!(chosen(&r, "https://x/").as_deref(), Some("http://l:1"));
    }

    #[test]
    fn an_explicit_proxy_wins_and_empty_means_none() {
        let env = [("http_proxy", "h:1"), ("all_proxy", "a:3")];
        let r = rules(Some("socks5://p:9"), None, &env);
        assert_eq!(chosen(&r, "http://x/").as_deref(), Some("socks5://p:9"));
        assert_eq!(chosen(&r, "https://x/").as_deref(), Some("socks5://p:9"));
        let r = rules(Some(""), None, &env);
        assert_eq!(chosen(&r, "http://x/"), None);
        // A broken variable is ignored when --proxy decides.
        rules(Some(""), None, &[("http_proxy", "ftp://nope")]);
    }

    #[test]
    fn no_proxy_suffixes_ips_and_star() {
        let env = [
            ("http_proxy", "h:1"),
            ("no_proxy", "example.com, .internal,10.0.0.0/8,::1"),
        ];
        let r = rules(None, None, &env);
        for direct in [
            "http://example.com/",
            "http://WWW.Example.COM./",
            "http://db.internal/",
            "http://10.2.3.4/",
            "http://[::1]/",
        ] {
            assert_eq!(chosen(&r, direct), None, "{direct}");
        }
        for proxied in [
            "http://badexample.com/",
            "http://example.com.evil/",
            "http://11.0.0.1/",
        ] {
            assert!(chosen(&r, proxied).is_some(), "{proxied}");
        }
        let r = rules(Some("p:1"), None, &[("NO_PROXY", "*")]);
        assert_eq!(chosen(&r, "http://anything/"), None);
        // --noproxy replaces the variable, and applies to --proxy too.
        let r = rules(Some("p:1"), Some("other"), &[("no_proxy", "*")]);
        assert!(chosen(&r, "http://x/").is_some());
        assert_eq!(chosen(&r, "http://a.other/"), None);
    }

    #[test]
    fn a_bad_variable_is_named_without_its_password() {
        let env: HashMap<&str, &str> = [("https_proxy", "ftp://u:secret@h")].into();
        let err = ProxyRules::new(None, None, |n| env.get(n).map(|v| (*v).to_owned())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("$https_proxy") && !text.contains("secret"),
            "{text}"
        );
    }
}
