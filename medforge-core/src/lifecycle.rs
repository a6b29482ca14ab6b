//! The session lifecycle: [`Lifecycle`] creates, stops, watches and
//! reconciles sessions over a [`Store`], a [`ContainerRuntime`] and a
//! [`Storage`].
//!
//! The database is the source of truth. Every step is a conditional
//! transition, so the request handler, the event watcher, the poller and
//! the boot reconciler can race on one session without corrupting it:
//! whoever loses a transition leaves the session to the winner.
//!
//! ```text
//! create -> [starting] -> container up, port answers -> [running]
//!              | failure: container removed, error_message -> [error]
//! stop   -> [stopping] -> SIGTERM, grace, kill, remove -> snapshot -> [stopped]
//! container dies while running -> [error] "container exited unexpectedly" (+ snapshot)
//! idle or past its lifetime -> warned (`session.warning`) -> stop, reason `idle` | `lifetime`
//! ```
//!
//! Every end records its `stop_reason`, and every end that frees a GPU
//! wakes [`Lifecycle::gpu_freed`], which the server's queue task waits on.
//!
//! Containers are addressed by name (`mf-session-<slug>`), not by the id
//! recorded on the row, so a stop or a reconcile finds the container even
//! when the process that created it died before recording its id.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::clock::{Clock, SystemClock};
use crate::events::{Event, EventContext, EventSink, RecoveryDecision, RecoveryMode, StopReason};
use crate::limits::{SessionLimits, Verdict};
use crate::model::{Session, SessionId, SessionStatus};
use crate::probe;
use crate::runtime::{
    ContainerInfo, ContainerRuntime, ContainerState, RuntimeError, RuntimeEvent, SESSION_PORT, SessionContainerConfig,
    container_name, session_container_spec,
};
use crate::storage::{SnapshotKind, SnapshotName, Storage, StorageError};
use crate::store::{AllocationError, AllocationRequest, Extension, Store, StoreError, Transition};

/// The message a session gets when its container dies under it.
pub const CONTAINER_EXITED: &str = "container exited unexpectedly";

const ENDED_WHILE_STARTING: &str = "the session was ended while it started";

/// How the lifecycle behaves; the server fills it from config.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    pub containers: SessionContainerConfig,
    /// SIGTERM, then this long, then SIGKILL.
    pub stop_grace: Duration,
    /// How long a new container has to answer on its port.
    pub ready_timeout: Duration,
    /// The backstop poll of running sessions, beside the event stream.
    pub poll_interval: Duration,
    /// The default workspace quota, where the storage has quotas; a user's
    /// `workspace_quota_bytes` overrides it.
    pub quota_bytes: Option<u64>,
    /// Idle and lifetime limits, warnings and extensions.
    pub limits: SessionLimits,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            containers: SessionContainerConfig::default(),
            stop_grace: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_secs(30),
            quota_bytes: None,
            limits: SessionLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Allocation(#[from] AllocationError),
    /// The session was allocated but could not be started; it is now
    /// `error`, its container removed and its GPU free.
    #[error("session {session_id} failed to start: {message}")]
    StartFailed { session_id: SessionId, message: String },
    #[error("session not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// What [`Lifecycle::claim_stop`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopClaim {
    /// This call claimed it: the session, now `stopping`; the caller
    /// finishes the stop ([`Lifecycle::finish_stop`]).
    Claimed(Session),
    /// Someone else is stopping it, or it had already ended.
    AlreadyTerminal(Session),
}

/// What a whole stop ([`Lifecycle::stop`]) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// This call stopped it; the session as it ended (`stopped`, or `error`
    /// when the snapshot failed).
    Stopped(Session),
    /// Someone else is stopping it, or it had already ended.
    AlreadyTerminal(Session),
}

/// What one pass of [`Lifecycle::enforce_limits`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsReport {
    /// Sessions whose owners were warned now.
    pub warned: Vec<SessionId>,
    /// Sessions whose warning no longer stands (used again, or extended).
    pub taken_back: Vec<SessionId>,
    /// Stops this pass claimed (`stopping`, gate closed), with their
    /// reasons; the caller finishes each ([`Lifecycle::finish_stop`]).
    pub claimed: Vec<(Session, StopReason)>,
}

