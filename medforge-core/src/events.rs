//! The structured event log of docs/api.md: one JSON object per line, with
//! `event`, `timestamp` and the event's fields, plus `request_id` or
//! `correlation_id` where there is one.
//!
//! Events are an audit trail for admins and log pipelines, separate from
//! `tracing` diagnostics: their names and fields are a contract, so they are
//! typed here rather than written ad hoc at each call site.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;

pub use crate::model::StopReason;
use crate::model::{Exposure, GpuId, InviteId, PackId, QueueEntryId, Role, SessionId, Slug, UserId, WarningKind};

/// Why a queue entry left (`queue.leave`'s `why`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// Its user left.
    User,
    /// An admin removed it.
    Admin,
    /// Its user holds as many sessions as they may.
    Limit,
    /// Its user may no longer start what they queued for (entitlement or pack gone).
    CannotStart,
}

/// What recovery did about a session (`session.recovery.decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryDecision {
    /// Its container runs: the session goes on.
    Kept,
    /// Its start or its container is gone: the session is `error`, its GPU free.
    MarkedError,
    /// It was `stopping` when the server went down: the stop was finished.
    FinishedStop,
    /// Another loop got to the death first and handles it.
    LeftToOwner,
}

/// Which loop made a recovery decision (`session.recovery.decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryMode {
    Startup,
    Poll,
    Event,
}

impl RecoveryMode {
    /// As it appears in events (`startup`, `poll`, `event`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryMode::Startup => "startup",
            RecoveryMode::Poll => "poll",
            RecoveryMode::Event => "event",
        }
    }
}

