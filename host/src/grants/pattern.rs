//! The allow-list grammar: `scheme://host[:port]` patterns and IP networks.

use std::net::IpAddr;

/// One allowed destination: `http`, `https` or `*` for the scheme; an
/// exact host name or IP address, `*.suffix` (any name under it) or `*`;
/// a port number, `*`, or none for the scheme's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Option<String>,
    host: HostPart,
    port: Option<u16>,
    any_port: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPart {
    Any,
    Suffix(String),
    Exact(String),
}

impl HostPattern {
    /// Parses one pattern, saying what is wrong with a bad one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("expected scheme://host[:port]")?;
        let scheme = match scheme {
            "http" | "https" => Some(scheme.to_owned()),
            "*" => None,
            other => return Err(format!("scheme {other:?}: use http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err("give scheme://host[:port] only, no path, query or user".to_owned());
        }
        // An IPv6 literal is bracketed: `[::1]:8080`.
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (addr, after) = v6.split_once(']').ok_or("unclosed [")?;
                (
                    addr.to_owned(),
                    after.strip_prefix(':').map(str::to_owned).or_else(|| {
                        (!after.is_empty()).then(|| after.to_owned()) // reported below
                    }),
                )
            }
            None => match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p.to_owned())),
                None => (rest.to_owned(), None),
            },
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPart::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            check_name(suffix)?;
            HostPart::Suffix(suffix.to_owned())
        } else if host.parse::<IpAddr>().is_ok() {
            HostPart::Exact(host)
        } else {
            check_name(&host)?;
            HostPart::Exact(host)
        };
        let (port, any_port) = match port.as_deref() {
            None => (None, false),
            Some("*") => (None, true),
            Some(p) => (
                Some(
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or(format!("port {p:?}: a number 1-65535 or *"))?,
                ),
                false,
            ),
        };
        Ok(HostPattern {
            scheme,
            host,
            port,
            any_port,
        })
    }

    /// Whether a request to `scheme://host:port` is allowed by this pattern
    /// (`host` lowercase, without brackets).
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let port_ok = self.any_port
            || match self.port {
                Some(p) => p == port,
                None => Some(port) == default_port(self.scheme.as_deref().unwrap_or(scheme)),
            };
        port_ok
            && match &self.host {
                HostPart::Any => true,
                HostPart::Exact(h) => h == host,
                HostPart::Suffix(s) => host
                    .strip_suffix(s.as_str())
                    .is_some_and(|head| head.ends_with('.') && head.len() > 1),
            }
    }

    /// The IP address this pattern names literally, if it does: listing
    /// one allows it even when it is private.
    pub fn literal_ip(&self) -> Option<IpAddr> {
        match &self.host {
            HostPart::Exact(h) => h.parse().ok(),
            _ => None,
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://", self.scheme.as_deref().unwrap_or("*"))?;
        match &self.host {
            HostPart::Any => write!(f, "*")?,
            HostPart::Suffix(s) => write!(f, "*.{s}")?,
            HostPart::Exact(h) if h.contains(':') => write!(f, "[{h}]")?,
            HostPart::Exact(h) => write!(f, "{h}")?,
        }
        match (self.port, self.any_port) {
            (_, true) => write!(f, ":*"),
            (Some(p), _) => write!(f, ":{p}"),
            (None, false) => Ok(()),
        }
    }
}

/// The port a scheme defaults to.
pub(crate) fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a host name"))
    }
}

/// An IP network, `addr/prefix` (a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Parses `10.0.0.0/8`, `fd00::/8` or a single address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or(format!("prefix {p:?}: 0-{max}"))?,
        };
        Ok(IpNetwork { addr, prefix })
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Whether `ip` is not on the public internet: loopback, private,
/// link-local, unspecified, shared (CGNAT), documentation, benchmarking,
/// multicast or broadcast, IPv6 unique-local, or site-local. Requests there
/// are refused unless the grant lists them (the SSRF rule).
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || first == 0x0064 && v6.segments()[1] == 0xff9b // NAT64 can reach anything
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn patterns_match_scheme_host_and_port() {
        let p = |s: &str| HostPattern::parse(s).unwrap();
        assert!(p("https://api.example.com").matches("https", "api.example.com", 443));
        assert!(!p("https://api.example.com").matches("https", "api.example.com", 8443));
        assert!(!p("https://api.example.com").matches("http", "api.example.com", 80));
        assert!(p("http://127.0.0.1:8080").matches("http", "127.0.0.1", 8080));
        assert!(!p("http://127.0.0.1:8080").matches("http", "127.0.0.2", 8080));
        assert!(p("*://*.example.org:*").matches("http", "a.b.example.org", 1));
        assert!(!p("*://*.example.org:*").matches("http", "example.org", 1));
        assert!(!p("*://*.example.org:*").matches("http", "badexample.org", 1));
        assert!(p("http://[::1]:9").matches("http", "::1", 9));
        assert_eq!(
            p("http://[::1]:9").literal_ip(),
            Some("::1".parse().unwrap())
        );
        assert_eq!(
            p("https://*.example.org:*").to_string(),
            "https://*.example.org:*"
        );
        for bad in [
            "example.com",
            "ftp://x",
            "http://x:0",
            "http://x:70000",
            "http://a b",
            "http://u@x",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn networks_contain_their_addresses() {
        let n = IpNetwork::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(IpNetwork::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(IpNetwork::parse("127.0.0.1")
            .unwrap()
            .contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(IpNetwork::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!(IpNetwork::parse("1.2.3.4/40").is_err());
    }
}
