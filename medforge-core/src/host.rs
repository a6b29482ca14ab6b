//! Host names as MedForge reads them: the `Host` header, an `Origin`, the
//! authority of a `next=` URL. One parser, one rule for everything that
//! decides on a host (the gate, the proxy, the Origin check, where a login
//! may go back to):
//!
//! - the name is ASCII-lower-cased and one trailing dot is dropped
//!   (`MedForge.Example.Org.` is `medforge.example.org`);
//! - a port, when there is a `:`, is 1 to 5 digits up to 65535; an empty
//!   port (`host:`) or anything else after the colon is refused;
//! - the name is letters, digits, `-`, `_` and `.`, without empty labels;
//!   an IPv6 literal is kept in brackets (`[::1]:8080`). Nothing else
//!   (no `@`, `/`, spaces) passes.
//!
//! A [`SessionHost`] is the host of one session:
//! `s-<slug>.<exposure>.<base domain>`.

use std::fmt;
use std::str::FromStr;

use crate::model::{Exposure, Slug};

/// A parsed host: name and optional port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    name: String,
    port: Option<u16>,
}

/// Why a host did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty host")]
    Empty,
    #[error("the port must be 1 to 5 digits up to 65535")]
    BadPort,
    #[error("a host name is letters, digits, '-', '_' and dots between non-empty labels")]
    BadName,
}

impl Host {
    /// The name, lower-cased, without a trailing dot.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// `:<port>`, or nothing when the host has none (for building URLs on
    /// the same port as this request's).
    pub fn port_suffix(&self) -> String {
        self.port.map(|p| format!(":{p}")).unwrap_or_default()
    }

    /// Whether this is `domain` itself or a name under it (`x.domain`).
    /// `domain` is read with the same rule (case, trailing dot).
    pub fn is_within(&self, domain: &str) -> bool {
        let domain = normal_domain(domain);
        !domain.is_empty() && (self.name == domain || self.labels_under(&domain).is_some())
    }

    /// What comes before `.domain`, when this is a name under `domain`.
    fn labels_under(&self, domain: &str) -> Option<&str> {
        self.name.strip_suffix(domain)?.strip_suffix('.').filter(|prefix| !prefix.is_empty())
    }

    /// The exposure zone this host is in: `<label>.external.<domain>` or
    /// `<label>.internal.<domain>`, with exactly one label in front. Every
    /// such host belongs to the session proxy (which then finds no session
    /// for a label that is not `s-<slug>`).
    pub fn session_zone(&self, domain: &str) -> Option<Exposure> {
        let (label, zone) = self.labels_under(&normal_domain(domain))?.split_once('.')?;
        if label.is_empty() {
            return None;
        }
        zone.parse().ok()
    }
}

fn normal_domain(domain: &str) -> String {
    let d = domain.trim().to_ascii_lowercase();
    d.strip_suffix('.').map(str::to_owned).unwrap_or(d)
}

impl FromStr for Host {
    type Err = HostError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim_matches([' ', '\t']);
        if s.is_empty() {
            return Err(HostError::Empty);
        }
        let (name, port) = if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or(HostError::BadName)?;
            if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
                return Err(HostError::BadName);
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(HostError::BadPort)?),
            };
            (format!("[{}]", inside.to_ascii_lowercase()), port)
        } else {
            let (name, port) = match s.split_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (s, None),
            };
            let name = name.to_ascii_lowercase();
            let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
            let ok_label =
                |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if name.is_empty() || !name.split('.').all(ok_label) {
                return Err(HostError::BadName);
            }
            (name, port)
        };
        let port = match port {
            None => None,
            Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse().map_err(|_| HostError::BadPort)?)
            }
            Some(_) => return Err(HostError::BadPort),
        };
        Ok(Self { name, port })
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name, self.port_suffix())
    }
}

/// The host of one session: `s-<slug>.<exposure>.<domain>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionHost {
    pub slug: Slug,
    pub exposure: Exposure,
}

impl SessionHost {
    /// `host` as a session's host under `domain`, exactly: one label
    /// `s-<8 chars a-z2-7>`, then the zone, then the domain.
    pub fn parse(host: &Host, domain: &str) -> Option<Self> {
        let exposure = host.session_zone(domain)?;
        let label = host.name.split('.').next()?;
        let slug = label.strip_prefix("s-")?.parse().ok()?;
        Some(Self { slug, exposure })
    }

