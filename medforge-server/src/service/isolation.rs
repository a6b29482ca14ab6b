//! The isolation policy the firewall enforces, read from the config and
//! the runtime's sessions networks; and whether it is in place now.

use medforge_core::firewall::{FirewallError, IsolationPolicy};
use medforge_core::runtime::{ContainerRuntime, RuntimeError};

use super::state::AppState;
use crate::config::{Config, FirewallKind};

/// Why the policy could not be read or checked.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error("network {name}: {source}")]
    Network { name: String, source: RuntimeError },
    #[error("firewall: {0}")]
    Firewall(#[from] FirewallError),
}

/// What the firewall enforces: both sessions networks (created if missing,
/// so their bridges exist) as the runtime sees them now.
pub async fn policy(config: &Config, runtime: &dyn ContainerRuntime) -> Result<IsolationPolicy, IsolationError> {
    let mut networks = Vec::new();
    for (name, internal) in [(&config.runtime.external_network, false), (&config.runtime.internal_network, true)] {
        let network = runtime
            .sessions_network(name, internal)
            .await
            .map_err(|source| IsolationError::Network { name: name.clone(), source })?;
        networks.push(network);
    }
    Ok(IsolationPolicy {
        networks,
        proxy_addrs: config.firewall.proxy_addrs.clone(),
        allowed_host_ports: config.firewall.allowed_host_ports.clone(),
    })
}

/// True with no firewall, else whether every rule is in place right now
/// (for `/healthz`: a missing rule shows at once).
pub async fn in_place(state: &AppState) -> bool {
    if state.config.firewall.kind == FirewallKind::None {
        return true;
    }
    match policy(&state.config, state.runtime.as_ref()).await {
        Ok(policy) => state.firewall.check(&policy).await.is_ok_and(|r| r.is_ok()),
        Err(_) => false,
    }
}

/// One apply at a time: the keeper and session starts may all find the
/// rules gone at once.
static APPLYING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Puts back whatever rule is missing (a dockerd restart, a flush by
/// hand, bridge netfilter turned off); `Ok(false)` when all was in place.
pub async fn repair(state: &AppState) -> Result<bool, IsolationError> {
    let policy = policy(&state.config, state.runtime.as_ref()).await?;
    let report = state.firewall.check(&policy).await?;
    if report.is_ok() {
        return Ok(false);
    }
    let _one = APPLYING.lock().await;
    tracing::warn!(
        missing = ?report.missing,
        foreign = report.foreign.len(),
        unmet = ?report.unmet,
        "isolation rules changed: applying again"
    );
    state.firewall.apply(&policy).await?;
    Ok(true)
}

/// Whether a session may start: the rules are in place, or were put back
/// just now (as the keeper would at its next check). `false` when they
/// cannot be (a network with IPv6 on, no right to change the ruleset):
/// then no session starts until an admin puts it right.
pub async fn ensure(state: &AppState) -> bool {
    if state.config.firewall.kind == FirewallKind::None {
        return true;
    }
    match repair(state).await {
        Ok(false) => true,
        Ok(true) => in_place(state).await,
        Err(e) => {
            tracing::error!(error = %e, "the isolation rules are not in place and cannot be put back");
            false
        }
    }
}
