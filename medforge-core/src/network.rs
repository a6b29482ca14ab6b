//! What the runtime and the firewall both speak of: a session's port and
//! a sessions network as the host sees it. A leaf, so that neither of the
//! two depends on the other.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::Serialize;

/// The port code-server listens on inside every session container.
pub const SESSION_PORT: u16 = 8080;

/// An IPv4 network, `a.b.c.d/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s.split_once('/').ok_or_else(|| format!("{s:?} is not a.b.c.d/len"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| format!("{s:?}: bad address"))?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| format!("{s:?}: bad prefix"))?;
        Ok(Self { addr, prefix })
    }
}

impl Ipv4Cidr {
    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A sessions network as the host sees it: what the rules match on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkInfo {
    pub name: String,
    pub id: String,
    /// The host's bridge interface, e.g. `br-0123456789ab`.
    pub bridge: String,
    pub subnets: Vec<Ipv4Cidr>,
    pub internal: bool,
    /// Whether the network gives containers IPv6 addresses. MedForge's
    /// never do (sessions run with IPv6 off, [`session_sysctls`]); the
    /// firewall refuses one that does, as its rules are IPv4's.
    pub ipv6: bool,
}

/// The kernel settings every session container gets: IPv6 off in its
/// network namespace, so a session has no IPv6 address, not even a
/// link-local one, and can neither reach nor be reached over IPv6 (the
/// isolation rules are IPv4's, and a link-local address needs no router).
/// Empty on a host without IPv6 (`/proc/sys/net/ipv6` absent), where the
/// engine could not set them and there is nothing to turn off.
pub fn session_sysctls() -> Vec<(String, String)> {
    if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
        return Vec::new();
    }
    ["net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"]
        .into_iter()
        .map(|k| (k.to_owned(), "1".to_owned()))
        .collect()
}
