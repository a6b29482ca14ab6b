//! Code-server sessions as a user or admin asks for them: start, stop,
//! find, and the snapshots of a workspace. The lifecycle itself (create,
//! watch, reconcile) is `medforge_core::lifecycle`.

use std::sync::Arc;

use medforge_core::events::{Event, EventContext, StopReason};
use medforge_core::lifecycle::{LifecycleError, StopClaim};
use medforge_core::model::{self, Exposure, PackId, QueueState, Session, SessionId, User};
use medforge_core::storage::Snapshot;
use medforge_core::store::{AllocationRequest, Extension};
use tracing::Instrument;

use super::error::{Conflict, Denied, Error, Missing};
use super::passes::Revoked;
use super::state::AppState;
use crate::telemetry;

/// Allocates a session and starts its container in the background: the
/// row, `starting`. The client follows progress by polling the session or
/// its event stream.
#[tracing::instrument(skip_all, fields(user_id = %user.id, %exposure))]
pub async fn start(
    state: &AppState,
    user: &User,
    exposure: Exposure,
    pack_id: Option<PackId>,
    request_id: &str,
) -> Result<Session, Error> {
    if !user.may_use(exposure) {
        return Err(Error::Forbidden(Denied::NotEntitled));
    }
    // A session started while the rules are down could reach the others
    // (and they it) until they are back: they are put back first, and
    // none starts while they cannot be.
    if !super::isolation::ensure(state).await {
        return Err(Error::IsolationDown);
    }
    let now = state.lifecycle.now();
    // A GPU the queue offered this user is theirs to claim: the allocation
    // takes it (and the entry), so the claim shows in the events.
    let offered = state.store.queue_entry(user.id, exposure).await?.filter(|e| e.state == QueueState::Offered);
    let expires_at = state.lifecycle.limits().expires_at(user, now);
    let request = AllocationRequest { user_id: user.id, exposure, pack_id, now, expires_at };
    let session = state.lifecycle.allocate(request).await.map_err(|e| match e {
        LifecycleError::Allocation(a) => Error::from(a),
        LifecycleError::Store(s) => Error::from(s),
        other => Error::internal(other),
    })?;
    if let Some(entry) = offered.filter(|e| e.session_id == Some(session.id)) {
        let claim = Event::QueueClaim {
            entry_id: entry.id,
            user_id: user.id,
            exposure,
            session_id: session.id,
            gpu_id: session.gpu_id,
        };
        state.events.emit(claim, &EventContext::request(request_id));
    }
    let lifecycle = state.lifecycle.clone();
    let started = session.clone();
    let ctx = EventContext::request(request_id);
    let span = tracing::info_span!("session_start", session_id = %session.id, slug = %session.slug);
    tokio::spawn(
        async move {
            let clock = std::time::Instant::now();
            let outcome = match lifecycle.launch(started, &ctx).await {
                Ok(_) => "started",
                Err(e) => {
                    tracing::warn!(error = %e, "session start failed");
                    "failed"
                }
            };
            metrics::histogram!(telemetry::SPAWN_SECONDS, "outcome" => outcome).record(clock.elapsed().as_secs_f64());
        }
        .instrument(span),
    );
    Ok(session)
}

/// What a stop request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRequest {
    /// Claimed now (the gate refuses it from here on); the container
    /// stops and the workspace is snapshotted in the background.
    Claimed,
    /// It was over already.
    AlreadyTerminal,
}

/// Claims the stop at once, so that the gate refuses the session from this
/// answer on, then finishes it in the background: the rest takes up to the
/// grace period plus a snapshot. `by` is who asked (someone who may see
/// the session): its owner, or an admin, whose stop of someone else's
/// session is recorded as `admin.session.stop`.
#[tracing::instrument(skip_all, fields(session_id = %session.id, by = %by.id))]
pub async fn request_stop(
    state: &Arc<AppState>,
    session: Session,
    by: &User,
    request_id: &str,
) -> Result<StopRequest, Error> {
    let reason = stop_reason(&session, by);
    let claimed = match state.lifecycle.claim_stop(session.id, reason).await.map_err(Error::internal)? {
        StopClaim::Claimed(claimed) => claimed,
        StopClaim::AlreadyTerminal(_) => return Ok(StopRequest::AlreadyTerminal),
    };
    state.revoke(Revoked::Session(claimed.slug.clone()));
    let ctx = EventContext::request(request_id);
    if reason == StopReason::Admin {
        let event = Event::AdminSessionStop {
            actor_id: by.id,
            user_id: session.user_id,
            session_id: session.id,
            slug: session.slug.clone(),
        };
        state.events.emit(event, &ctx);
    }
    finish_in_background(state, claimed, reason, ctx);
    Ok(StopRequest::Claimed)
}

