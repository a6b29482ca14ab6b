//! The iptables backend: chains of MedForge's own, jumped to from Docker's
//! `DOCKER-USER` (forwarded traffic) and from `INPUT` (traffic to the
//! host), as the original deployment did. Written with one
//! `iptables-restore --noflush`, so a policy goes in whole or not at all,
//! and Docker's own rules are never rewritten. Its rules are IP-layer
//! ones: it turns bridge netfilter on first (`crate::bridge_netfilter`).

use async_trait::async_trait;
use medforge_core::firewall::{
    Firewall, FirewallError, FirewallReport, Hook, IsolationPolicy, Match, Rule, Verdict, isolation_rules,
};

use crate::{BridgeNetfilter, comment, run};

pub const FORWARD_CHAIN: &str = "MEDFORGE-FORWARD";
pub const INPUT_CHAIN: &str = "MEDFORGE-INPUT";
/// Where our chains are jumped to from.
pub const DOCKER_USER: &str = "DOCKER-USER";

/// iptables (whichever of iptables-nft or iptables-legacy the host's
/// `iptables-restore` is: the one Docker uses).
#[derive(Debug, Clone)]
pub struct Iptables {
    restore: String,
    save: String,
    bridge_netfilter: BridgeNetfilter,
}

impl Default for Iptables {
    fn default() -> Self {
        Self { restore: "iptables-restore".into(), save: "iptables-save".into(), bridge_netfilter: Default::default() }
    }
}

fn chain(hook: Hook) -> &'static str {
    match hook {
        Hook::Forward => FORWARD_CHAIN,
        Hook::Input => INPUT_CHAIN,
        // Never asked: `isolation_rules` has no bridge rules, and this
        // backend writes none (bridge netfilter takes their place).
        Hook::Bridge => FORWARD_CHAIN,
    }
}

/// One rule as an `iptables-restore` line. "Accept" is `RETURN`: the packet
/// goes back to Docker's chain (or `INPUT`), whose rules still apply.
pub fn rule_line(rule: &Rule) -> String {
    let mut line = format!("-A {}", chain(rule.hook));
    for m in &rule.matches {
        match m {
            Match::InInterface(i) => line.push_str(&format!(" -i {i}")),
            Match::OutInterface(i) => line.push_str(&format!(" -o {i}")),
            Match::Established => line.push_str(" -m conntrack --ctstate RELATED,ESTABLISHED"),
            Match::SourceAddr(a) => line.push_str(&format!(" -s {a}/32")),
            Match::DestAddr(a) => line.push_str(&format!(" -d {a}/32")),
            Match::SourceNet(n) => line.push_str(&format!(" -s {n}")),
            Match::DestNet(n) => line.push_str(&format!(" -d {n}")),
            Match::TcpDestPort(p) => line.push_str(&format!(" -p tcp -m tcp --dport {p}")),
            Match::TcpSourcePort(p) => line.push_str(&format!(" -p tcp -m tcp --sport {p}")),
        }
    }
    line.push_str(&format!(" -m comment --comment {}", comment(&rule.id)));
    line.push_str(match rule.verdict {
        Verdict::Accept => " -j RETURN",
        Verdict::Drop => " -j DROP",
    });
    line
}

/// Which of our jumps are already in place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Jumps {
    pub from_docker_user: usize,
    pub from_input: usize,
}

fn jump_line(from: &str, to: &str) -> String {
    format!("-A {from} -j {to}")
}

/// Our chains, as `iptables-restore --noflush` input: declaring a chain
/// empties it (or makes it), the rules follow, and a jump is inserted at
/// the top of `DOCKER-USER` / `INPUT` only where none is yet.
pub fn apply_script(rules: &[Rule], jumps: Jumps) -> String {
    let mut s = format!("*filter\n:{FORWARD_CHAIN} - [0:0]\n:{INPUT_CHAIN} - [0:0]\n");
    for r in rules {
        s.push_str(&rule_line(r));
        s.push('\n');
    }
    if jumps.from_docker_user == 0 {
        s.push_str(&format!("-I {DOCKER_USER} 1 -j {FORWARD_CHAIN}\n"));
    }
    if jumps.from_input == 0 {
        s.push_str(&format!("-I INPUT 1 -j {INPUT_CHAIN}\n"));
    }
    s.push_str("COMMIT\n");
    s
}