/// What boot reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub kept: Vec<SessionId>,
    pub failed: Vec<SessionId>,
    pub finished_stops: Vec<SessionId>,
    /// Containers with no active session row, removed.
    pub orphans_removed: Vec<String>,
}

/// The lifecycle. Cheap to share: hold it in an `Arc`.
#[derive(Debug)]
pub struct Lifecycle {
    store: Arc<dyn Store>,
    runtime: Arc<dyn ContainerRuntime>,
    storage: Arc<dyn Storage>,
    events: Arc<dyn EventSink>,
    config: LifecycleConfig,
    clock: Arc<dyn Clock>,
    gpu_freed: tokio::sync::Notify,
}

impl Lifecycle {
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<dyn ContainerRuntime>,
        storage: Arc<dyn Storage>,
        events: Arc<dyn EventSink>,
        config: LifecycleConfig,
    ) -> Self {
        Self { store, runtime, storage, events, config, clock: Arc::new(SystemClock), gpu_freed: Default::default() }
    }

    /// The same lifecycle on another clock (tests move a
    /// [`crate::clock::ManualClock`] instead of waiting).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The time its rules read.
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// The idle and lifetime limits.
    pub fn limits(&self) -> &SessionLimits {
        &self.config.limits
    }

    /// Woken (one stored wake-up) whenever a session ends and its GPU is
    /// free: the queue offers it to the next in line.
    pub fn gpu_freed(&self) -> &tokio::sync::Notify {
        &self.gpu_freed
    }

    fn freed(&self) {
        self.gpu_freed.notify_one();
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// How long a start may take before it fails.
    pub fn ready_timeout(&self) -> Duration {
        self.config.ready_timeout
    }

    /// Allocates a GPU and starts the session's container; returns once
    /// code-server (or whatever the pack serves) answers on its port.
    pub async fn create(&self, request: AllocationRequest, ctx: &EventContext) -> Result<Session, LifecycleError> {
        let session = self.allocate(request).await?;
        self.launch(session, ctx).await
    }

    /// The first half of [`Lifecycle::create`]: the row, `starting`, with its
    /// GPU. An API answers with it at once and runs [`Lifecycle::launch`] in
    /// the background.
    pub async fn allocate(&self, request: AllocationRequest) -> Result<Session, LifecycleError> {
        let session = self.store.allocate_session(request).await?;
        tracing::info!(session_id = %session.id, gpu_id = %session.gpu_id, slug = %session.slug, "session allocated");
        Ok(session)
    }

    /// The second half of [`Lifecycle::create`]: workspace, container,
    /// readiness, `running` (or `error`, with the GPU freed).
    pub async fn launch(&self, session: Session, ctx: &EventContext) -> Result<Session, LifecycleError> {
        match self.start(&session).await {
            Ok(()) => self.finish_start(session, ctx).await,
            Err(message) => {
                self.fail_start(&session, &message, ctx).await;
                Err(LifecycleError::StartFailed { session_id: session.id, message })
            }
        }
    }

    /// Workspace, container, readiness. Errors are the message the row gets.
    async fn start(&self, session: &Session) -> Result<(), String> {
        let pack = self
            .store
            .pack(session.pack_id)
            .await
            .map_err(|e| format!("reading the pack: {e}"))?
            .ok_or("the session's pack is gone")?;
        // The user's own quota, set by an admin, wins over the default.
        let user = self
            .store
            .user(session.user_id)
            .await
            .map_err(|e| format!("reading the user: {e}"))?
            .ok_or("the session's user is gone")?;
        let workspace = self
            .storage
            .ensure_workspace(session.user_id, user.workspace_quota_bytes.or(self.config.quota_bytes))
            .await
            .map_err(|e| format!("preparing the workspace: {e}"))?;
        self.store
            .set_session_runtime(session.id, None, Some(&workspace.name))
            .await
            .map_err(|e| format!("recording the workspace: {e}"))?;
        let spec = session_container_spec(session, &pack.image_ref, &workspace, &self.config.containers);
        let info = match self.runtime.create_and_start(&spec).await {
            Ok(info) => info,
            // A stop that claimed the session meanwhile removes its
            // container, and the start runs into that (no such container,
            // or "marked for removal"): the stop won, the start did not fail.
            Err(_) if !self.still_starting(session.id).await? => return Err(ENDED_WHILE_STARTING.into()),
            Err(e) => return Err(format!("starting the container: {e}")),
        };
        let still_ours = self
            .store
            .set_session_runtime(session.id, Some(&info.id), None)
            .await
            .map_err(|e| format!("recording the container: {e}"))?;
        if !still_ours {
            return Err(ENDED_WHILE_STARTING.into());
        }
        let ip = info.ip.ok_or("the container has no address on its network")?;
        self.wait_ready(session.id, SocketAddr::new(ip, SESSION_PORT)).await
    }

    /// Waits for the port to answer, giving up early when the session stops
    /// being `starting` (a stop claimed it): a start nobody wants any more
    /// should not hold on for the whole ready timeout.
    async fn wait_ready(&self, id: SessionId, addr: SocketAddr) -> Result<(), String> {
        const CHECK_ROW_EVERY: Duration = Duration::from_secs(1);
        let deadline = tokio::time::Instant::now() + self.config.ready_timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(format!("port {SESSION_PORT} did not answer within {:?}", self.config.ready_timeout));
            }
            if probe::wait_until_http(addr, left.min(CHECK_ROW_EVERY)).await.is_some() {
                return Ok(());
            }
            if !self.still_starting(id).await? {
                return Err(ENDED_WHILE_STARTING.into());
            }
        }
    }

    /// Whether the session is still `starting` (no stop has claimed it).
    async fn still_starting(&self, id: SessionId) -> Result<bool, String> {
        match self.store.session(id).await {
            Ok(Some(s)) => Ok(s.status == SessionStatus::Starting),
            Ok(None) => Ok(false),
            Err(e) => Err(format!("reading the session: {e}")),
        }
    }

    async fn finish_start(&self, session: Session, ctx: &EventContext) -> Result<Session, LifecycleError> {
        let now = self.clock.now();
        let won = self
            .store
            .transition_session(session.id, Transition::new(SessionStatus::Starting, SessionStatus::Running, now))
            .await?;
        let current = self.store.session(session.id).await?.ok_or(LifecycleError::NotFound)?;
        if won {
            self.events.emit(
                Event::SessionStart {
                    session_id: current.id,
                    user_id: current.user_id,
                    exposure: current.exposure,
                    gpu_id: current.gpu_id,
                    pack_id: current.pack_id,
                    slug: current.slug.clone(),
                },
                ctx,
            );
        }
        if !won {
            // A stop claimed the session while it started, and may have
            // removed the container before we created it: make sure none
            // is left running for a session that is over.
            self.runtime.remove(&container_name(&current.slug)).await?;
        }
        Ok(current)
    }

    async fn fail_start(&self, session: &Session, message: &str, ctx: &EventContext) {
        tracing::warn!(session_id = %session.id, error = message, "session failed to start");
        if let Err(e) = self.runtime.remove(&container_name(&session.slug)).await {
            tracing::warn!(session_id = %session.id, error = %e, "could not remove the failed container");
        }
        let failed = Transition::new(SessionStatus::Starting, SessionStatus::Error, self.clock.now())
            .error(message)
            .reason(StopReason::StartFailed);
        match self.store.transition_session(session.id, failed).await {
            Ok(true) => {
                self.events.emit(Event::SessionStartFailed { session_id: session.id, error: message.to_owned() }, ctx);
                self.freed();
            }
            // A stop claimed it first; the stopper reports how it ended.
            Ok(false) => tracing::info!(session_id = %session.id, "a start was ended by a stop"),
            Err(e) => tracing::error!(session_id = %session.id, error = %e, "could not mark a failed start"),
        }
    }

    /// Stops a session: `stopping`, SIGTERM, kill after the grace period,
    /// remove, snapshot, `stopped`. A snapshot failure ends it as `error`
    /// (the GPU is freed either way; the workspace itself is untouched).
    pub async fn stop(
        &self,
        id: SessionId,
        reason: StopReason,
        ctx: &EventContext,
    ) -> Result<StopOutcome, LifecycleError> {
        match self.claim_stop(id, reason).await? {
            StopClaim::Claimed(claimed) => Ok(StopOutcome::Stopped(self.finish_stop(&claimed, reason, ctx).await?)),
            StopClaim::AlreadyTerminal(session) => Ok(StopOutcome::AlreadyTerminal(session)),
        }
    }

    /// The first, quick half of [`Lifecycle::stop`]: moves the session to
    /// `stopping` (from then on the gate refuses it) and returns it, or says
    /// it had already ended. An API answers after this and runs
    /// [`Lifecycle::finish_stop`] in the background.
    /// The reason is recorded on the row at once, so a stop that a restart
    /// interrupts is finished with it.
    pub async fn claim_stop(&self, id: SessionId, reason: StopReason) -> Result<StopClaim, LifecycleError> {
        let mut session = self.store.session(id).await?.ok_or(LifecycleError::NotFound)?;
        // Two tries, since a starting session may become running between
        // our read and our update.
        for _ in 0..2 {
            if !matches!(session.status, SessionStatus::Starting | SessionStatus::Running) {
                break;
            }
            let t = Transition::new(session.status, SessionStatus::Stopping, self.clock.now()).reason(reason);
            if self.store.transition_session(id, t).await? {
                session.status = SessionStatus::Stopping;
                session.stop_reason = Some(reason);
                return Ok(StopClaim::Claimed(session));
            }
            session = self.store.session(id).await?.ok_or(LifecycleError::NotFound)?;
        }
        Ok(StopClaim::AlreadyTerminal(session))
    }

    /// The part of a stop after `stopping` was claimed (by
    /// [`Lifecycle::claim_stop`], or before a crash, for the reconciler):
    /// SIGTERM, grace, kill, remove, snapshot, `stopped`. The reason the
    /// claim recorded wins over `reason`.
    pub async fn finish_stop(
        &self,
        session: &Session,
        reason: StopReason,
        ctx: &EventContext,
    ) -> Result<Session, LifecycleError> {
        let reason = session.stop_reason.unwrap_or(reason);
        let name = container_name(&session.slug);
        self.runtime.stop(&name, self.config.stop_grace).await?;
        self.runtime.remove(&name).await?;
        let (to, message) = match self.snapshot(session, SnapshotKind::Stop, ctx).await {
            Ok(()) => (SessionStatus::Stopped, None),
            Err(e) => (SessionStatus::Error, Some(format!("snapshot failed: {e}"))),
        };
        let mut t = Transition::new(SessionStatus::Stopping, to, self.clock.now()).reason(reason);
        t.error_message = message;
        if self.store.transition_session(session.id, t).await? {
            self.freed();
        }
        self.emit_stop(session, reason, ctx);
        self.store.session(session.id).await?.ok_or(LifecycleError::NotFound)
    }

    /// One pass of the idle and lifetime rules over the running sessions:
    /// warns (`session.warning`), takes back warnings that no longer stand,
    /// and claims the stops that are due; the caller finishes those.
    pub async fn enforce_limits(&self) -> Result<LimitsReport, LifecycleError> {
        let mut report = LimitsReport::default();
        let now = self.clock.now();
        for session in self.store.active_sessions().await? {
            match self.config.limits.judge(&session, now) {
                Verdict::Keep => {}
                Verdict::Warn(warning) => {
                    if self.store.set_session_warning(session.id, Some(warning)).await? {
                        let ctx = EventContext::correlation(format!("limits:{}", session.id));
                        self.events.emit(
                            Event::SessionWarning {
                                session_id: session.id,
                                user_id: session.user_id,
                                slug: session.slug.clone(),
                                kind: warning.kind,
                                stops_at: warning.stops_at,
                            },
                            &ctx,
                        );
                        report.warned.push(session.id);
                    }
                }
                Verdict::TakeBackWarning => {
                    self.store.set_session_warning(session.id, None).await?;
                    report.taken_back.push(session.id);
                }
                Verdict::Stop(reason) => {
                    // Judged again on the row as it is now: an extension (or
                    // use) that came during this pass wins over the stop.
                    let Some(fresh) = self.store.session(session.id).await? else { continue };
                    if self.config.limits.judge(&fresh, self.clock.now()) != Verdict::Stop(reason) {
                        continue;
                    }
                    if let StopClaim::Claimed(claimed) = self.claim_stop(session.id, reason).await? {
                        tracing::info!(session_id = %session.id, %reason, "stopping a session by its limits");
                        report.claimed.push((claimed, reason));
                    }
                }
            }
        }
        Ok(report)
    }

    /// Adds `extend_by` to a running session's lifetime, up to
    /// `max_extensions` times (`session.extend`).
    pub async fn extend(&self, id: SessionId, ctx: &EventContext) -> Result<Extension, LifecycleError> {
        let limits = &self.config.limits;
        let outcome = self.store.extend_session(id, limits.extend_by, limits.max_extensions).await?;
        if let Extension::Extended(s) = &outcome
            && let Some(expires_at) = s.expires_at
        {
            self.events.emit(
                Event::SessionExtend { session_id: s.id, user_id: s.user_id, expires_at, extensions: s.extensions },
                ctx,
            );
        }
        Ok(outcome)
    }

    async fn snapshot(&self, session: &Session, kind: SnapshotKind, ctx: &EventContext) -> Result<(), StorageError> {
        let name = SnapshotName::new(kind, self.clock.now(), &session.slug);
        self.storage.snapshot(session.user_id, &name).await?;
        self.events.emit(Event::SessionSnapshot { session_id: session.id, snapshot: name.to_string() }, ctx);
        Ok(())
    }

    fn emit_stop(&self, session: &Session, reason: StopReason, ctx: &EventContext) {
        self.events.emit(
            Event::SessionStop {
                session_id: session.id,
                user_id: session.user_id,
                gpu_id: session.gpu_id,
                slug: session.slug.clone(),
                reason,
            },
            ctx,
        );
    }

    /// A running session's container is gone or stopped: mark it `error`,
    /// clear the container away, keep a `death-` snapshot. Does nothing if
    /// the session is not `running` (a stop in progress makes its own
    /// container die, and that is no death).
    pub async fn handle_death(
        &self,
        session: &Session,
        state: &str,
        mode: RecoveryMode,
    ) -> Result<bool, LifecycleError> {
        let t = Transition::new(SessionStatus::Running, SessionStatus::Error, self.clock.now())
            .error(CONTAINER_EXITED)
            .reason(StopReason::ContainerDeath);
        let won = self.store.transition_session(session.id, t).await?;
        if won {
            self.freed();
        }
        let ctx = EventContext::correlation(format!("{}:{}", mode.as_str(), session.id));
        self.events.emit(
            Event::SessionRecoveryDecision {
                session_id: session.id,
                slug: session.slug.clone(),
                state: state.to_owned(),
                container_id: session.container_id.clone(),
                recovery_mode: mode,
                decision: if won { RecoveryDecision::MarkedError } else { RecoveryDecision::LeftToOwner },
            },
            &ctx,
        );
        if !won {
            return Ok(false);
        }
        tracing::warn!(session_id = %session.id, slug = %session.slug, ?mode, "session container died");
        self.emit_stop(session, StopReason::ContainerDeath, &ctx);
        if let Err(e) = self.runtime.remove(&container_name(&session.slug)).await {
            tracing::warn!(session_id = %session.id, error = %e, "could not remove a dead container");
        }
        if let Err(e) = self.snapshot(session, SnapshotKind::Death, &ctx).await {
            tracing::warn!(session_id = %session.id, error = %e, "could not snapshot after a death");
        }
        Ok(true)
    }

    /// One pass of the backstop poller: every running session whose
    /// container is missing or not running is handled as a death.
    pub async fn poll_once(&self) -> Result<usize, LifecycleError> {
        let mut deaths = 0;
        for session in self.store.active_sessions().await? {
            if session.status != SessionStatus::Running {
                continue;
            }
            let info = self.runtime.inspect(&container_name(&session.slug)).await?;
            if let Some(state) = dead_state(info.as_ref()) {
                deaths += usize::from(self.handle_death(&session, &state, RecoveryMode::Poll).await?);
            }
        }
        Ok(deaths)
    }

    /// Follows the runtime's event stream (reconnecting when it drops) and
    /// polls every `poll_interval`, until `shutdown` resolves.
    pub async fn watch(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let events = {
            let this = self.clone();
            async move {
                loop {
                    match this.runtime.events().await {
                        Ok(mut stream) => {
                            while let Some(event) = stream.next().await {
                                match event {
                                    Ok(RuntimeEvent::Died { session_id: Some(id), .. }) => this.on_died(id).await,
                                    Ok(RuntimeEvent::Died { session_id: None, .. }) => {}
                                    Err(e) => {
                                        tracing::warn!(error = %e, "runtime event stream failed");
                                        break;
                                    }
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "could not subscribe to runtime events"),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let poll = {
            let this = self.clone();
            async move {
                let mut tick = tokio::time::interval(this.config.poll_interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = this.poll_once().await {
                        tracing::warn!(error = %e, "session poll failed");
                    }
                }
            }
        };
        tokio::select! {
            () = events => {}
            () = poll => {}
            () = shutdown => {}
        }
    }

    async fn on_died(&self, id: SessionId) {
        let session = match self.store.session(id).await {
            Ok(Some(s)) if s.status == SessionStatus::Running => s,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(session_id = %id, error = %e, "could not read a session after its container died");
                return;
            }
        };
        if let Err(e) = self.handle_death(&session, "exited", RecoveryMode::Event).await {
            tracing::warn!(session_id = %id, error = %e, "could not handle a container death");
        }
    }

    /// At boot: bring every active row in line with the runtime, then
    /// remove managed containers that no active row owns. Afterwards no
    /// active row lacks a running container and no container lacks a row.
    pub async fn reconcile(&self) -> Result<ReconcileReport, LifecycleError> {
        let mut report = ReconcileReport::default();
        let ctx = EventContext::correlation("reconcile");
        let mut owned = HashSet::new();
        for session in self.store.active_sessions().await? {
            let name = container_name(&session.slug);
            let info = self.runtime.inspect(&name).await?;
            let state = info.as_ref().map_or("missing".to_owned(), |i| i.state.to_string());
            let decision = match session.status {
                // The process that was starting it is gone; nobody will
                // finish the start, so undo it.
                SessionStatus::Starting => {
                    self.runtime.remove(&name).await?;
                    let t = Transition::new(SessionStatus::Starting, SessionStatus::Error, self.clock.now())
                        .error("interrupted by a server restart while starting")
                        .reason(StopReason::StartFailed);
                    if self.store.transition_session(session.id, t).await? {
                        self.emit_stop(&session, StopReason::StartFailed, &ctx);
                        self.freed();
                    }
                    report.failed.push(session.id);
                    RecoveryDecision::MarkedError
                }
                SessionStatus::Running if dead_state(info.as_ref()).is_none() => {
                    owned.insert(name);
                    report.kept.push(session.id);
                    RecoveryDecision::Kept
                }
                SessionStatus::Running => {
                    self.handle_death(&session, &state, RecoveryMode::Startup).await?;
                    report.failed.push(session.id);
                    continue; // handle_death emitted its own decision
                }
                SessionStatus::Stopping => {
                    // The claim recorded why; a row from before that column: the owner's.
                    self.finish_stop(&session, StopReason::User, &ctx).await?;
                    report.finished_stops.push(session.id);
                    RecoveryDecision::FinishedStop
                }
                SessionStatus::Reserved | SessionStatus::Stopped | SessionStatus::Error => continue,
            };
            self.events.emit(
                Event::SessionRecoveryDecision {
                    session_id: session.id,
                    slug: session.slug.clone(),
                    state,
                    container_id: info.map(|i| i.id),
                    recovery_mode: RecoveryMode::Startup,
                    decision,
                },
                &ctx,
            );
        }
        // Only this deployment's containers: the extra labels (the server
        // puts its deployment id among them, `LABEL_DEPLOYMENT`) tell them
        // apart from another MedForge's on the same engine.
        let extra = &self.config.containers.extra_labels;
        for container in self.runtime.list_managed().await? {
            let ours = extra.iter().all(|(k, v)| container.labels.get(k) == Some(v));
            if ours && !owned.contains(&container.name) {
                tracing::warn!(container = %container.name, "removing a session container that no active session owns");
                self.runtime.remove(&container.id).await?;
                report.orphans_removed.push(container.name);
            }
        }
        Ok(report)
    }
}

/// `Some(state)` when a running session's container is not running.
fn dead_state(info: Option<&ContainerInfo>) -> Option<String> {
    match info {
        None => Some("missing".into()),
        Some(i) if i.state == ContainerState::Running => None,
        Some(i) => Some(i.state.to_string()),
    }
}
