//! What the GPUs are doing: the last reading and the last hour of each
//! GPU, in memory, and what each session's GPU did, per UTC day, until it
//! is written to the store (`session_gpu_usage`).
//!
//! The sampler (`crate::tasks::sample_gpus`) calls [`GpuMonitor::record`]
//! every `telemetry.interval` with a reading and the GPUs' holders from the
//! store; everything else only reads. Each reading stands for the period
//! since the one before it (at most three intervals: a stalled server does
//! not charge the hours it slept), charged to the session that holds the
//! GPU now. Time is passed in, never read here, so tests drive it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use medforge_core::model::{GpuId, SessionId};
use medforge_core::telemetry::GpuSample;
use medforge_core::usage::{GpuUsageDay, utc_day};
use time::{Date, OffsetDateTime};

/// How much history each GPU keeps.
pub const HISTORY: Duration = Duration::from_secs(3600);
/// How often a running session's aggregates are written (an ended one's at once).
pub const CHECKPOINT: Duration = Duration::from_secs(60);

/// One point of a GPU's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub at: OffsetDateTime,
    pub utilization_percent: u32,
    pub memory_used_bytes: u64,
}

/// A GPU's latest reading, and when it was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub at: OffsetDateTime,
    pub sample: GpuSample,
}

#[derive(Debug, Default)]
struct Track {
    latest: Option<Reading>,
    history: VecDeque<Point>,
}

#[derive(Debug)]
struct Charged {
    days: BTreeMap<Date, GpuUsageDay>,
    /// Changed since it was last written.
    dirty: bool,
}

#[derive(Debug, Default)]
struct Inner {
    last_at: Option<OffsetDateTime>,
    last_checkpoint: Option<OffsetDateTime>,
    gpus: BTreeMap<u32, Track>,
    sessions: HashMap<SessionId, Charged>,
    /// The last reading's failure, until a reading succeeds.
    failure: Option<String>,
}

/// What a call of [`GpuMonitor::record`] leaves the caller to do.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Rows to write (whole values).
    pub rows: Vec<GpuUsageDay>,
    /// The sessions of `rows`.
    pub written: Vec<SessionId>,
    /// Sessions that hold no GPU any more: forgotten once `rows` are written.
    pub ended: Vec<SessionId>,
}

#[derive(Debug)]
pub struct GpuMonitor {
    /// The telemetry source's name (`nvml`, `none`, ...).
    pub source: &'static str,
    /// Whether readings come at all.
    pub live: bool,
    /// Why not, when not live.
    pub unavailable: Option<String>,
    pub interval: Duration,
    busy_percent: f64,
    inner: Mutex<Inner>,
}