    /// The session's own host name (no port).
    pub fn name(&self, domain: &str) -> String {
        format!("s-{}.{}.{}", self.slug, self.exposure, normal_domain(domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "medforge.example.org";

    fn host(s: &str) -> Host {
        s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn one_rule_for_case_ports_and_trailing_dots() {
        let h = host("MedForge.Example.Org.:8443");
        assert_eq!((h.name(), h.port()), ("medforge.example.org", Some(8443)));
        assert_eq!(h.to_string(), "medforge.example.org:8443");
        assert_eq!(host("medforge.localhost").port_suffix(), "");
        assert_eq!(host("medforge.localhost:8080").port_suffix(), ":8080");
        assert_eq!(host("127.0.0.1:80").name(), "127.0.0.1");
        assert_eq!(host("[::1]:8080").name(), "[::1]");
        assert_eq!(host("[::1]").port(), None);
        for (bad, why) in [
            ("", HostError::Empty),
            ("medforge.example.org:", HostError::BadPort),
            ("medforge.example.org:80:80", HostError::BadPort),
            ("medforge.example.org:80x", HostError::BadPort),
            ("medforge.example.org:123456", HostError::BadPort),
            ("medforge.example.org:65536", HostError::BadPort),
            ("[::1]x", HostError::BadPort),
            (".medforge.example.org", HostError::BadName),
            ("medforge..example.org", HostError::BadName),
            ("user@medforge.example.org", HostError::BadName),
            ("medforge.example.org/x", HostError::BadName),
            ("medforge example.org", HostError::BadName),
            ("[]", HostError::BadName),
            ("[::1", HostError::BadName),
            (".", HostError::BadName),
        ] {
            assert_eq!(bad.parse::<Host>(), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn within_a_domain_means_the_domain_or_a_name_under_it() {
        assert!(host("medforge.example.org").is_within(D));
        assert!(host("MEDFORGE.example.org.:1").is_within("medforge.example.org."));
        assert!(host("s-abcdefgh.external.medforge.example.org").is_within(D));
        for outside in ["evilmedforge.example.org", "medforge.example.org.evil.org", "example.org", "org"] {
            assert!(!host(outside).is_within(D), "{outside}");
        }
        assert!(!host("x").is_within(""), "no domain, nothing within");
    }

    #[test]
    fn session_zones_and_session_hosts_parse_strictly() {
        assert_eq!(host("anything.external.medforge.example.org").session_zone(D), Some(Exposure::External));
        assert_eq!(host("S-ABCDEFGH.Internal.medforge.example.org:8080").session_zone(D), Some(Exposure::Internal));
        for not_a_zone in [
            "external.medforge.example.org",
            "medforge.example.org",
            "api.medforge.example.org",
            "a.b.external.medforge.example.org",
            "s-abcdefgh.public.medforge.example.org",
            "s-abcdefgh.external.medforge.example.org.evil.org",
        ] {
            assert_eq!(host(not_a_zone).session_zone(D), None, "{not_a_zone}");
        }
        let slug: Slug = "abcdefgh".parse().expect("slug");
        let external = SessionHost { slug: slug.clone(), exposure: Exposure::External };
        assert_eq!(SessionHost::parse(&host("s-abcdefgh.external.medforge.example.org"), D), Some(external.clone()));
        assert_eq!(external.name(D), "s-abcdefgh.external.medforge.example.org");
        assert_eq!(
            SessionHost::parse(&host("S-ABCDEFGH.Internal.MedForge.Example.Org.:443"), D),
            Some(SessionHost { slug, exposure: Exposure::Internal })
        );
        for bad in [
            "medforge.example.org",
            "s-abcdefgh.medforge.example.org",
            "s-abcdefgh.public.medforge.example.org",
            "s-abcdefg.external.medforge.example.org",
            "s-abcdefgh1.external.medforge.example.org",
            "s-abcdefg1.external.medforge.example.org",
            "x-abcdefgh.external.medforge.example.org",
            "s-abcdefgh.external.medforge.example.org.evil.org",
            "s-abcdefgh.external.evilmedforge.example.org",
            "a.s-abcdefgh.external.medforge.example.org",
        ] {
            assert_eq!(SessionHost::parse(&host(bad), D), None, "{bad:?}");
        }
    }
}