/// Undoes [`apply_script`]: every jump to our chains, then the chains.
pub fn remove_script(jumps: Jumps, chains_exist: bool) -> Option<String> {
    if jumps == Jumps::default() && !chains_exist {
        return None;
    }
    let mut s = String::from("*filter\n");
    for _ in 0..jumps.from_docker_user {
        s.push_str(&format!("-D {DOCKER_USER} -j {FORWARD_CHAIN}\n"));
    }
    for _ in 0..jumps.from_input {
        s.push_str(&format!("-D INPUT -j {INPUT_CHAIN}\n"));
    }
    if chains_exist {
        s.push_str(&format!(
            ":{FORWARD_CHAIN} - [0:0]\n:{INPUT_CHAIN} - [0:0]\n-X {FORWARD_CHAIN}\n-X {INPUT_CHAIN}\n"
        ));
    }
    s.push_str("COMMIT\n");
    Some(s)
}

/// What `iptables-save -t filter` shows of ours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    pub jumps: Jumps,
    pub chains_exist: bool,
    pub docker_user_exists: bool,
    /// Our chains' rules, as printed, in order.
    pub rules: Vec<String>,
}

pub fn parse_save(saved: &str) -> Saved {
    let mut out = Saved::default();
    for line in saved.lines() {
        if line == format!(":{FORWARD_CHAIN} - [0:0]") || line.starts_with(&format!(":{FORWARD_CHAIN} ")) {
            out.chains_exist = true;
        }
        if line.starts_with(&format!(":{DOCKER_USER} ")) {
            out.docker_user_exists = true;
        }
        if line == jump_line(DOCKER_USER, FORWARD_CHAIN) {
            out.jumps.from_docker_user += 1;
        }
        if line == jump_line("INPUT", INPUT_CHAIN) {
            out.jumps.from_input += 1;
        }
        if line.starts_with(&format!("-A {FORWARD_CHAIN} ")) || line.starts_with(&format!("-A {INPUT_CHAIN} ")) {
            out.rules.push(line.to_owned());
        }
    }
    out
}

/// The rule's comment as `iptables-save` prints it (quoted or not).
fn comment_of(line: &str) -> Option<String> {
    let rest = line.split(" --comment ").nth(1)?;
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    Some(rest.split(['"', ' ']).next()?.to_owned())
}

/// Compares what is saved with the rules wanted: pure, for unit tests.
pub fn compare(saved: &Saved, rules: &[Rule]) -> FirewallReport {
    let mut report = FirewallReport::default();
    if saved.jumps.from_docker_user == 0 {
        report.missing.push(format!("jump from {DOCKER_USER} to {FORWARD_CHAIN}"));
    }
    if saved.jumps.from_input == 0 {
        report.missing.push(format!("jump from INPUT to {INPUT_CHAIN}"));
    }
    let have: Vec<(Option<String>, &String)> = saved.rules.iter().map(|l| (comment_of(l), l)).collect();
    let want: Vec<String> = rules.iter().map(|r| comment(&r.id)).collect();
    for (r, w) in rules.iter().zip(&want) {
        if !have.iter().any(|(c, _)| c.as_ref() == Some(w)) {
            report.missing.push(r.id.clone());
        }
    }
    for (c, line) in &have {
        if !c.as_ref().is_some_and(|c| want.contains(c)) {
            report.foreign.push((*line).clone());
        }
    }
    report
}

impl Iptables {
    /// Whether this host lets us read (and so, as the same user, write)
    /// the filter table: `iptables-save -t filter` works.
    pub async fn usable(&self) -> Result<(), FirewallError> {
        self.saved().await.map(drop)
    }

    async fn saved(&self) -> Result<Saved, FirewallError> {
        Ok(parse_save(&run(&self.save, &["-t", "filter"], None).await?))
    }
}

#[async_trait]
impl Firewall for Iptables {
    async fn apply(&self, policy: &IsolationPolicy) -> Result<(), FirewallError> {
        policy.check_networks()?;
        let saved = self.saved().await?;
        if !saved.docker_user_exists {
            return Err(FirewallError::Invalid(format!(
                "the {DOCKER_USER} chain does not exist: start dockerd (with its iptables rules) first"
            )));
        }
        self.bridge_netfilter.enforce().await?;
        let rules = isolation_rules(policy);
        run(&self.restore, &["--noflush"], Some(apply_script(&rules, saved.jumps).as_bytes())).await?;
        tracing::info!(rules = rules.len(), "iptables isolation applied");
        Ok(())
    }

    async fn check(&self, policy: &IsolationPolicy) -> Result<FirewallReport, FirewallError> {
        let mut report = compare(&self.saved().await?, &isolation_rules(policy));
        report.unmet = policy.unmet();
        report.unmet.extend(self.bridge_netfilter.unmet());
        Ok(report)
    }

