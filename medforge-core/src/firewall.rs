//! Session isolation: the [`Firewall`] trait and the policy it enforces.
//!
//! code-server runs with `--auth none`, so the proxy is the only gate: no
//! session may open a connection to another session, nor to the host (the
//! API, the database, Docker's TCP socket), nor to the link-local metadata
//! range. The policy is a list of backend-neutral [`Rule`]s built by the
//! pure function [`isolation_rules`]; each backend (nftables, iptables, in
//! `medforge-net-iptables`) only translates them, tags each with its
//! [`Rule::id`] so that `check` can tell ours from foreign ones, and
//! applies them atomically.
//!
//! Per sessions network (bridge `b`), in order:
//!
//! | hook | match | verdict | why |
//! | --- | --- | --- | --- |
//! | forward | out `b`, conntrack established/related | accept | replies into the network |
//! | forward | out `b`, from a proxy address, tcp dport 8080 | accept | the proxy reaches code-server |
//! | forward | out `b` | drop | nothing else opens a connection into a sessions network |
//! | forward | in `b`, to 169.254.0.0/16 | drop | no cloud metadata |
//! | input | in `b`, conntrack established/related | accept | replies to the host's own connections |
//! | input | in `b`, tcp dport in the allowed host ports | accept | what an operator opened on purpose |
//! | input | in `b` | drop | no host service: API, database, Docker TCP |
//!
//! Two sessions on one network talk across the bridge, below IP: the
//! kernel shows such frames to the IP-layer hooks above only while
//! `br_netfilter` is loaded and `net.bridge.bridge-nf-call-iptables` is 1,
//! which nothing guarantees (docs/decisions.md). So the same isolation is
//! stated once more for the bridge itself, [`bridge_rules`], per subnet
//! `s` of the network:
//!
//! | match | verdict | why |
//! | --- | --- | --- |
//! | from a proxy address `p` in `s` to `s`, tcp dport 8080 | accept | the proxy reaches code-server |
//! | from `s` to `p`, tcp sport 8080 | accept | code-server's answers (stateless: not every kernel tracks bridged connections) |
//! | from `s` to `s` | drop | no session reaches another on its own network |
//!
//! The nftables backend puts these in a `bridge` table, seen whatever the
//! sysctl says; the iptables backend cannot, and instead turns the sysctl
//! on when it applies and reports it in [`FirewallReport::unmet`] when it
//! is off. Sessions have no IPv6 at all ([`crate::network::session_sysctls`]),
//! and a network with IPv6 on is refused.
//!
//! The host itself (the built-in proxy, `medforge serve`) reaches sessions
//! through its output path, which none of this touches; outbound internet
//! from external sessions is forwarded out of another interface and stays
//! allowed.

use std::fmt;
use std::net::Ipv4Addr;

use async_trait::async_trait;
use serde::Serialize;

use crate::network::SESSION_PORT;
pub use crate::network::{Ipv4Cidr, NetworkInfo};

/// The link-local range where clouds serve instance metadata.
pub const METADATA_RANGE: Ipv4Cidr = Ipv4Cidr { addr: Ipv4Addr::new(169, 254, 0, 0), prefix: 16 };

/// What to enforce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IsolationPolicy {
    pub networks: Vec<NetworkInfo>,
    /// Addresses that may open connections to session port 8080 from
    /// another container (Caddy's fixed address on the sessions network).
    pub proxy_addrs: Vec<Ipv4Addr>,
    /// Host TCP ports sessions may reach anyway (none by default).
    pub allowed_host_ports: Vec<u16>,
}