/// One event, with the fields docs/api.md lists for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event")]
pub enum Event {
    /// `invite_id`: the invite it used, if any.
    #[serde(rename = "user.signup")]
    UserSignup { user_id: UserId, ip: Option<String>, invite_id: Option<InviteId> },
    #[serde(rename = "user.login")]
    UserLogin { user_id: UserId, ip: Option<String> },
    #[serde(rename = "user.logout")]
    UserLogout { user_id: UserId, ip: Option<String> },
    /// Carries the email that was tried, never the password.
    #[serde(rename = "user.login_failed")]
    UserLoginFailed { email: String, ip: Option<String> },
    #[serde(rename = "session.start")]
    SessionStart {
        session_id: SessionId,
        user_id: UserId,
        exposure: Exposure,
        gpu_id: GpuId,
        pack_id: PackId,
        slug: Slug,
    },
    #[serde(rename = "session.start_failed")]
    SessionStartFailed { session_id: SessionId, error: String },
    #[serde(rename = "session.stop")]
    SessionStop { session_id: SessionId, user_id: UserId, gpu_id: GpuId, slug: Slug, reason: StopReason },
    /// Its owner was warned: `kind` stops it at `stops_at` unless they act.
    #[serde(rename = "session.warning")]
    SessionWarning {
        session_id: SessionId,
        user_id: UserId,
        slug: Slug,
        kind: WarningKind,
        #[serde(with = "time::serde::rfc3339")]
        stops_at: OffsetDateTime,
    },
    /// Its lifetime was extended (`extensions`: how often, now).
    #[serde(rename = "session.extend")]
    SessionExtend {
        session_id: SessionId,
        user_id: UserId,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
        extensions: u32,
    },
    /// A user joined the wait queue for a GPU (`position`: theirs then).
    #[serde(rename = "queue.join")]
    QueueJoin { entry_id: QueueEntryId, user_id: UserId, exposure: Exposure, position: usize, auto_start: bool },
    /// A GPU was reserved for the queue's head until `offered_until`.
    #[serde(rename = "queue.offer")]
    QueueOffer {
        entry_id: QueueEntryId,
        user_id: UserId,
        exposure: Exposure,
        session_id: SessionId,
        gpu_id: GpuId,
        #[serde(with = "time::serde::rfc3339")]
        offered_until: OffsetDateTime,
    },
    /// The user took the GPU they were offered (their session starts).
    #[serde(rename = "queue.claim")]
    QueueClaim { entry_id: QueueEntryId, user_id: UserId, exposure: Exposure, session_id: SessionId, gpu_id: GpuId },
    /// An offer lapsed unclaimed: its GPU passes to the next in line.
    #[serde(rename = "queue.expire")]
    QueueExpire { entry_id: QueueEntryId, user_id: UserId, exposure: Exposure, gpu_id: Option<GpuId> },
    /// An entry left the queue: its user left (`actor_id` unset), an admin
    /// removed it, the user reached their session limit meanwhile, or may
    /// no longer start what they queued for.
    #[serde(rename = "queue.leave")]
    QueueLeave {
        entry_id: QueueEntryId,
        user_id: UserId,
        exposure: Exposure,
        actor_id: Option<UserId>,
        why: LeaveReason,
    },
    #[serde(rename = "session.recovery.decision")]
    SessionRecoveryDecision {
        session_id: SessionId,
        slug: Slug,
        /// What the runtime reported: `running`, `exited`, `missing`, ...
        state: String,
        container_id: Option<String>,
        recovery_mode: RecoveryMode,
        /// What was done about it.
        decision: RecoveryDecision,
    },
    #[serde(rename = "session.snapshot")]
    SessionSnapshot { session_id: SessionId, snapshot: String },
    /// An admin changed a user's account: each field that changed, with
    /// its value before and after.
    #[serde(rename = "admin.user.change")]
    AdminUserChange { actor_id: UserId, user_id: UserId, changes: Vec<FieldChange> },
    /// An admin let a GPU take new sessions, or not.
    #[serde(rename = "admin.gpu.change")]
    AdminGpuChange { actor_id: UserId, gpu_id: GpuId, enabled_before: bool, enabled_after: bool },
    /// An admin stopped someone else's session (`user_id`: its owner).
    #[serde(rename = "admin.session.stop")]
    AdminSessionStop { actor_id: UserId, user_id: UserId, session_id: SessionId, slug: Slug },
    /// An admin invited an email address to sign up.
    #[serde(rename = "admin.invite.create")]
    AdminInviteCreate {
        actor_id: UserId,
        invite_id: InviteId,
        email: String,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// An admin took back an invite that was not used yet.
    #[serde(rename = "admin.invite.revoke")]
    AdminInviteRevoke { actor_id: UserId, invite_id: InviteId },
    /// An admin made an account themselves (`user_id`: the new account).
    #[serde(rename = "admin.user.create")]
    AdminUserCreate { actor_id: UserId, user_id: UserId, email: String, role: Role },
    /// Someone other than its owner (an admin) signed in to a session's
    /// host (`user_id`: the owner).
    #[serde(rename = "session.entered_by_other")]
    SessionEnteredByOther { actor_id: UserId, user_id: UserId, session_id: SessionId, slug: Slug },
}

/// One field of an admin's change: its name, and its value before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: &'static str,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

impl Event {
    /// The user the event is about, where there is one.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Event::UserSignup { user_id, .. }
            | Event::UserLogin { user_id, .. }
            | Event::UserLogout { user_id, .. }
            | Event::SessionStart { user_id, .. }
            | Event::SessionStop { user_id, .. }
            | Event::SessionWarning { user_id, .. }
            | Event::SessionExtend { user_id, .. }
            | Event::QueueJoin { user_id, .. }
            | Event::QueueOffer { user_id, .. }
            | Event::QueueClaim { user_id, .. }
            | Event::QueueExpire { user_id, .. }
            | Event::QueueLeave { user_id, .. }
            | Event::AdminUserChange { user_id, .. }
            | Event::AdminSessionStop { user_id, .. }
            | Event::AdminUserCreate { user_id, .. }
            | Event::SessionEnteredByOther { user_id, .. } => Some(*user_id),
            _ => None,
        }
    }

    /// Who did it, where that is someone else than the user it is about
    /// (an admin's actions).
    pub fn actor_id(&self) -> Option<UserId> {
        match self {
            Event::AdminUserChange { actor_id, .. }
            | Event::AdminGpuChange { actor_id, .. }
            | Event::AdminSessionStop { actor_id, .. }
            | Event::AdminInviteCreate { actor_id, .. }
            | Event::AdminInviteRevoke { actor_id, .. }
            | Event::AdminUserCreate { actor_id, .. }
            | Event::SessionEnteredByOther { actor_id, .. } => Some(*actor_id),
            Event::QueueLeave { actor_id, .. } => *actor_id,
            _ => None,
        }
    }

    /// The session the event is about, where there is one.
    pub fn session_id(&self) -> Option<SessionId> {
        match self {
            Event::SessionStart { session_id, .. }
            | Event::SessionStartFailed { session_id, .. }
            | Event::SessionStop { session_id, .. }
            | Event::SessionRecoveryDecision { session_id, .. }
            | Event::SessionSnapshot { session_id, .. }
            | Event::SessionWarning { session_id, .. }
            | Event::SessionExtend { session_id, .. }
            | Event::QueueOffer { session_id, .. }
            | Event::QueueClaim { session_id, .. }
            | Event::AdminSessionStop { session_id, .. }
            | Event::SessionEnteredByOther { session_id, .. } => Some(*session_id),
            _ => None,
        }
    }

    /// The event's name as it appears in the log (`session.start`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Event::UserSignup { .. } => "user.signup",
            Event::UserLogin { .. } => "user.login",
            Event::UserLogout { .. } => "user.logout",
            Event::UserLoginFailed { .. } => "user.login_failed",
            Event::SessionStart { .. } => "session.start",
            Event::SessionStartFailed { .. } => "session.start_failed",
            Event::SessionStop { .. } => "session.stop",
            Event::SessionRecoveryDecision { .. } => "session.recovery.decision",
            Event::SessionWarning { .. } => "session.warning",
            Event::SessionExtend { .. } => "session.extend",
            Event::QueueJoin { .. } => "queue.join",
            Event::QueueOffer { .. } => "queue.offer",
            Event::QueueClaim { .. } => "queue.claim",
            Event::QueueExpire { .. } => "queue.expire",
            Event::QueueLeave { .. } => "queue.leave",
            Event::SessionSnapshot { .. } => "session.snapshot",
            Event::AdminUserChange { .. } => "admin.user.change",
            Event::AdminGpuChange { .. } => "admin.gpu.change",
            Event::AdminSessionStop { .. } => "admin.session.stop",
            Event::AdminInviteCreate { .. } => "admin.invite.create",
            Event::AdminInviteRevoke { .. } => "admin.invite.revoke",
            Event::AdminUserCreate { .. } => "admin.user.create",
            Event::SessionEnteredByOther { .. } => "session.entered_by_other",
        }
    }
}