    async fn remove(&self) -> Result<(), FirewallError> {
        let saved = self.saved().await?;
        if let Some(script) = remove_script(saved.jumps, saved.chains_exist) {
            run(&self.restore, &["--noflush"], Some(script.as_bytes())).await?;
            tracing::info!("iptables isolation removed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use medforge_core::firewall::NetworkInfo;

    use super::*;

    fn rules() -> Vec<Rule> {
        isolation_rules(&IsolationPolicy {
            networks: vec![NetworkInfo {
                name: "n".into(),
                id: "0123456789abcdef".into(),
                bridge: "br-0123456789ab".into(),
                subnets: vec![],
                internal: false,
                ipv6: false,
            }],
            proxy_addrs: vec![Ipv4Addr::new(172, 30, 0, 2)],
            allowed_host_ports: vec![9000],
        })
    }

    #[test]
    fn rules_read_as_iptables_save_prints_them() {
        let lines: Vec<String> = rules().iter().map(rule_line).collect();
        assert_eq!(
            lines,
            [
                "-A MEDFORGE-FORWARD -o br-0123456789ab -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment medforge:br-0123456789ab-replies -j RETURN",
                "-A MEDFORGE-FORWARD -o br-0123456789ab -s 172.30.0.2/32 -p tcp -m tcp --dport 8080 -m comment --comment medforge:br-0123456789ab-proxy-172.30.0.2 -j RETURN",
                "-A MEDFORGE-FORWARD -o br-0123456789ab -m comment --comment medforge:br-0123456789ab-inbound -j DROP",
                "-A MEDFORGE-FORWARD -i br-0123456789ab -d 169.254.0.0/16 -m comment --comment medforge:br-0123456789ab-metadata -j DROP",
                "-A MEDFORGE-INPUT -i br-0123456789ab -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment medforge:br-0123456789ab-host-replies -j RETURN",
                "-A MEDFORGE-INPUT -i br-0123456789ab -p tcp -m tcp --dport 9000 -m comment --comment medforge:br-0123456789ab-host-port-9000 -j RETURN",
                "-A MEDFORGE-INPUT -i br-0123456789ab -m comment --comment medforge:br-0123456789ab-host -j DROP",
            ]
        );
    }

    #[test]
    fn scripts_insert_jumps_once_and_remove_exactly_what_they_added() {
        let r = rules();
        let first = apply_script(&r, Jumps::default());
        assert!(first.starts_with("*filter\n:MEDFORGE-FORWARD - [0:0]\n:MEDFORGE-INPUT - [0:0]\n"));
        assert!(first.contains("-I DOCKER-USER 1 -j MEDFORGE-FORWARD\n-I INPUT 1 -j MEDFORGE-INPUT\nCOMMIT\n"));
        let again = apply_script(&r, Jumps { from_docker_user: 1, from_input: 1 });
        assert!(!again.contains("-I "), "{again}");
        assert_eq!(remove_script(Jumps::default(), false), None);
        assert_eq!(
            remove_script(Jumps { from_docker_user: 2, from_input: 1 }, true).expect("script"),
            "*filter\n-D DOCKER-USER -j MEDFORGE-FORWARD\n-D DOCKER-USER -j MEDFORGE-FORWARD\n-D INPUT -j MEDFORGE-INPUT\n\
             :MEDFORGE-FORWARD - [0:0]\n:MEDFORGE-INPUT - [0:0]\n-X MEDFORGE-FORWARD\n-X MEDFORGE-INPUT\nCOMMIT\n"
        );
    }

    #[test]
    fn saved_rules_are_compared_by_comment() {
        let r = rules();
        let mut saved = String::from("*filter\n:INPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n:MEDFORGE-FORWARD - [0:0]\n");
        saved.push_str("-A INPUT -j MEDFORGE-INPUT\n-A DOCKER-USER -j MEDFORGE-FORWARD\n");
        for l in r.iter().map(rule_line) {
            saved.push_str(&l);
            saved.push('\n');
        }
        let parsed = parse_save(&saved);
        assert!(parsed.chains_exist && parsed.docker_user_exists);
        assert_eq!(parsed.jumps, Jumps { from_docker_user: 1, from_input: 1 });
        assert!(compare(&parsed, &r).is_ok(), "{:?}", compare(&parsed, &r));

        let mut tampered = parsed.clone();
        tampered.rules.remove(2);
        tampered.rules.push("-A MEDFORGE-FORWARD -j ACCEPT".into());
        tampered.jumps.from_input = 0;
        let report = compare(&tampered, &r);
        assert_eq!(report.missing, ["jump from INPUT to MEDFORGE-INPUT", "br-0123456789ab-inbound"]);
        assert_eq!(report.foreign, ["-A MEDFORGE-FORWARD -j ACCEPT"]);
        assert_eq!(comment_of("-A X -m comment --comment \"medforge:a b\" -j DROP").as_deref(), Some("medforge:a"));
    }
}
