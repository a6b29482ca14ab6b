//! GPU-hours: who held which GPU for how long, and how much of that it was
//! busy, per UTC day. A pure function ([`summarize`]) over what the store
//! reads ([`UsageRecords`]), so that both databases give the same answer and
//! the arithmetic is tested without one.
//!
//! *Held* time comes from the session rows alone: a session holds its GPU
//! from its allocation (`created_at`) until it ends (`stopped_at`, set on
//! `stopped` and `error`), or until `now` while it is active. It exists
//! without telemetry. *Busy* time comes from telemetry: the sampler charges
//! each sample period to the session holding the GPU, per UTC day
//! ([`GpuUsageDay`]), and counts it busy when utilisation is at or above the
//! threshold. Without telemetry it is unknown, never zero.

use std::collections::BTreeMap;

use time::{Date, Duration, OffsetDateTime, Time};

use crate::model::{Email, Exposure, GpuId, Session, SessionId, SessionStatus, Slug, UserId};

/// What the sampler accumulates for one session on one UTC day. Times are
/// milliseconds; `utilization_ms` is the sum of utilisation (0..1) times
/// each sample period, so `utilization_ms / sampled_ms` is the mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuUsageDay {
    pub session_id: SessionId,
    pub day: Date,
    pub gpu_id: GpuId,
    pub sampled_ms: u64,
    pub busy_ms: u64,
    pub utilization_ms: u64,
    pub peak_memory_bytes: u64,
}

impl GpuUsageDay {
    pub fn new(session_id: SessionId, day: Date, gpu_id: GpuId) -> Self {
        Self { session_id, day, gpu_id, sampled_ms: 0, busy_ms: 0, utilization_ms: 0, peak_memory_bytes: 0 }
    }
}

/// A session the period touches, with its owner's email.
#[derive(Debug, Clone)]
pub struct UsageSession {
    pub session: Session,
    pub email: Email,
}

/// What the store reads for a period: the sessions that overlap it and the
/// telemetry rows of the period's days.
#[derive(Debug, Clone, Default)]
pub struct UsageRecords {
    pub sessions: Vec<UsageSession>,
    pub gpu_usage: Vec<GpuUsageDay>,
}

/// A range of whole UTC days, `from` included, `to` excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Date,
    pub to: Date,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("`{0}` is not a date (YYYY-MM-DD).")]
    NotADate(String),
    #[error("`from` must be before `to`.")]
    Empty,
    #[error("A usage period is at most {} days.", Period::MAX_DAYS)]
    TooLong,
}

impl Period {
    pub const MAX_DAYS: i64 = 400;

    pub fn new(from: Date, to: Date) -> Result<Self, PeriodError> {
        if from >= to {
            return Err(PeriodError::Empty);
        }
        if (to - from).whole_days() > Self::MAX_DAYS {
            return Err(PeriodError::TooLong);
        }
        Ok(Self { from, to })
    }

    /// From query parameters: either may be missing (`from`: the first of
    /// `today`'s month; `to`: the day after `today`).
    pub fn parse(from: Option<&str>, to: Option<&str>, today: Date) -> Result<Self, PeriodError> {
        let from = match from.filter(|s| !s.is_empty()) {
            Some(s) => parse_date(s)?,
            None => today.replace_day(1).unwrap_or(today),
        };
        let to = match to.filter(|s| !s.is_empty()) {
            Some(s) => parse_date(s)?,
            None => today.next_day().unwrap_or(today),
        };
        Self::new(from, to)
    }

    /// The seven days up to and including `today`.
    pub fn week_to(today: Date) -> Self {
        let to = today.next_day().unwrap_or(today);
        Self { from: to - Duration::days(7), to }
    }

    /// The first of `today`'s month up to and including `today`.
    pub fn month_to(today: Date) -> Self {
        Self { from: today.replace_day(1).unwrap_or(today), to: today.next_day().unwrap_or(today) }
    }

    pub fn start(&self) -> OffsetDateTime {
        self.from.with_time(Time::MIDNIGHT).assume_utc()
    }

    pub fn end(&self) -> OffsetDateTime {
        self.to.with_time(Time::MIDNIGHT).assume_utc()
    }

    pub fn days(&self) -> impl Iterator<Item = Date> + '_ {
        std::iter::successors(Some(self.from), |d| d.next_day()).take_while(|d| *d < self.to)
    }
}

fn parse_date(s: &str) -> Result<Date, PeriodError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, format).map_err(|_| PeriodError::NotADate(s.chars().take(40).collect()))
}

