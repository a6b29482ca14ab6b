//! The rules that end sessions nobody uses or that ran their time: pure
//! functions of a session, the time and the [`SessionLimits`], so that
//! every case is a unit test. The lifecycle's `enforce_limits` applies
//! them.
//!
//! Two deadlines stop a running session: idle (`last_activity_at` plus
//! `idle_timeout`) and lifetime (`expires_at`). `warn_before` ahead of
//! the first of them its owner is warned; the warning names when it will
//! stop (`stops_at`), at least `warn_before` after the warning was given
//! (a server that was down when it should have warned does not stop
//! anyone unwarned). Activity or an extension that moves the deadline
//! away takes the warning back.

use std::time::Duration;

use time::OffsetDateTime;

use crate::model::{Session, SessionStatus, StopReason, User, Warning, WarningKind};

/// What the limits are (`[sessions]` in the server's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Unused this long, a session stops; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A session's lifetime; `None`: unlimited. An admin's per-user value wins.
    pub max_lifetime: Option<Duration>,
    /// How long before an automatic stop its owner is warned.
    pub warn_before: Duration,
    /// What an extension adds to the lifetime.
    pub extend_by: Duration,
    /// How often a session may be extended.
    pub max_extensions: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Some(Duration::from_secs(2 * 3600)),
            max_lifetime: Some(Duration::from_secs(24 * 3600)),
            warn_before: Duration::from_secs(15 * 60),
            extend_by: Duration::from_secs(4 * 3600),
            max_extensions: 2,
        }
    }
}

impl SessionLimits {
    /// No idle stop and no lifetime: sessions run until someone stops them.
    pub fn none() -> Self {
        Self { idle_timeout: None, max_lifetime: None, ..Self::default() }
    }

    /// The lifetime of `user`'s sessions: their own (an admin's setting; 0
    /// is unlimited), else the default.
    pub fn lifetime_for(&self, user: &User) -> Option<Duration> {
        match user.max_lifetime_secs {
            Some(0) => None,
            Some(secs) => Some(Duration::from_secs(secs)),
            None => self.max_lifetime,
        }
    }

    /// When a session of `user` created at `now` expires.
    pub fn expires_at(&self, user: &User, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.lifetime_for(user).map(|life| now + life)
    }

    /// The deadline that comes first for a running session, with its rule.
    pub fn next_deadline(&self, session: &Session) -> Option<(WarningKind, OffsetDateTime)> {
        let idle = self.idle_timeout.zip(session.last_activity_at).map(|(t, at)| (WarningKind::Idle, at + t));
        let life = session.expires_at.map(|at| (WarningKind::Lifetime, at));
        match (idle, life) {
            (Some(i), Some(l)) => Some(if l.1 <= i.1 { l } else { i }),
            (one, other) => one.or(other),
        }
    }

    /// What to do about `session` at `now`.
    pub fn judge(&self, session: &Session, now: OffsetDateTime) -> Verdict {
        if session.status != SessionStatus::Running {
            return Verdict::Keep;
        }
        let Some((kind, deadline)) = self.next_deadline(session) else {
            return if session.warning.is_some() { Verdict::TakeBackWarning } else { Verdict::Keep };
        };
        // The warning stands if it is about this rule and this deadline (or
        // a later one that it already promised).
        let standing = session.warning.filter(|w| w.kind == kind && w.stops_at >= deadline);
        match standing {
            Some(w) if now >= w.stops_at => Verdict::Stop(reason(kind)),
            Some(_) => Verdict::Keep,
            None if now + self.warn_before >= deadline => {
                Verdict::Warn(Warning { kind, stops_at: deadline.max(now + self.warn_before), given_at: now })
            }
            None if session.warning.is_some() => Verdict::TakeBackWarning,
            None => Verdict::Keep,
        }
    }
}

fn reason(kind: WarningKind) -> StopReason {
    match kind {
        WarningKind::Idle => StopReason::Idle,
        WarningKind::Lifetime => StopReason::Lifetime,
    }
}