impl IsolationPolicy {
    /// Refuses networks whose rules would cut the host off: the rules drop
    /// everything arriving on a bridge, so a runtime that described
    /// loopback (a process runtime, say) or no interface at all would take
    /// the database and the API down with the sessions.
    pub fn check_networks(&self) -> Result<(), FirewallError> {
        for n in &self.networks {
            let bridge = n.bridge.as_str();
            if bridge.is_empty() || bridge == "lo" || bridge.contains(['*', '+', ' ']) {
                return Err(FirewallError::Invalid(format!(
                    "network {} has bridge {bridge:?}: isolation rules need the network's own bridge interface",
                    n.name
                )));
            }
        }
        match self.unmet().into_iter().next() {
            Some(why) => {
                Err(FirewallError::Invalid(format!("{why}: remove the network (MedForge makes it again without IPv6)")))
            }
            None => Ok(()),
        }
    }

    /// What the networks are that the rules cannot cover, in words (for
    /// [`FirewallReport::unmet`]): a network with IPv6 on.
    pub fn unmet(&self) -> Vec<String> {
        self.networks
            .iter()
            .filter(|n| n.ipv6)
            .map(|n| format!("network {} has IPv6 on (the rules are IPv4's; sessions run without IPv6)", n.name))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// Traffic routed or bridged through the host (container to container).
    Forward,
    /// Traffic to the host itself.
    Input,
    /// Frames forwarded across a bridge, between two of its ports.
    Bridge,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    InInterface(String),
    OutInterface(String),
    /// Conntrack state established or related.
    Established,
    SourceAddr(Ipv4Addr),
    SourceNet(Ipv4Cidr),
    DestAddr(Ipv4Addr),
    DestNet(Ipv4Cidr),
    TcpDestPort(u16),
    TcpSourcePort(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Let it through this policy (other rules, Docker's, still apply).
    Accept,
    Drop,
}

/// One rule, backend-neutral.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Rule {
    pub hook: Hook,
    /// Stable and unique within a policy: backends tag the rule with it.
    pub id: String,
    pub matches: Vec<Match>,
    pub verdict: Verdict,
}

/// The rules that enforce `policy`, in order (see the module table).
pub fn isolation_rules(policy: &IsolationPolicy) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut rule = |hook, id: String, matches, verdict| rules.push(Rule { hook, id, matches, verdict });
    for n in &policy.networks {
        let b = &n.bridge;
        let out = || Match::OutInterface(b.clone());
        let inn = || Match::InInterface(b.clone());
        rule(Hook::Forward, format!("{b}-replies"), vec![out(), Match::Established], Verdict::Accept);
        for p in &policy.proxy_addrs {
            rule(
                Hook::Forward,
                format!("{b}-proxy-{p}"),
                vec![out(), Match::SourceAddr(*p), Match::TcpDestPort(SESSION_PORT)],
                Verdict::Accept,
            );
        }
        rule(Hook::Forward, format!("{b}-inbound"), vec![out()], Verdict::Drop);
        rule(Hook::Forward, format!("{b}-metadata"), vec![inn(), Match::DestNet(METADATA_RANGE)], Verdict::Drop);
        rule(Hook::Input, format!("{b}-host-replies"), vec![inn(), Match::Established], Verdict::Accept);
        for port in &policy.allowed_host_ports {
            rule(Hook::Input, format!("{b}-host-port-{port}"), vec![inn(), Match::TcpDestPort(*port)], Verdict::Accept);
        }
        rule(Hook::Input, format!("{b}-host"), vec![inn()], Verdict::Drop);
    }
    rules
}

/// The same isolation on the bridges themselves (the module's second
/// table): rules of [`Hook::Bridge`], in order.
pub fn bridge_rules(policy: &IsolationPolicy) -> Vec<Rule> {
    let mut rules = Vec::new();
    for n in &policy.networks {
        let b = &n.bridge;
        for s in &n.subnets {
            for p in policy.proxy_addrs.iter().filter(|p| s.contains(**p)) {
                rules.push(Rule {
                    hook: Hook::Bridge,
                    id: format!("{b}-{s}-bridge-proxy-{p}"),
                    matches: vec![Match::SourceAddr(*p), Match::DestNet(*s), Match::TcpDestPort(SESSION_PORT)],
                    verdict: Verdict::Accept,
                });
                rules.push(Rule {
                    hook: Hook::Bridge,
                    id: format!("{b}-{s}-bridge-proxy-{p}-answers"),
                    matches: vec![Match::SourceNet(*s), Match::DestAddr(*p), Match::TcpSourcePort(SESSION_PORT)],
                    verdict: Verdict::Accept,
                });
            }
            rules.push(Rule {
                hook: Hook::Bridge,
                id: format!("{b}-{s}-bridge-peers"),
                matches: vec![Match::SourceNet(*s), Match::DestNet(*s)],
                verdict: Verdict::Drop,
            });
        }
    }
    rules
}

/// What `check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewallReport {
    /// Ids of rules the policy wants that are not in place.
    pub missing: Vec<String>,
    /// Rules in MedForge's own table or chains that the policy does not
    /// have (left by an older policy, or added by hand), as the backend
    /// prints them.
    pub foreign: Vec<String>,
    /// What the host must be for the rules to hold and is not, in words
    /// (a sysctl off, a network with IPv6): `apply` puts right what it
    /// can, and says what it cannot.
    pub unmet: Vec<String>,
}

