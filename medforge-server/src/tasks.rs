//! Background work of `serve` beside the session watcher: keeping the
//! isolation rules in place.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::FirewallKind;
use crate::service::{AppState, isolation};

/// Applies the isolation policy once; `serve` refuses to start when this
/// fails, rather than serve sessions that can reach each other.
pub async fn apply_isolation(state: &AppState) -> anyhow::Result<()> {
    if state.config.firewall.kind == FirewallKind::None {
        tracing::warn!("firewall.kind = \"none\": sessions are not isolated from each other");
        return Ok(());
    }
    let policy = isolation::policy(&state.config, state.runtime.as_ref()).await?;
    state.firewall.apply(&policy).await.context("firewall")?;
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
        match isolation::repair(&state).await {
            Ok(true) => metrics::counter!("medforge_firewall_reapplied_total").increment(1),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "firewall check failed"),
        }
    }
}