/// The rest of a claimed stop (grace, snapshot), off the caller's path.
pub fn finish_in_background(state: &Arc<AppState>, claimed: Session, reason: StopReason, ctx: EventContext) {
    let state = state.clone();
    let span = tracing::info_span!("session_stop", session_id = %claimed.id, slug = %claimed.slug, %reason);
    tokio::spawn(
        async move {
            if let Err(e) = state.lifecycle.finish_stop(&claimed, reason, &ctx).await {
                tracing::warn!(error = %e, "session stop failed");
            }
        }
        .instrument(span),
    );
}

/// Extends a running session's lifetime by `sessions.extend_by`, up to
/// `sessions.max_extensions` times; with `queue.extend_when_queued =
/// false`, not while others wait for a GPU of its exposure.
#[tracing::instrument(skip_all, fields(session_id = %session.id))]
pub async fn extend(state: &AppState, session: &Session, request_id: &str) -> Result<Session, Error> {
    if !state.config.queue.extend_when_queued
        && state.store.queue().await?.iter().any(|e| e.exposure == session.exposure && e.user_id != session.user_id)
    {
        return Err(Error::Conflict(Conflict::OthersWaiting));
    }
    let ctx = EventContext::request(request_id);
    match state.lifecycle.extend(session.id, &ctx).await.map_err(Error::internal)? {
        Extension::Extended(s) => Ok(*s),
        Extension::LimitReached => {
            Err(Error::Conflict(Conflict::ExtensionsUsed { max: state.lifecycle.limits().max_extensions }))
        }
        Extension::NotRunning => Err(Error::Conflict(Conflict::NotExtendable)),
    }
}

/// Who stops a session `user` may see: its owner, or an admin.
fn stop_reason(session: &Session, user: &User) -> StopReason {
    if session.user_id == user.id { StopReason::User } else { StopReason::Admin }
}

/// The session `id` (as the client wrote it), whoever owns it.
pub async fn find(state: &AppState, id: &str) -> Result<Session, Error> {
    let id: SessionId = id.parse().map_err(|_| Error::NotFound(Missing::Session))?;
    state.store.session(id).await?.ok_or(Error::NotFound(Missing::Session))
}

/// The session `id` if `user` may see it (theirs, or any for an admin),
/// and, with `exposure`, only if it is of that exposure.
pub async fn visible(state: &AppState, user: &User, id: &str, exposure: Option<Exposure>) -> Result<Session, Error> {
    let session = find(state, id).await?;
    if exposure.is_some_and(|e| e != session.exposure) {
        return Err(Error::NotFound(Missing::Session));
    }
    if session.user_id != user.id && !user.is_admin() {
        return Err(Error::Forbidden(Denied::NotYourSession));
    }
    Ok(session)
}

/// The snapshots of a user's workspace. Storage trouble (ZFS down) is the
/// server's, and passing: [`Error::StorageUnavailable`], the cause logged.
pub async fn snapshots(state: &AppState, owner: model::UserId) -> Result<Vec<Snapshot>, Error> {
    state.storage.list_snapshots(owner).await.map_err(|e| {
        tracing::error!(user_id = %owner, error = %e, "listing snapshots failed");
        Error::StorageUnavailable
    })
}

/// The start-up steps a client can show, derived from the row.
pub fn steps(s: &Session) -> Vec<&'static str> {
    let mut done = vec!["gpu_allocated"];
    if s.workspace.is_some() {
        done.push("workspace_ready");
    }
    if s.container_id.is_some() {
        done.push("container_started");
    }
    if s.started_at.is_some() {
        done.push("code_server_answering");
    }
    done
}
