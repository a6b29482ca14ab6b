//! Background work of `serve` beside the session watcher: keeping the
//! isolation rules in place.

use std::sync::Arc;
use std::time::Duration;

use crate::config::FirewallKind;
use crate::stack;
use crate::state::AppState;

/// Applies the isolation policy once; `serve` refuses to start when this
/// fails, rather than serve sessions that can reach each other.
pub async fn apply_isolation(state: &AppState) -> Result<(), String> {
    if state.config.firewall.kind == FirewallKind::None {
        tracing::warn!("firewall.kind = \"none\": sessions are not isolated from each other");
        return Ok(());
    }
    let policy = stack::isolation_policy(&state.config, state.runtime.as_ref()).await?;
    state.firewall.apply(&policy).await.map_err(|e| format!("firewall: {e}"))?;
    tracing::info!(kind = ?state.config.firewall.kind, networks = policy.networks.len(), "isolation rules applied");
    Ok(())
}

/// Every `check_interval_secs`, reads the networks again (Docker may have
/// recreated them, with new bridges) and checks the rules; whatever is
/// missing (a dockerd restart, a flush by hand) is put back.
pub async fn keep_isolation(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    if state.config.firewall.kind == FirewallKind::None {
        return;
    }
    let every = Duration::from_secs(state.config.firewall.check_interval_secs);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(every) => {}
        }
        if let Err(e) = check_and_repair(&state).await {
            tracing::error!(error = %e, "firewall check failed");
        }
    }
}

/// For `/healthz`: true with no firewall, else whether every rule is in
/// place right now.
pub async fn isolation_in_place(state: &AppState) -> bool {
    if state.config.firewall.kind == FirewallKind::None {
        return true;
    }
    match stack::isolation_policy(&state.config, state.runtime.as_ref()).await {
        Ok(policy) => state.firewall.check(&policy).await.is_ok_and(|r| r.is_ok()),
        Err(_) => false,
    }
}

async fn check_and_repair(state: &AppState) -> Result<(), String> {
    let policy = stack::isolation_policy(&state.config, state.runtime.as_ref()).await?;
    let report = state.firewall.check(&policy).await.map_err(|e| e.to_string())?;
    if report.is_ok() {
        return Ok(());
    }
    tracing::warn!(missing = ?report.missing, foreign = report.foreign.len(), "isolation rules changed: applying again");
    metrics::counter!("medforge_firewall_reapplied_total").increment(1);
    state.firewall.apply(&policy).await.map_err(|e| e.to_string())
}