/// What ties an event to the request or the background task that caused it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl EventContext {
    pub fn request(id: impl Into<String>) -> Self {
        Self { request_id: Some(id.into()), correlation_id: None }
    }

    pub fn correlation(id: impl Into<String>) -> Self {
        Self { request_id: None, correlation_id: Some(id.into()) }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    event: &'a Event,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    #[serde(flatten)]
    context: &'a EventContext,
}

/// Renders one event as its JSON line (without the newline).
pub fn to_json_line(event: &Event, at: OffsetDateTime, context: &EventContext) -> String {
    // Serialising these plain types cannot fail; a failure would be a bug in
    // a serde impl, and an event is not worth a panic.
    serde_json::to_string(&Line { event, timestamp: at, context })
        .unwrap_or_else(|e| format!(r#"{{"event":"{}","serialization_error":"{e}"}}"#, event.name()))
}

/// Where events go.
pub trait EventSink: Send + Sync + fmt::Debug {
    fn emit(&self, event: Event, context: &EventContext);
}

/// Writes events as JSON lines to a writer (stdout in the server).
pub struct JsonLines<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self { out: Mutex::new(out) }
    }

    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl JsonLines<std::io::Stdout> {
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }
}

impl<W: Write + Send> fmt::Debug for JsonLines<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsonLines")
    }
}

impl<W: Write + Send> EventSink for JsonLines<W> {
    fn emit(&self, event: Event, context: &EventContext) {
        let line = to_json_line(&event, OffsetDateTime::now_utc(), context);
        // A poisoned lock only means another writer panicked mid-line; keep logging.
        let mut out = self.out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            tracing::warn!(event = event.name(), "could not write an event line");
        }
    }
}

/// Passes every event on to `next` and also keeps it in the store's event
/// log (`Store::record_event`), without making the caller wait for the
/// database: the write runs on the current tokio runtime.
#[derive(Debug)]
pub struct Recorded {
    store: std::sync::Arc<dyn crate::store::Store>,
    next: std::sync::Arc<dyn EventSink>,
}

impl Recorded {
    pub fn new(store: std::sync::Arc<dyn crate::store::Store>, next: std::sync::Arc<dyn EventSink>) -> Self {
        Self { store, next }
    }
}

