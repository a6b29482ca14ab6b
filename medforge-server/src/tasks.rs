//! Background work of `serve` beside the session watcher: keeping the
//! isolation rules in place, sampling the GPUs, the idle and lifetime
//! limits, and the wait queue's offers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use medforge_core::events::EventContext;

use crate::config::FirewallKind;
use crate::service::passes::Revoked;
use crate::service::{AppState, isolation, notify, queue, sessions};

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

/// Every `firewall.check_interval`, reads the networks again (Docker may have
/// recreated them, with new bridges) and checks the rules; whatever is
/// missing (a dockerd restart, a flush by hand) is put back.
pub async fn keep_isolation(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    if state.config.firewall.kind == FirewallKind::None {
        return;
    }
    let every = state.config.firewall.check_interval;
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

/// Every `telemetry.interval`, reads every GPU and charges the reading to
/// the sessions holding them ([`crate::service::gpu_monitor`]); writes the
/// aggregates of sessions that ended at once, of the others every minute,
/// and all of them when `serve` stops. Nothing to do without telemetry.
pub async fn sample_gpus(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    if !state.telemetry.is_live() {
        return;
    }
    let mut every = tokio::time::interval(state.gpu_monitor.interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = every.tick() => {}
        }
        if let Err(e) = sample_once(&state).await {
            tracing::error!(error = %e, "GPU usage could not be written; it is kept and written with the next");
        }
    }
    let rows = state.gpu_monitor.all_rows();
    if let Err(e) = state.store.record_gpu_usage(&rows).await {
        tracing::error!(error = %e, rows = rows.len(), "GPU usage lost at shutdown");
    }
}

/// One reading, charged and written.
pub async fn sample_once(state: &AppState) -> Result<(), medforge_core::store::StoreError> {
    let reading = state.telemetry.sample().await.map_err(|e| e.to_string());
    if let Err(why) = &reading
        && state.gpu_monitor.failure().is_none()
    {
        tracing::warn!(%why, "GPU reading failed");
    }
    // Sessions with a container: a GPU the queue keeps for someone
    // (`reserved`) runs nothing of theirs yet, and is not charged.
    let running: std::collections::HashSet<_> =
        state.store.active_sessions().await?.into_iter().map(|s| s.id).collect();
    let holders: Vec<_> = state
        .store
        .list_gpus()
        .await?
        .into_iter()
        .filter_map(|g| Some((g.id, g.session_id?)))
        .filter(|(_, s)| running.contains(s))
        .collect();
    for session in state.gpu_monitor.unknown(&holders) {
        let rows = state.store.session_gpu_usage(session).await?;
        state.gpu_monitor.resume(session, rows);
    }
    let recorded = state.gpu_monitor.record(medforge_core::model::now(), reading, &holders);
    state.store.record_gpu_usage(&recorded.rows).await?;
    state.gpu_monitor.written(&recorded);
    Ok(())
}

/// Every second: what the proxy and the GPUs say about use is written,
/// then the idle and lifetime rules run ([`medforge_core::limits`]):
/// owners are warned, and the stops that are due are claimed (their
/// hosts closed at once) and finished in the background.
pub async fn enforce_limits(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = every.tick() => {}
        }
        if let Err(e) = limits_once(&state).await {
            tracing::error!(error = %e, "the session limits could not be checked");
        }
    }
    // What was seen last is kept for the next start.
    if let Err(e) = state.activity.flush(state.store.as_ref()).await {
        tracing::warn!(error = %e, "session activity lost at shutdown");
    }
}

/// One pass of [`enforce_limits`].
pub async fn limits_once(
    state: &Arc<AppState>,
) -> Result<medforge_core::lifecycle::LimitsReport, medforge_core::lifecycle::LifecycleError> {
    busy_gpus_are_activity(state).await?;
    state.activity.flush(state.store.as_ref()).await?;
    let report = state.lifecycle.enforce_limits().await?;
    for id in &report.warned {
        if let Some(session) = state.store.session(*id).await?
            && let Some(warning) = session.warning
        {
            notify::send(state, notify::Notice::warning(state, &session, &warning).await);
        }
    }
    for (claimed, reason) in &report.claimed {
        state.revoke(Revoked::Session(claimed.slug.clone()));
        let ctx = EventContext::correlation(format!("limits:{}", claimed.id));
        sessions::finish_in_background(state, claimed.clone(), *reason, ctx);
    }
    Ok(report)
}

/// A GPU at `sessions.busy_gpu_utilization` or above in its latest reading
/// counts as use of the session holding it: a training run keeps its
/// session alive with the browser closed. Readings older than three
/// sampling intervals (telemetry stalled) count for nothing.
async fn busy_gpus_are_activity(state: &AppState) -> Result<(), medforge_core::store::StoreError> {
    if !state.gpu_monitor.live {
        return Ok(());
    }
    let now = state.lifecycle.now();
    let fresh = time::Duration::try_from(state.gpu_monitor.interval * 3).unwrap_or(time::Duration::MAX);
    let busy = state.config.sessions.busy_gpu_utilization * 100.0;
    for gpu in state.store.list_gpus().await? {
        let (Some(session), Some(reading)) = (gpu.session_id, state.gpu_monitor.latest(gpu.id.0)) else { continue };
        if f64::from(reading.sample.utilization_percent) >= busy && now - reading.at <= fresh {
            state.activity.touch(session, now);
        }
    }
    Ok(())
}

/// Offers GPUs to the wait queue: at once when a session ends (the
/// lifecycle wakes it), and every second for offers that lapse.
pub async fn run_queue(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = state.lifecycle.gpu_freed().notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Err(e) = queue::offer_round(&state).await {
            tracing::error!(error = %e, "the queue's offer round failed");
        }
    }
}