impl FirewallReport {
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.foreign.is_empty() && self.unmet.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// A command (`nft`, `iptables-restore`) failed: what ran, how it
    /// ended, what it said.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Enforces an [`IsolationPolicy`]. Implementations apply atomically (all
/// rules or none), idempotently (applying twice leaves one copy), and
/// remove exactly what they added.
#[async_trait]
pub trait Firewall: Send + Sync + fmt::Debug {
    /// Replaces whatever MedForge had in place with `policy`'s rules.
    async fn apply(&self, policy: &IsolationPolicy) -> Result<(), FirewallError>;
    /// Compares what is in place with `policy`'s rules.
    async fn check(&self, policy: &IsolationPolicy) -> Result<FirewallReport, FirewallError>;
    /// Removes everything MedForge added; nothing else.
    async fn remove(&self) -> Result<(), FirewallError>;
}

/// No firewall (`firewall.kind = "none"`): for laptops and tests. Sessions
/// can reach each other; `medforge doctor` says so.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFirewall;

#[async_trait]
impl Firewall for NoFirewall {
    async fn apply(&self, _: &IsolationPolicy) -> Result<(), FirewallError> {
        Ok(())
    }
    async fn check(&self, _: &IsolationPolicy) -> Result<FirewallReport, FirewallError> {
        Ok(FirewallReport::default())
    }
    async fn remove(&self) -> Result<(), FirewallError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(bridge: &str) -> NetworkInfo {
        NetworkInfo {
            name: "medforge-external-sessions".into(),
            id: "0123456789abcdef".into(),
            bridge: bridge.into(),
            subnets: vec!["172.30.0.0/16".parse().expect("cidr")],
            internal: false,
            ipv6: false,
        }
    }

    #[test]
    fn a_cidr_contains_its_addresses_only() {
        let c: Ipv4Cidr = "172.30.0.0/16".parse().expect("cidr");
        assert!(c.contains(Ipv4Addr::new(172, 30, 9, 2)));
        assert!(!c.contains(Ipv4Addr::new(172, 31, 0, 2)));
        let all: Ipv4Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
        let one: Ipv4Cidr = "10.0.0.1/32".parse().expect("cidr");
        assert!(one.contains(Ipv4Addr::new(10, 0, 0, 1)) && !one.contains(Ipv4Addr::new(10, 0, 0, 2)));
    }

    #[test]
    fn the_bridge_rules_let_the_proxy_in_and_nothing_else_across() {
        let mut other = network("br-bbb");
        other.subnets = vec!["172.31.0.0/16".parse().expect("cidr")];
        let policy = IsolationPolicy {
            networks: vec![network("br-aaa"), other],
            proxy_addrs: vec![Ipv4Addr::new(172, 30, 0, 2)],
            allowed_host_ports: vec![],
        };
        let rules = bridge_rules(&policy);
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        // The proxy is on the first network only; each network's peers are cut.
        assert_eq!(
            ids,
            [
                "br-aaa-172.30.0.0/16-bridge-proxy-172.30.0.2",
                "br-aaa-172.30.0.0/16-bridge-proxy-172.30.0.2-answers",
                "br-aaa-172.30.0.0/16-bridge-peers",
                "br-bbb-172.31.0.0/16-bridge-peers",
            ]
        );
        assert!(rules.iter().all(|r| r.hook == Hook::Bridge));
        assert_eq!(rules[2].verdict, Verdict::Drop);
        assert_eq!(rules[1].matches[2], Match::TcpSourcePort(SESSION_PORT));
    }

