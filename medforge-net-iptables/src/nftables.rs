//! The nftables backend, through `nft -j`: `table inet medforge` (the IP
//! layer: forwarded and host-bound traffic) and `table bridge medforge`
//! (frames across a sessions bridge, seen whether or not bridge netfilter
//! hands them to the IP layer: docs/decisions.md). One transaction writes
//! both.

use async_trait::async_trait;
use medforge_core::firewall::{
    Firewall, FirewallError, FirewallReport, Hook, IsolationPolicy, Match, Rule, Verdict, bridge_rules, isolation_rules,
};
use serde_json::{Value, json};

use crate::{comment, run};

/// The tables' name (families `inet` and `bridge`).
pub const TABLE: &str = "medforge";

/// Both families' tables hold our rules.
const FAMILIES: [&str; 2] = ["inet", "bridge"];

/// nftables, driven through `nft -j` (the `nft` binary on `PATH`).
#[derive(Debug, Clone)]
pub struct Nftables {
    nft: String,
    table: String,
}

impl Default for Nftables {
    fn default() -> Self {
        Self { nft: "nft".into(), table: TABLE.into() }
    }
}

impl Nftables {
    /// Another table name: tests run beside a real deployment's table.
    pub fn with_table(table: impl Into<String>) -> Self {
        Self { table: table.into(), ..Self::default() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

/// Where a hook's rules go: (family, chain).
fn place(hook: Hook) -> (&'static str, &'static str) {
    match hook {
        Hook::Forward => ("inet", "forward"),
        Hook::Input => ("inet", "input"),
        Hook::Bridge => ("bridge", "forward"),
    }
}

/// Every rule the policy wants, both tables.
fn all_rules(policy: &IsolationPolicy) -> Vec<Rule> {
    let mut rules = isolation_rules(policy);
    rules.extend(bridge_rules(policy));
    rules
}

fn expression(m: &Match) -> Value {
    let is = |left: Value, right: Value| json!({ "match": { "op": "==", "left": left, "right": right } });
    match m {
        Match::InInterface(i) => is(json!({ "meta": { "key": "iifname" } }), json!(i)),
        Match::OutInterface(i) => is(json!({ "meta": { "key": "oifname" } }), json!(i)),
        Match::Established => json!({ "match": {
            "op": "in", "left": { "ct": { "key": "state" } }, "right": ["established", "related"]
        } }),
        Match::SourceAddr(a) => is(ip("saddr"), json!(a.to_string())),
        Match::DestAddr(a) => is(ip("daddr"), json!(a.to_string())),
        Match::SourceNet(n) => is(ip("saddr"), prefix(n)),
        Match::DestNet(n) => is(ip("daddr"), prefix(n)),
        Match::TcpDestPort(p) => is(json!({ "payload": { "protocol": "tcp", "field": "dport" } }), json!(p)),
        Match::TcpSourcePort(p) => is(json!({ "payload": { "protocol": "tcp", "field": "sport" } }), json!(p)),
    }
}

fn ip(field: &str) -> Value {
    json!({ "payload": { "protocol": "ip", "field": field } })
}

fn prefix(n: &medforge_core::firewall::Ipv4Cidr) -> Value {
    json!({ "prefix": { "addr": n.addr.to_string(), "len": n.prefix } })
}

/// One rule as `nft -j` takes it.
pub fn rule_json(table: &str, rule: &Rule) -> Value {
    let mut expr: Vec<Value> = rule.matches.iter().map(expression).collect();
    expr.push(match rule.verdict {
        Verdict::Accept => json!({ "accept": null }),
        Verdict::Drop => json!({ "drop": null }),
    });
    let (family, chain) = place(rule.hook);
    json!({ "rule": {
        "family": family, "table": table, "chain": chain, "expr": expr, "comment": comment(&rule.id)
    } })
}

/// The whole policy as one `nft -j -f -` transaction: both tables made if
/// missing and emptied, their chains, every rule. Atomic, and idempotent.
pub fn apply_batch(table: &str, rules: &[Rule]) -> Value {
    let mut cmds = Vec::new();
    for family in FAMILIES {
        let t = json!({ "family": family, "name": table });
        cmds.push(json!({ "add": { "table": t } }));
        cmds.push(json!({ "flush": { "table": t } }));
    }
    for (family, name) in [("inet", "forward"), ("inet", "input"), ("bridge", "forward")] {
        cmds.push(json!({ "add": { "chain": {
            "family": family, "table": table, "name": name,
            "type": "filter", "hook": name, "prio": -1, "policy": "accept"
        } } }));
    }
    cmds.extend(rules.iter().map(|r| json!({ "add": rule_json(table, r) })));
    json!({ "nftables": cmds })
}

/// What `nft -j list table` printed (of both tables), as `("family
/// chain", comment, a rendering)` per rule, in order.
pub fn listed_rules(listing: &Value) -> Vec<(String, Option<String>, String)> {
    listing["nftables"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.get("rule"))
                .map(|r| {
                    let at = format!(
                        "{} {}",
                        r["family"].as_str().unwrap_or("inet"),
                        r["chain"].as_str().unwrap_or_default()
                    );
                    let shown = format!("{at} handle {}: {}", r["handle"], r["expr"]);
                    (at, r["comment"].as_str().map(str::to_owned), shown)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Compares a listing with the rules wanted: pure, for unit tests.
pub fn compare(listing: Option<&Value>, rules: &[Rule]) -> FirewallReport {
    let Some(listing) = listing else {
        return FirewallReport { missing: rules.iter().map(|r| r.id.clone()).collect(), ..FirewallReport::default() };
    };
    let listed = listed_rules(listing);
    let mut report = FirewallReport::default();
    for hook in [Hook::Forward, Hook::Input, Hook::Bridge] {
        let (family, chain) = place(hook);
        let chain = format!("{family} {chain}");
        let want: Vec<String> = rules.iter().filter(|r| r.hook == hook).map(|r| comment(&r.id)).collect();
        let have: Vec<&(String, Option<String>, String)> = listed.iter().filter(|(c, _, _)| *c == chain).collect();
        for w in &want {
            if !have.iter().any(|(_, c, _)| c.as_ref() == Some(w)) {
                report.missing.push(w.trim_start_matches("medforge:").to_owned());
            }
        }
        for (_, c, shown) in &have {
            if !c.as_ref().is_some_and(|c| want.contains(c)) {
                report.foreign.push(shown.clone());
            }
        }
        let order: Vec<&String> = have.iter().filter_map(|(_, c, _)| c.as_ref()).filter(|c| want.contains(c)).collect();
        if report.missing.is_empty() && order.len() == want.len() && order.iter().zip(&want).any(|(a, b)| *a != b) {
            report.foreign.push(format!("chain {chain}: rules out of order"));
        }
    }
    report
}

impl Nftables {
    /// One family's table as `nft -j` lists it; `None` when it is not there.
    async fn table_listing(&self, family: &str) -> Result<Option<Value>, FirewallError> {
        match run(&self.nft, &["-j", "list", "table", family, &self.table], None).await {
            Ok(out) => serde_json::from_str(&out)
                .map(Some)
                .map_err(|e| FirewallError::Invalid(format!("nft -j printed something that is not JSON: {e}"))),
            Err(FirewallError::Command { stderr, .. }) if stderr.contains("No such file or directory") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether this host lets us write our tables: `nft --check` of the
    /// batch `apply` would send (both families, every chain), which the
    /// kernel validates and throws away. Fails without the right to
    /// change the ruleset, and on a kernel without nftables' bridge family.
    pub async fn usable(&self) -> Result<(), FirewallError> {
        let batch = apply_batch(&self.table, &[]).to_string();
        run(&self.nft, &["--check", "-j", "-f", "-"], Some(batch.as_bytes())).await.map(drop)
    }

    /// Both tables' items in one listing; `None` when neither is there.
    async fn listing(&self) -> Result<Option<Value>, FirewallError> {
        let mut items = Vec::new();
        let mut any = false;
        for family in FAMILIES {
            if let Some(listing) = self.table_listing(family).await? {
                any = true;
                items.extend(listing["nftables"].as_array().cloned().unwrap_or_default());
            }
        }
        Ok(any.then(|| json!({ "nftables": items })))
    }
}

#[async_trait]
impl Firewall for Nftables {
    async fn apply(&self, policy: &IsolationPolicy) -> Result<(), FirewallError> {
        policy.check_networks()?;
        let rules = all_rules(policy);
        let batch = apply_batch(&self.table, &rules).to_string();
        run(&self.nft, &["-j", "-f", "-"], Some(batch.as_bytes())).await?;
        tracing::info!(table = %self.table, rules = rules.len(), "nftables isolation applied");
        Ok(())
    }

    async fn check(&self, policy: &IsolationPolicy) -> Result<FirewallReport, FirewallError> {
        let mut report = compare(self.listing().await?.as_ref(), &all_rules(policy));
        report.unmet = policy.unmet();
        Ok(report)
    }

    async fn remove(&self) -> Result<(), FirewallError> {
        for family in FAMILIES {
            if self.table_listing(family).await?.is_some() {
                run(&self.nft, &["delete", "table", family, &self.table], None).await?;
                tracing::info!(table = %self.table, family, "nftables isolation removed");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use medforge_core::firewall::NetworkInfo;

    use super::*;

    fn policy() -> IsolationPolicy {
        IsolationPolicy {
            networks: vec![NetworkInfo {
                name: "n".into(),
                id: "0123456789abcdef".into(),
                bridge: "br-0123456789ab".into(),
                subnets: vec!["172.30.0.0/16".parse().expect("cidr")],
                internal: false,
                ipv6: false,
            }],
            proxy_addrs: vec![Ipv4Addr::new(172, 30, 0, 2)],
            allowed_host_ports: vec![],
        }
    }

    #[test]
    fn the_batch_is_one_transaction_that_empties_and_refills_our_tables() {
        let rules = all_rules(&policy());
        let batch = apply_batch("medforge", &rules);
        let cmds = batch["nftables"].as_array().expect("array");
        assert_eq!(cmds[0], json!({"add": {"table": {"family": "inet", "name": "medforge"}}}));
        assert_eq!(cmds[1], json!({"flush": {"table": {"family": "inet", "name": "medforge"}}}));
        assert_eq!(cmds[2], json!({"add": {"table": {"family": "bridge", "name": "medforge"}}}));
        assert_eq!(cmds[3], json!({"flush": {"table": {"family": "bridge", "name": "medforge"}}}));
        assert_eq!(cmds[4]["add"]["chain"]["hook"], "forward");
        assert_eq!(cmds[4]["add"]["chain"]["prio"], -1);
        assert_eq!(cmds[5]["add"]["chain"]["hook"], "input");
        assert_eq!(
            (&cmds[6]["add"]["chain"]["family"], &cmds[6]["add"]["chain"]["hook"]),
            (&json!("bridge"), &json!("forward"))
        );
        const HEAD: usize = 7;
        assert_eq!(cmds.len(), HEAD + rules.len());
        assert_eq!(
            cmds[HEAD + 1]["add"],
            json!({"rule": {"family": "inet", "table": "medforge", "chain": "forward", "comment": "medforge:br-0123456789ab-proxy-172.30.0.2", "expr": [
                {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "br-0123456789ab"}},
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "172.30.0.2"}},
                {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
                {"accept": null}
            ]}})
        );
        assert_eq!(cmds[HEAD]["add"]["rule"]["expr"][1]["match"]["right"], json!(["established", "related"]));
        assert_eq!(
            cmds[HEAD + 3]["add"]["rule"]["expr"][1]["match"]["right"],
            json!({"prefix": {"addr": "169.254.0.0", "len": 16}})
        );
        // The bridge table's last rule: nothing between two of the subnet's addresses.
        assert_eq!(
            cmds.last().expect("a rule")["add"],
            json!({"rule": {"family": "bridge", "table": "medforge", "chain": "forward", "comment": "medforge:br-0123456789ab-172.30.0.0/16-bridge-peers", "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "172.30.0.0", "len": 16}}}},
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "172.30.0.0", "len": 16}}}},
                {"drop": null}
            ]}})
        );
    }

    #[test]
    fn compare_finds_missing_foreign_and_misordered_rules() {
        let rules = isolation_rules(&policy());
        let listed = |comments: &[Option<&str>]| {
            let mut items = vec![json!({"metainfo": {}}), json!({"table": {"name": "medforge"}})];
            for (i, c) in comments.iter().enumerate() {
                let chain = if c.is_some_and(|c| c.contains("host")) { "input" } else { "forward" };
                let mut r = json!({"chain": chain, "handle": i, "expr": []});
                if let Some(c) = c {
                    r["comment"] = json!(format!("medforge:{c}"));
                }
                items.push(json!({ "rule": r }));
            }
            json!({ "nftables": items })
        };
        let all: Vec<Option<&str>> = rules.iter().map(|r| Some(r.id.as_str())).collect();
        assert!(compare(Some(&listed(&all)), &rules).is_ok());
        assert_eq!(compare(None, &rules).missing.len(), rules.len());

        let mut fewer = all.clone();
        fewer.remove(2);
        assert_eq!(compare(Some(&listed(&fewer)), &rules).missing, ["br-0123456789ab-inbound"]);

        let mut extra = all.clone();
        extra.push(None);
        let report = compare(Some(&listed(&extra)), &rules);
        assert!(report.missing.is_empty());
        assert_eq!(report.foreign.len(), 1, "{report:?}");

        let mut swapped = all.clone();
        swapped.swap(0, 2);
        assert_eq!(compare(Some(&listed(&swapped)), &rules).foreign, ["chain inet forward: rules out of order"]);
    }
}
