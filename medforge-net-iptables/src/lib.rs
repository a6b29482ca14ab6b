//! MedForge's [`Firewall`]s: session isolation enforced by the host's
//! packet filter, with two backends chosen by config.
//!
//! - [`Nftables`] (what `firewall.kind = "auto"` picks where `nft` works):
//!   tables of MedForge's own, `inet medforge` with a `forward` and an
//!   `input` chain and `bridge medforge` with a `forward` chain, at
//!   priority -1 (before Docker's filter rules), driven through `nft -j`.
//!   Applying is one transaction (add the tables, flush them, add chains
//!   and rules), so it is atomic and idempotent; removing is `delete
//!   table`, which touches nothing else.
//! - [`Iptables`]: chains `MEDFORGE-FORWARD` and `MEDFORGE-INPUT`, jumped to
//!   from Docker's `DOCKER-USER` chain and from `INPUT`, as the original
//!   deployment did; applied with one `iptables-restore --noflush`. It has
//!   no bridge table, so it turns bridge netfilter on ([`BridgeNetfilter`])
//!   and reports it when it is off.
//!
//! Both translate the rules of [`medforge_core::firewall::isolation_rules`]
//! by pure functions (unit tested below) and tag every rule with a comment
//! `medforge:<rule id>`, which is how `check` tells missing rules from
//! foreign ones.

pub mod bridge_netfilter;
pub mod iptables;
pub mod nftables;

pub use crate::bridge_netfilter::BridgeNetfilter;
pub use crate::iptables::Iptables;
pub use crate::nftables::Nftables;

use std::time::Duration;

use medforge_core::firewall::FirewallError;
use medforge_core::process;

/// The comment every rule carries.
pub fn comment(rule_id: &str) -> String {
    format!("medforge:{rule_id}")
}

const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

async fn run(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<String, FirewallError> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    process::run(program.as_ref(), &args, stdin, COMMAND_TIMEOUT).await.map_err(|f| FirewallError::Command {
        command: f.command,
        status: f.status,
        stderr: f.stderr,
    })
}