impl EventSink for Recorded {
    fn emit(&self, event: Event, context: &EventContext) {
        let at = crate::model::now();
        let line = to_json_line(&event, at, context);
        let record = crate::store::StoredEvent {
            id: uuid::Uuid::new_v4().to_string(),
            event: event.name().to_owned(),
            user_id: event.user_id(),
            actor_id: event.actor_id(),
            session_id: event.session_id(),
            created_at: at,
            data: serde_json::from_str(&line).unwrap_or_default(),
        };
        self.next.emit(event, context);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let store = self.store.clone();
                handle.spawn(async move {
                    if let Err(e) = store.record_event(&record).await {
                        tracing::warn!(event = record.event, error = %e, "could not record an event");
                    }
                });
            }
            Err(_) => tracing::warn!(event = record.event, "no async runtime: event not recorded"),
        }
    }
}

/// Keeps events in memory, for tests and for embedders that forward them.
#[derive(Debug, Default)]
pub struct MemoryEvents {
    events: Mutex<Vec<(Event, EventContext)>>,
}

impl MemoryEvents {
    pub fn take(&self) -> Vec<(Event, EventContext)> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl EventSink for MemoryEvents {
    fn emit(&self, event: Event, context: &EventContext) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).push((event, context.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).expect("valid json")
    }

    #[test]
    fn session_start_has_the_documented_fields() {
        let e = Event::SessionStart {
            session_id: SessionId::new_random(),
            user_id: UserId::new_random(),
            exposure: Exposure::External,
            gpu_id: GpuId(3),
            pack_id: crate::model::DEFAULT_PACK_ID,
            slug: "abcdefgh".parse().expect("slug"),
        };
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        let v = parse(&to_json_line(&e, at, &EventContext::request("req-1")));
        assert_eq!(v["event"], "session.start");
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(v["exposure"], "external");
        assert_eq!(v["gpu_id"], 3);
        assert_eq!(v["slug"], "abcdefgh");
        assert_eq!(v["pack_id"], "00000000-0000-0000-0000-000000000100");
        assert_eq!(v["request_id"], "req-1");
        assert!(v.get("correlation_id").is_none());
        assert_eq!(e.name(), "session.start");
    }

    #[test]
    fn stop_reasons_and_recovery_modes_are_snake_case() {
        let stop = Event::SessionStop {
            session_id: SessionId::new_random(),
            user_id: UserId::new_random(),
            gpu_id: GpuId(0),
            slug: "abcdefgh".parse().expect("slug"),
            reason: StopReason::ContainerDeath,
        };
        let v = parse(&to_json_line(&stop, OffsetDateTime::now_utc(), &EventContext::default()));
        assert_eq!((v["event"].as_str(), v["reason"].as_str()), (Some("session.stop"), Some("container_death")));
        let rec = Event::SessionRecoveryDecision {
            session_id: SessionId::new_random(),
            slug: "abcdefgh".parse().expect("slug"),
            state: "missing".into(),
            container_id: None,
            recovery_mode: RecoveryMode::Startup,
            decision: RecoveryDecision::MarkedError,
        };
        let v = parse(&to_json_line(&rec, OffsetDateTime::now_utc(), &EventContext::correlation("boot")));
        assert_eq!(v["event"], "session.recovery.decision");
        assert_eq!(v["recovery_mode"], "startup");
        assert_eq!(v["decision"], "marked_error");
        for (decision, text) in [
            (RecoveryDecision::Kept, "kept"),
            (RecoveryDecision::FinishedStop, "finished_stop"),
            (RecoveryDecision::LeftToOwner, "left_to_owner"),
        ] {
            assert_eq!(serde_json::to_value(decision).ok(), Some(Value::from(text)));
        }
        for mode in [RecoveryMode::Startup, RecoveryMode::Poll, RecoveryMode::Event] {
            assert_eq!(serde_json::to_value(mode).ok(), Some(Value::from(mode.as_str())));
        }
        assert_eq!(v["correlation_id"], "boot");
        assert!(v["container_id"].is_null());
    }

    #[test]
    fn json_lines_sink_writes_one_line_per_event() {
        let sink = JsonLines::new(Vec::new());
        for email in ["a@example.org", "b@example.org"] {
            sink.emit(
                Event::UserLoginFailed { email: email.into(), ip: Some("192.0.2.7".into()) },
                &EventContext::default(),
            );
        }
        let text = String::from_utf8(sink.into_inner()).expect("utf-8");
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(parse(lines[1])["email"], "b@example.org");
        assert_eq!(parse(lines[0])["event"], "user.login_failed");
    }
}