/// What [`SessionLimits::judge`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Keep,
    /// Warn its owner (and record the warning).
    Warn(Warning),
    /// The warning no longer stands (they used it, or extended it).
    TakeBackWarning,
    /// Stop it, for this reason: its owner was warned in time.
    Stop(StopReason),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DEFAULT_PACK_ID, Exposure, GpuId, UserId};

    const MIN: Duration = Duration::from_secs(60);

    fn limits() -> SessionLimits {
        SessionLimits {
            idle_timeout: Some(120 * MIN),
            max_lifetime: Some(24 * 60 * MIN),
            warn_before: 15 * MIN,
            extend_by: 240 * MIN,
            max_extensions: 2,
        }
    }

    fn running(t0: OffsetDateTime, l: &SessionLimits) -> Session {
        let mut s = Session::new_starting(UserId::new_random(), Exposure::External, DEFAULT_PACK_ID, GpuId(0), t0);
        s.status = SessionStatus::Running;
        s.expires_at = l.max_lifetime.map(|d| t0 + d);
        s
    }

    /// Applies a verdict as the lifecycle would.
    fn apply(s: &mut Session, v: Verdict) {
        match v {
            Verdict::Warn(w) => s.warning = Some(w),
            Verdict::TakeBackWarning => s.warning = None,
            Verdict::Stop(_) | Verdict::Keep => {}
        }
    }

    #[test]
    fn an_idle_session_is_warned_then_stopped_at_the_promised_time() {
        let l = limits();
        let t0 = crate::model::now();
        let mut s = running(t0, &l);
        assert_eq!(l.judge(&s, t0 + 104 * MIN), Verdict::Keep);
        let warn = l.judge(&s, t0 + 105 * MIN);
        let Verdict::Warn(w) = warn else { panic!("no warning: {warn:?}") };
        assert_eq!((w.kind, w.stops_at), (WarningKind::Idle, t0 + 120 * MIN));
        apply(&mut s, warn);
        assert_eq!(l.judge(&s, t0 + 119 * MIN), Verdict::Keep);
        assert_eq!(l.judge(&s, t0 + 120 * MIN), Verdict::Stop(StopReason::Idle));
    }

    #[test]
    fn no_stop_comes_without_a_warning_given_warn_before_ahead() {
        let l = limits();
        let t0 = crate::model::now();
        let mut s = running(t0, &l);
        // The server was down through the whole warning window.
        let late = t0 + 130 * MIN;
        let v = l.judge(&s, late);
        let Verdict::Warn(w) = v else { panic!("{v:?}") };
        assert_eq!(w.stops_at, late + 15 * MIN);
        apply(&mut s, v);
        assert_eq!(l.judge(&s, late + 14 * MIN), Verdict::Keep);
        assert_eq!(l.judge(&s, late + 15 * MIN), Verdict::Stop(StopReason::Idle));
    }

    #[test]
    fn activity_takes_the_idle_warning_back() {
        let l = limits();
        let t0 = crate::model::now();
        let mut s = running(t0, &l);
        let v = l.judge(&s, t0 + 110 * MIN);
        apply(&mut s, v);
        assert!(s.warning.is_some());
        s.last_activity_at = Some(t0 + 112 * MIN);
        assert_eq!(l.judge(&s, t0 + 113 * MIN), Verdict::TakeBackWarning);
        s.warning = None;
        assert_eq!(l.judge(&s, t0 + 200 * MIN), Verdict::Keep);
    }

    #[test]
    fn the_lifetime_stops_a_busy_session_after_its_warning_and_an_extension_moves_it() {
        let mut l = limits();
        l.idle_timeout = None;
        let t0 = crate::model::now();
        let mut s = running(t0, &l);
        let end = t0 + 24 * 60 * MIN;
        assert_eq!(l.judge(&s, end - 16 * MIN), Verdict::Keep);
        let v = l.judge(&s, end - 15 * MIN);
        assert!(matches!(v, Verdict::Warn(w) if w.kind == WarningKind::Lifetime && w.stops_at == end), "{v:?}");
        apply(&mut s, v);
        // Extended: the deadline is later than the warning promised.
        s.expires_at = Some(end + l.extend_by);
        assert_eq!(l.judge(&s, end - 10 * MIN), Verdict::TakeBackWarning);
        s.warning = None;
        assert_eq!(l.judge(&s, end), Verdict::Keep);
        let v = l.judge(&s, end + l.extend_by - 15 * MIN);
        apply(&mut s, v);
        assert_eq!(l.judge(&s, end + l.extend_by), Verdict::Stop(StopReason::Lifetime));
    }

    #[test]
    fn the_first_deadline_decides_and_zero_means_off() {
        let l = limits();
        let t0 = crate::model::now();
        let mut s = running(t0, &l);
        s.expires_at = Some(t0 + 60 * MIN);
        assert_eq!(l.next_deadline(&s), Some((WarningKind::Lifetime, t0 + 60 * MIN)));
        s.expires_at = Some(t0 + 600 * MIN);
        assert_eq!(l.next_deadline(&s), Some((WarningKind::Idle, t0 + 120 * MIN)));
        let off = SessionLimits::none();
        s.expires_at = None;
        assert_eq!(off.next_deadline(&s), None);
        assert_eq!(off.judge(&s, t0 + 10_000 * MIN), Verdict::Keep);
        let mut user = crate::model::User {
            id: s.user_id,
            email: "a@b.org".parse().expect("email"),
            role: crate::model::Role::User,
            can_use_internal: false,
            max_concurrent_sessions: 1,
            created_at: t0,
            workspace_quota_bytes: None,
            max_lifetime_secs: None,
        };
        assert_eq!(l.lifetime_for(&user), Some(24 * 60 * MIN));
        user.max_lifetime_secs = Some(0);
        assert_eq!(l.lifetime_for(&user), None);
        user.max_lifetime_secs = Some(3600);
        assert_eq!(l.expires_at(&user, t0), Some(t0 + 60 * MIN));
    }

    #[test]
    fn only_running_sessions_are_judged() {
        let l = limits();
        let t0 = crate::model::now();
        let mut s = running(t0, &l);
        for status in [SessionStatus::Starting, SessionStatus::Stopping, SessionStatus::Reserved] {
            s.status = status;
            assert_eq!(l.judge(&s, t0 + 10_000 * MIN), Verdict::Keep, "{status}");
        }
    }
}