    #[test]
    fn cidrs_parse_strictly() {
        let c: Ipv4Cidr = "10.1.0.0/24".parse().expect("cidr");
        assert_eq!((c.addr, c.prefix, c.to_string().as_str()), (Ipv4Addr::new(10, 1, 0, 0), 24, "10.1.0.0/24"));
        for bad in ["10.1.0.0", "10.1.0.0/33", "10.1.0/24", "x/8", "10.0.0.0/-1", ""] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_policy_on_loopback_or_no_interface_is_refused() {
        let policy = |bridge: &str| IsolationPolicy {
            networks: vec![network("br-aaa"), network(bridge)],
            proxy_addrs: vec![],
            allowed_host_ports: vec![],
        };
        assert!(policy("br-bbb").check_networks().is_ok());
        for bad in ["lo", "", "br+", "br-*"] {
            let err = policy(bad).check_networks().expect_err(bad).to_string();
            assert!(err.contains("bridge"), "{bad}: {err}");
        }
    }

    #[test]
    fn each_network_gets_the_table_of_rules_in_order() {
        let policy = IsolationPolicy {
            networks: vec![network("br-aaa"), network("br-bbb")],
            proxy_addrs: vec![Ipv4Addr::new(172, 30, 0, 2)],
            allowed_host_ports: vec![],
        };
        let rules = isolation_rules(&policy);
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "br-aaa-replies",
                "br-aaa-proxy-172.30.0.2",
                "br-aaa-inbound",
                "br-aaa-metadata",
                "br-aaa-host-replies",
                "br-aaa-host",
                "br-bbb-replies",
                "br-bbb-proxy-172.30.0.2",
                "br-bbb-inbound",
                "br-bbb-metadata",
                "br-bbb-host-replies",
                "br-bbb-host",
            ]
        );
        let proxy = &rules[1];
        assert_eq!(proxy.hook, Hook::Forward);
        assert_eq!(
            proxy.matches,
            [
                Match::OutInterface("br-aaa".into()),
                Match::SourceAddr(Ipv4Addr::new(172, 30, 0, 2)),
                Match::TcpDestPort(SESSION_PORT)
            ]
        );
        assert_eq!(proxy.verdict, Verdict::Accept);
        // Everything else into the network, and everything to the host, is dropped.
        assert_eq!(
            (rules[2].matches.as_slice(), rules[2].verdict),
            ([Match::OutInterface("br-aaa".into())].as_slice(), Verdict::Drop)
        );
        assert_eq!((rules[5].hook, rules[5].verdict), (Hook::Input, Verdict::Drop));
        assert_eq!(rules[3].matches[1], Match::DestNet(METADATA_RANGE));
        // Ids are unique: backends find rules by them.
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn allowed_host_ports_come_before_the_host_drop() {
        let policy = IsolationPolicy {
            networks: vec![network("br-x")],
            proxy_addrs: vec![],
            allowed_host_ports: vec![53, 9000],
        };
        let rules = isolation_rules(&policy);
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "br-x-replies",
                "br-x-inbound",
                "br-x-metadata",
                "br-x-host-replies",
                "br-x-host-port-53",
                "br-x-host-port-9000",
                "br-x-host"
            ]
        );
        assert!(
            isolation_rules(&IsolationPolicy { networks: vec![], proxy_addrs: vec![], allowed_host_ports: vec![] })
                .is_empty()
        );
    }
}