/// One day of one user's use.
#[derive(Debug, Clone, PartialEq)]
pub struct DayUsage {
    pub day: Date,
    /// Sessions that held a GPU at some time that day.
    pub sessions: u32,
    pub held_ms: u64,
    /// `None` when busy time is not measured.
    pub busy_ms: Option<u64>,
}

/// One session's use within the period.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionUsage {
    pub session_id: SessionId,
    pub slug: Slug,
    pub exposure: Exposure,
    pub gpu_id: GpuId,
    pub status: SessionStatus,
    pub created_at: OffsetDateTime,
    pub stopped_at: Option<OffsetDateTime>,
    pub held_ms: u64,
    pub busy_ms: Option<u64>,
    /// Mean utilisation (0..1) over the sampled time; `None` without samples.
    pub mean_utilization: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
}

/// One user's use within the period.
#[derive(Debug, Clone, PartialEq)]
pub struct UserUsage {
    pub user_id: UserId,
    pub email: Email,
    pub held_ms: u64,
    pub busy_ms: Option<u64>,
    /// Newest first.
    pub sessions: Vec<SessionUsage>,
    /// Every day of the period, oldest first, days without use included.
    pub days: Vec<DayUsage>,
}

impl UserUsage {
    /// A user without use in the period: every day at zero.
    pub fn none(user_id: UserId, email: Email, period: Period, busy_measured: bool) -> Self {
        let zero = busy_measured.then_some(0);
        Self {
            user_id,
            email,
            held_ms: 0,
            busy_ms: zero,
            sessions: Vec::new(),
            days: period.days().map(|day| DayUsage { day, sessions: 0, held_ms: 0, busy_ms: zero }).collect(),
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.whole_milliseconds()).unwrap_or(0)
}

/// How long `[start, end)` and `[lo, hi)` overlap.
fn overlap(start: OffsetDateTime, end: OffsetDateTime, lo: OffsetDateTime, hi: OffsetDateTime) -> Duration {
    let (a, b) = (start.max(lo), end.min(hi));
    if b > a { b - a } else { Duration::ZERO }
}

/// Sums `records` over `period` per user (ordered by email). `now` ends the
/// sessions still active; `busy_measured` says whether busy time is known
/// (telemetry runs, or rows of it exist for the period).
pub fn summarize(records: &UsageRecords, period: Period, now: OffsetDateTime, busy_measured: bool) -> Vec<UserUsage> {
    let mut telemetry: BTreeMap<(SessionId, Date), &GpuUsageDay> = BTreeMap::new();
    for row in &records.gpu_usage {
        if row.day >= period.from && row.day < period.to {
            telemetry.insert((row.session_id, row.day), row);
        }
    }
    let mut users: BTreeMap<(String, UserId), UserUsage> = BTreeMap::new();
    for UsageSession { session: s, email } in &records.sessions {
        let end = s.stopped_at.unwrap_or(now).max(s.created_at);
        let user = users
            .entry((email.as_str().to_owned(), s.user_id))
            .or_insert_with(|| UserUsage::none(s.user_id, email.clone(), period, busy_measured));
        let mut session = SessionUsage {
            session_id: s.id,
            slug: s.slug.clone(),
            exposure: s.exposure,
            gpu_id: s.gpu_id,
            status: s.status,
            created_at: s.created_at,
            stopped_at: s.stopped_at,
            held_ms: 0,
            busy_ms: busy_measured.then_some(0),
            mean_utilization: None,
            peak_memory_bytes: None,
        };
        let (mut sampled, mut utilization) = (0u64, 0u64);
        for day in &mut user.days {
            let lo = day.day.with_time(Time::MIDNIGHT).assume_utc();
            let held = ms(overlap(s.created_at, end, lo, lo + Duration::DAY));
            let row = telemetry.get(&(s.id, day.day));
            if held == 0 && row.is_none() {
                continue;
            }
            day.sessions += 1;
            day.held_ms += held;
            session.held_ms += held;
            if let Some(row) = row {
                sampled += row.sampled_ms;
                utilization += row.utilization_ms;
                session.peak_memory_bytes = Some(session.peak_memory_bytes.unwrap_or(0).max(row.peak_memory_bytes));
                // Samples stand for whole periods; a session is never busy
                // for longer than it held the GPU that day.
                let busy_ms = row.busy_ms.min(held);
                for busy in [&mut day.busy_ms, &mut session.busy_ms] {
                    *busy = busy.map(|b| b + busy_ms);
                }
            }
        }
        if sampled > 0 {
            session.mean_utilization = Some(utilization as f64 / sampled as f64);
        }
        user.held_ms += session.held_ms;
        user.busy_ms = user.busy_ms.zip(session.busy_ms).map(|(a, b)| a + b);
        user.sessions.push(session);
    }
    let mut out: Vec<UserUsage> = users.into_values().collect();
    for u in &mut out {
        u.sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    }
    out
}

/// The day a moment falls on, in UTC.
pub fn utc_day(at: OffsetDateTime) -> Date {
    at.to_offset(time::UtcOffset::UTC).date()
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;
    use crate::model::{DEFAULT_PACK_ID, UserId};

    fn session(user: UserId, created: OffsetDateTime, stopped: Option<OffsetDateTime>) -> Session {
        let mut s = Session::new_starting(user, Exposure::External, DEFAULT_PACK_ID, GpuId(0), created);
        s.stopped_at = stopped;
        s.status = if stopped.is_some() { SessionStatus::Stopped } else { SessionStatus::Running };
        s
    }

    fn records(sessions: Vec<Session>, email: &str) -> UsageRecords {
        let email: Email = email.parse().expect("email");
        UsageRecords {
            sessions: sessions.into_iter().map(|session| UsageSession { session, email: email.clone() }).collect(),
            gpu_usage: Vec::new(),
        }
    }

    #[test]
    fn held_time_is_split_at_midnight_and_clipped_to_the_period() {
        let user = UserId::new_random();
        // 22:30 on the 1st to 01:15 on the 2nd, and one across the period's start.
        let a = session(user, datetime!(2026-11-01 22:30 UTC), Some(datetime!(2026-11-02 01:15:07 UTC)));
        let b = session(user, datetime!(2026-10-31 23:00 UTC), Some(datetime!(2026-11-01 00:30 UTC)));
        let period = Period::new(date!(2026 - 11 - 01), date!(2026 - 11 - 03)).expect("period");
        let out = summarize(&records(vec![a, b], "a@example.org"), period, datetime!(2026-12-01 0:00 UTC), false);
        assert_eq!(out.len(), 1);
        let u = &out[0];
        assert_eq!(u.days.len(), 2);
        assert_eq!(u.days[0].held_ms, (90 + 30) * 60_000);
        assert_eq!(u.days[0].sessions, 2);
        assert_eq!(u.days[1].held_ms, (75 * 60 + 7) * 1000);
        assert_eq!(u.held_ms, u.days[0].held_ms + u.days[1].held_ms);
        assert_eq!(u.busy_ms, None, "not measured");
        assert_eq!(u.sessions[0].created_at, datetime!(2026-11-01 22:30 UTC), "newest first");
    }

    #[test]
    fn an_active_session_is_held_until_now_and_busy_comes_from_rows() {
        let user = UserId::new_random();
        let s = session(user, datetime!(2026-11-05 10:00 UTC), None);
        let mut recs = records(vec![s.clone()], "b@example.org");
        recs.gpu_usage.push(GpuUsageDay {
            sampled_ms: 3_600_000,
            busy_ms: 1_800_000,
            utilization_ms: 900_000,
            peak_memory_bytes: 7 << 30,
            ..GpuUsageDay::new(s.id, date!(2026 - 11 - 05), GpuId(0))
        });
        let period = Period::week_to(date!(2026 - 11 - 05));
        let out = summarize(&recs, period, datetime!(2026-11-05 12:00 UTC), true);
        let u = &out[0];
        assert_eq!(u.held_ms, 2 * 3_600_000);
        assert_eq!(u.busy_ms, Some(1_800_000));
        assert_eq!(u.sessions[0].mean_utilization, Some(0.25));
        assert_eq!(u.sessions[0].peak_memory_bytes, Some(7 << 30));
        assert_eq!(u.days.len(), 7);
        assert_eq!(u.days[6].busy_ms, Some(1_800_000));
        assert_eq!(u.days[0].busy_ms, Some(0));
    }

    #[test]
    fn periods_parse_dates_and_refuse_nonsense() {
        let today = date!(2026 - 11 - 17);
        let p = Period::parse(None, None, today).expect("defaults");
        assert_eq!((p.from, p.to), (date!(2026 - 11 - 01), date!(2026 - 11 - 18)));
        assert_eq!(Period::parse(Some("2026-11-03"), Some("2026-11-04"), today).expect("one day").days().count(), 1);
        assert_eq!(Period::parse(Some("yesterday"), None, today), Err(PeriodError::NotADate("yesterday".into())));
        assert_eq!(Period::parse(Some("2026-11-04"), Some("2026-11-04"), today), Err(PeriodError::Empty));
        assert_eq!(Period::parse(Some("2020-01-01"), Some("2026-01-01"), today), Err(PeriodError::TooLong));
        assert_eq!(Period::month_to(today).days().count(), 17);
    }
}
