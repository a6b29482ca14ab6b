//! GPU-hours: the usage report of one user or of everyone, over whole UTC
//! days (`medforge_core::usage` does the arithmetic), and the live view of
//! a GPU (its latest reading and its recent history).

use medforge_core::model::{self, GpuDevice, UserId};
use medforge_core::usage::{self, Period, PeriodError, UserUsage};
use time::OffsetDateTime;

use super::gpu_monitor::{Point, Reading};
use super::{AppState, Error};

/// A usage report.
#[derive(Debug)]
pub struct Report {
    pub period: Period,
    /// The telemetry source now (`nvml`, `none`, ...).
    pub telemetry: &'static str,
    /// Whether busy time is known: telemetry runs, or rows of it exist for
    /// the period. Without it every busy figure is `None`.
    pub busy_measured: bool,
    /// Per user, by email.
    pub users: Vec<UserUsage>,
}

/// The sentence the API and the UI give when busy time is not known.
pub const BUSY_UNKNOWN: &str =
    "Busy hours need GPU telemetry (NVML), which this server does not have; held hours come from the sessions.";

/// A period from `from` / `to` query values (dates), or the field's error.
pub fn period(from: Option<&str>, to: Option<&str>, now: OffsetDateTime) -> Result<Period, Error> {
    Period::parse(from, to, usage::utc_day(now)).map_err(|e| {
        let field = match &e {
            PeriodError::NotADate(s) if from == Some(s.as_str()) => "from",
            PeriodError::NotADate(_) => "to",
            PeriodError::Empty | PeriodError::TooLong => "to",
        };
        Error::field(field, e.to_string())
    })
}

/// The report of `user` (or of everyone) over `period`.
#[tracing::instrument(skip(state))]
pub async fn report(state: &AppState, user: Option<UserId>, period: Period) -> Result<Report, Error> {
    let records = state.store.usage_records(period.start(), period.end(), user).await?;
    let busy_measured = state.telemetry.is_live() || !records.gpu_usage.is_empty();
    let users = usage::summarize(&records, period, model::now(), busy_measured);
    Ok(Report { period, telemetry: state.telemetry.source(), busy_measured, users })
}

/// What a GPU is doing, for the board and the dashboard.
#[derive(Debug, Clone)]
pub struct GpuLive {
    pub gpu: GpuDevice,
    /// The latest reading, if one came.
    pub reading: Option<Reading>,
    /// The last `window`, oldest first.
    pub history: Vec<Point>,
}

/// How far back the board's sparklines go.
pub const SPARKLINE_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

pub fn live(state: &AppState, gpu: GpuDevice) -> GpuLive {
    let now = model::now();
    GpuLive {
        reading: state.gpu_monitor.latest(gpu.id.0),
        history: state.gpu_monitor.history(gpu.id.0, now, SPARKLINE_WINDOW),
        gpu,
    }
}