impl GpuMonitor {
    pub fn new(
        source: &'static str,
        live: bool,
        unavailable: Option<String>,
        interval: Duration,
        busy_utilization: f64,
    ) -> Self {
        Self {
            source,
            live,
            unavailable,
            interval,
            busy_percent: busy_utilization * 100.0,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain numbers behind: go on.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sessions among `holders` that this monitor has not charged yet; the
    /// sampler loads their stored rows ([`Self::resume`]) before recording,
    /// so that a restart carries on from what was written.
    pub fn unknown(&self, holders: &[(GpuId, SessionId)]) -> Vec<SessionId> {
        let inner = self.lock();
        holders.iter().map(|(_, s)| *s).filter(|s| !inner.sessions.contains_key(s)).collect()
    }

    /// Carries on from a session's stored rows.
    pub fn resume(&self, session: SessionId, rows: Vec<GpuUsageDay>) {
        let days = rows.into_iter().map(|r| (r.day, r)).collect();
        self.lock().sessions.entry(session).or_insert(Charged { days, dirty: false });
    }

    /// Records a reading taken at `now` (or its failure), charging each
    /// GPU's period to its holder, and says what to write.
    pub fn record(
        &self,
        now: OffsetDateTime,
        reading: Result<Vec<GpuSample>, String>,
        holders: &[(GpuId, SessionId)],
    ) -> Recorded {
        let mut inner = self.lock();
        let period = match inner.last_at {
            Some(last) if now > last => {
                (now - last).min(time::Duration::try_from(self.interval * 3).unwrap_or_default())
            }
            _ => time::Duration::ZERO,
        };
        let period_ms = u64::try_from(period.whole_milliseconds()).unwrap_or(0);
        inner.last_at = Some(now);
        match reading {
            Ok(samples) => {
                inner.failure = None;
                let horizon = now - HISTORY;
                for sample in samples {
                    let track = inner.gpus.entry(sample.index).or_default();
                    track.history.push_back(Point {
                        at: now,
                        utilization_percent: sample.utilization_percent,
                        memory_used_bytes: sample.memory_used_bytes,
                    });
                    while track.history.front().is_some_and(|p| p.at < horizon) {
                        track.history.pop_front();
                    }
                    if let Some(&(gpu, session)) = holders.iter().find(|(g, _)| g.0 == sample.index) {
                        let charged = inner
                            .sessions
                            .entry(session)
                            .or_insert_with(|| Charged { days: BTreeMap::new(), dirty: false });
                        let day = charged
                            .days
                            .entry(utc_day(now))
                            .or_insert_with(|| GpuUsageDay::new(session, utc_day(now), gpu));
                        day.sampled_ms += period_ms;
                        if f64::from(sample.utilization_percent) >= self.busy_percent && period_ms > 0 {
                            day.busy_ms += period_ms;
                        }
                        day.utilization_ms += period_ms * u64::from(sample.utilization_percent.min(100)) / 100;
                        day.peak_memory_bytes = day.peak_memory_bytes.max(sample.memory_used_bytes);
                        charged.dirty = true;
                    }
                    let track = inner.gpus.entry(sample.index).or_default();
                    track.latest = Some(Reading { at: now, sample });
                }
            }
            Err(why) => inner.failure = Some(why),
        }
        let checkpoint =
            inner.last_checkpoint.is_none_or(|at| now - at >= time::Duration::try_from(CHECKPOINT).unwrap_or_default());
        if checkpoint {
            inner.last_checkpoint = Some(now);
        }
        let mut out = Recorded::default();
        for (id, charged) in &mut inner.sessions {
            let held = holders.iter().any(|(_, s)| s == id);
            if !held {
                out.ended.push(*id);
            }
            if charged.dirty && (checkpoint || !held) {
                out.rows.extend(charged.days.values().cloned());
                out.written.push(*id);
            }
        }
        out
    }

    /// After `recorded.rows` are in the store: those sessions are clean,
    /// the ended ones forgotten. Until then (a failed write) they stay
    /// dirty and are written with a later reading.
    pub fn written(&self, recorded: &Recorded) {
        let mut inner = self.lock();
        for id in &recorded.written {
            if let Some(c) = inner.sessions.get_mut(id) {
                c.dirty = false;
            }
        }
        for id in &recorded.ended {
            if inner.sessions.get(id).is_some_and(|c| !c.dirty) {
                inner.sessions.remove(id);
            }
        }
    }

    /// Every charged session's rows, for the last write at shutdown.
    pub fn all_rows(&self) -> Vec<GpuUsageDay> {
        self.lock().sessions.values().flat_map(|c| c.days.values().cloned()).collect()
    }

    /// The latest reading of a GPU, if any came.
    pub fn latest(&self, gpu: u32) -> Option<Reading> {
        self.lock().gpus.get(&gpu).and_then(|t| t.latest.clone())
    }

    /// A GPU's points since `now - window`, oldest first.
    pub fn history(&self, gpu: u32, now: OffsetDateTime, window: Duration) -> Vec<Point> {
        let since = now - window;
        self.lock()
            .gpus
            .get(&gpu)
            .map(|t| t.history.iter().filter(|p| p.at >= since).copied().collect())
            .unwrap_or_default()
    }

    /// Why the last reading failed, while readings fail.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// A session's charged time so far (memory only: what is not yet written
    /// is in here; ended sessions are in the store).
    pub fn session_totals(&self, session: SessionId) -> Option<GpuUsageDay> {
        let inner = self.lock();
        let charged = inner.sessions.get(&session)?;
        let mut days = charged.days.values();
        let mut total = days.next()?.clone();
        for d in days {
            total.sampled_ms += d.sampled_ms;
            total.busy_ms += d.busy_ms;
            total.utilization_ms += d.utilization_ms;
            total.peak_memory_bytes = total.peak_memory_bytes.max(d.peak_memory_bytes);
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use medforge_core::testing::telemetry::reading;
    use time::macros::datetime;

    use super::*;

    fn monitor() -> GpuMonitor {
        GpuMonitor::new("stand-in", true, None, Duration::from_secs(5), 0.1)
    }

    #[test]
    fn each_reading_charges_its_period_to_the_holder() {
        let m = monitor();
        let s = SessionId::new_random();
        let held = [(GpuId(1), s)];
        let t0 = datetime!(2026-11-02 10:00 UTC);
        let at = |secs: i64| t0 + time::Duration::seconds(secs);
        // The first reading opens the period; nothing is charged for it.
        let r = m.record(t0, Ok(vec![reading(0, 0, 0, 100), reading(1, 80, 30, 100)]), &held);
        assert!(r.rows[0].sampled_ms == 0 && r.ended.is_empty(), "first reading, first checkpoint");
        m.record(at(5), Ok(vec![reading(0, 0, 0, 100), reading(1, 80, 40, 100)]), &held);
        // Below the threshold (10 %): sampled, not busy.
        m.record(at(10), Ok(vec![reading(0, 0, 0, 100), reading(1, 5, 10, 100)]), &held);
        let t = m.session_totals(s).expect("charged");
        assert_eq!((t.sampled_ms, t.busy_ms), (10_000, 5_000));
        assert_eq!(t.utilization_ms, 4_000 + 250);
        assert_eq!(t.peak_memory_bytes, 40);
        assert_eq!(m.latest(1).expect("latest").sample.utilization_percent, 5);
        assert_eq!(m.history(1, at(10), Duration::from_secs(900)).len(), 3);
        assert_eq!(m.history(1, at(10), Duration::from_secs(6)).len(), 2);
    }

    #[test]
    fn a_session_that_ends_is_written_at_once_and_then_forgotten() {
        let m = monitor();
        let s = SessionId::new_random();
        let t0 = datetime!(2026-11-02 23:59:58 UTC);
        m.record(t0, Ok(vec![reading(0, 100, 1, 2)]), &[(GpuId(0), s)]);
        // Across midnight: the period goes to the day it ends on.
        let r = m.record(t0 + time::Duration::seconds(5), Ok(vec![reading(0, 100, 1, 2)]), &[(GpuId(0), s)]);
        assert!(r.rows.is_empty(), "no checkpoint yet");
        let r = m.record(t0 + time::Duration::seconds(10), Ok(vec![reading(0, 0, 0, 2)]), &[]);
        assert_eq!(r.ended, vec![s]);
        assert_eq!(r.rows.len(), 2, "two days: {:?}", r.rows);
        assert_eq!(r.rows[1].day, time::macros::date!(2026 - 11 - 03));
        assert_eq!(r.rows[1].busy_ms, 5_000);
        // Until the write succeeds it stays, and is offered again.
        let again = m.record(t0 + time::Duration::seconds(15), Ok(vec![reading(0, 0, 0, 2)]), &[]);
        assert_eq!(again.rows, r.rows, "a failed write loses nothing");
        m.written(&again);
        assert!(m.session_totals(s).is_none());
    }

    #[test]
    fn a_stall_is_not_charged_and_a_failure_is_kept_until_the_next_reading() {
        let m = monitor();
        let s = SessionId::new_random();
        let t0 = datetime!(2026-11-02 10:00 UTC);
        m.record(t0, Ok(vec![reading(0, 90, 1, 2)]), &[(GpuId(0), s)]);
        m.record(t0 + time::Duration::hours(2), Ok(vec![reading(0, 90, 1, 2)]), &[(GpuId(0), s)]);
        assert_eq!(m.session_totals(s).expect("charged").sampled_ms, 15_000, "three intervals at most");
        m.record(t0 + time::Duration::hours(3), Err("GPU fell off the bus".into()), &[(GpuId(0), s)]);
        assert_eq!(m.failure().as_deref(), Some("GPU fell off the bus"));
        m.record(t0 + time::Duration::hours(4), Ok(vec![reading(0, 90, 1, 2)]), &[(GpuId(0), s)]);
        assert!(m.failure().is_none());
    }

    #[test]
    fn a_resumed_session_carries_on_from_its_rows() {
        let m = monitor();
        let s = SessionId::new_random();
        let t0 = datetime!(2026-11-02 10:00 UTC);
        let mut row = GpuUsageDay::new(s, utc_day(t0), GpuId(0));
        row.sampled_ms = 60_000;
        assert_eq!(m.unknown(&[(GpuId(0), s)]), vec![s]);
        m.resume(s, vec![row]);
        assert!(m.unknown(&[(GpuId(0), s)]).is_empty());
        m.record(t0, Ok(vec![reading(0, 0, 0, 2)]), &[(GpuId(0), s)]);
        m.record(t0 + time::Duration::seconds(5), Ok(vec![reading(0, 0, 0, 2)]), &[(GpuId(0), s)]);
        assert_eq!(m.session_totals(s).expect("charged").sampled_ms, 65_000);
    }
}
