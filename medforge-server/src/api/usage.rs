//! GPU-hours: `GET /api/v2/me/usage` (the caller's) and
//! `GET /api/v2/admin/usage` (everyone's; `Accept: text/csv` answers CSV).
//! Periods are whole UTC days, `from` included and `to` excluded.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use medforge_core::model::{Exposure, GpuId, SessionId, SessionStatus, UserId};
use medforge_core::usage::{DayUsage, SessionUsage, UserUsage};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::schemas::{AdminErrors, EnvelopeDoc, InvalidErrors, SignedInErrors};
use crate::http::envelope::{Envelope, rfc3339};
use crate::http::extract::{Admin, SignedIn};
use crate::service::usage::{self as usage_service, BUSY_UNKNOWN, Report};
use crate::service::{AppState, Error};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v2/me/usage", get(mine)).route("/api/v2/admin/usage", get(everyone))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// First day (YYYY-MM-DD, UTC), included; default: the first of this month.
    from: Option<String>,
    /// Day after the last (YYYY-MM-DD, UTC), excluded; default: tomorrow.
    to: Option<String>,
}

fn seconds(ms: u64) -> u64 {
    ms / 1000
}

fn hours(ms: u64) -> f64 {
    // Four decimals: 0.36 s, finer than the seconds beside it need.
    (ms as f64 / 3_600_000.0 * 10_000.0).round() / 10_000.0
}

fn date(d: time::Date) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    d.format(format).unwrap_or_default()
}

/// One day of one user's use. Seconds are whole (floored); hours are the
/// same figure, to four decimals.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayView {
    #[schema(format = Date)]
    day: String,
    sessions: u32,
    gpu_seconds_held: u64,
    gpu_hours_held: f64,
    /// `null` when busy time is not measured.
    gpu_seconds_busy: Option<u64>,
    gpu_hours_busy: Option<f64>,
}

impl From<&DayUsage> for DayView {
    fn from(d: &DayUsage) -> Self {
        Self {
            day: date(d.day),
            sessions: d.sessions,
            gpu_seconds_held: seconds(d.held_ms),
            gpu_hours_held: hours(d.held_ms),
            gpu_seconds_busy: d.busy_ms.map(seconds),
            gpu_hours_busy: d.busy_ms.map(hours),
        }
    }
}

/// One session's use within the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionUsageView {
    session_id: SessionId,
    slug: String,
    exposure: Exposure,
    #[schema(value_type = u32)]
    gpu_id: GpuId,
    status: SessionStatus,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    stopped_at: Option<String>,
    gpu_seconds_held: u64,
    gpu_seconds_busy: Option<u64>,
    /// Mean utilisation (0 to 1) over the sampled time.
    mean_utilization: Option<f64>,
    peak_memory_bytes: Option<u64>,
}

impl From<&SessionUsage> for SessionUsageView {
    fn from(s: &SessionUsage) -> Self {
        Self {
            session_id: s.session_id,
            slug: s.slug.to_string(),
            exposure: s.exposure,
            gpu_id: s.gpu_id,
            status: s.status,
            created_at: rfc3339(s.created_at),
            stopped_at: s.stopped_at.map(rfc3339),
            gpu_seconds_held: seconds(s.held_ms),
            gpu_seconds_busy: s.busy_ms.map(seconds),
            mean_utilization: s.mean_utilization.map(|u| (u * 1000.0).round() / 1000.0),
            peak_memory_bytes: s.peak_memory_bytes,
        }
    }
}

/// One user's use within the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserUsageView {
    user_id: UserId,
    email: String,
    sessions_count: usize,
    gpu_seconds_held: u64,
    gpu_hours_held: f64,
    gpu_seconds_busy: Option<u64>,
    gpu_hours_busy: Option<f64>,
    /// Newest first (the caller's own report only).
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions: Option<Vec<SessionUsageView>>,
    /// Every day of the period, oldest first.
    days: Vec<DayView>,
}

impl UserUsageView {
    fn new(u: &UserUsage, with_sessions: bool) -> Self {
        Self {
            user_id: u.user_id,
            email: u.email.to_string(),
            sessions_count: u.sessions.len(),
            gpu_seconds_held: seconds(u.held_ms),
            gpu_hours_held: hours(u.held_ms),
            gpu_seconds_busy: u.busy_ms.map(seconds),
            gpu_hours_busy: u.busy_ms.map(hours),
            sessions: with_sessions.then(|| u.sessions.iter().map(SessionUsageView::from).collect()),
            days: u.days.iter().map(DayView::from).collect(),
        }
    }
}

/// The period and how busy time was known.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodView {
    #[schema(format = Date)]
    from: String,
    #[schema(format = Date)]
    to: String,
    /// The telemetry source now: `nvml` or `none`.
    telemetry: &'static str,
    busy_measured: bool,
    /// Why busy figures are `null`, when they are.
    busy_note: Option<&'static str>,
}

impl From<&Report> for PeriodView {
    fn from(r: &Report) -> Self {
        Self {
            from: date(r.period.from),
            to: date(r.period.to),
            telemetry: r.telemetry,
            busy_measured: r.busy_measured,
            busy_note: (!r.busy_measured).then_some(BUSY_UNKNOWN),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MyUsage {
    #[serde(flatten)]
    period: PeriodView,
    #[serde(flatten)]
    usage: UserUsageView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EveryonesUsage {
    #[serde(flatten)]
    period: PeriodView,
    /// Users with use in the period, by email.
    users: Vec<UserUsageView>,
}

#[utoipa::path(
    get,
    path = "/api/v2/me/usage",
    tag = "me",
    params(UsageQuery),
    responses(
        (status = 200, description = "The caller's GPU-hours", body = EnvelopeDoc<MyUsage>),
        SignedInErrors,
        InvalidErrors
    )
)]
pub async fn mine(
    State(state): State<Arc<AppState>>,
    SignedIn(user): SignedIn,
    Query(q): Query<UsageQuery>,
) -> Result<Envelope, Error> {
    let period = usage_service::period(q.from.as_deref(), q.to.as_deref(), medforge_core::model::now())?;
    let report = usage_service::report(&state, Some(user.id), period).await?;
    let usage = report
        .users
        .first()
        .cloned()
        .unwrap_or_else(|| UserUsage::none(user.id, user.email.clone(), report.period, report.busy_measured));
    Ok(Envelope::ok(MyUsage { period: PeriodView::from(&report), usage: UserUsageView::new(&usage, true) }))
}

#[utoipa::path(
    get,
    path = "/api/v2/admin/usage",
    tag = "admin",
    params(UsageQuery),
    responses(
        (status = 200, description = "Everyone's GPU-hours (CSV with Accept: text/csv: a row per user and day)", body = EnvelopeDoc<EveryonesUsage>),
        AdminErrors,
        InvalidErrors
    )
)]
pub async fn everyone(
    State(state): State<Arc<AppState>>,
    _: Admin,
    headers: HeaderMap,
    Query(q): Query<UsageQuery>,
) -> Result<Response, Error> {
    let period = usage_service::period(q.from.as_deref(), q.to.as_deref(), medforge_core::model::now())?;
    let report = usage_service::report(&state, None, period).await?;
    if wants_csv(&headers) {
        return Ok(csv_response(&report));
    }
    let users = report.users.iter().map(|u| UserUsageView::new(u, false)).collect();
    Ok(Envelope::ok(EveryonesUsage { period: PeriodView::from(&report), users }).into_response())
}

/// `Accept: text/csv` (alone or preferred by order): CSV, else JSON.
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .find(|t| t == "text/csv" || t == "application/json" || t == "application/problem+json")
        .is_some_and(|t| t == "text/csv")
}

/// The report as CSV, as a download (also the UI's).
pub fn csv_response(report: &Report) -> Response {
    let name = format!("medforge-usage-{}-{}.csv", date(report.period.from), date(report.period.to));
    let mut response = csv(report).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// A row per user and day with use (RFC 4180); busy cells are empty when
/// busy time is not measured.
pub fn csv(report: &Report) -> String {
    let mut out =
        String::from("user_id,email,day,sessions,gpu_seconds_held,gpu_hours_held,gpu_seconds_busy,gpu_hours_busy\r\n");
    for u in &report.users {
        for d in u.days.iter().filter(|d| d.sessions > 0) {
            let busy_s = d.busy_ms.map(|b| seconds(b).to_string()).unwrap_or_default();
            let busy_h = d.busy_ms.map(|b| format!("{:.4}", hours(b))).unwrap_or_default();
            out.push_str(&format!(
                "{},{},{},{},{},{:.4},{},{}\r\n",
                u.user_id,
                cell(u.email.as_str()),
                date(d.day),
                d.sessions,
                seconds(d.held_ms),
                hours(d.held_ms),
                busy_s,
                busy_h
            ));
        }
    }
    out
}

/// A text cell: quoted when it must be, and never read as a formula by a
/// spreadsheet (an email is the user's own text: `=HYPERLINK(...)@x.org`).
fn cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(cell("ada@example.org"), "ada@example.org");
        assert_eq!(cell("=cmd|'/c calc'!A1@x.org"), "'=cmd|'/c calc'!A1@x.org");
        assert_eq!(cell("a,\"b\"@x.org"), "\"a,\"\"b\"\"@x.org\"");
    }

    #[test]
    fn accept_picks_csv_only_when_asked_first() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(v));
            wants_csv(&h)
        };
        assert!(with("text/csv"));
        assert!(with("text/csv;q=0.9, application/json;q=0.5"));
        assert!(!with("application/json, text/csv"));
        assert!(!with("*/*"));
        assert!(!wants_csv(&HeaderMap::new()));
    }

    #[test]
    fn hours_have_four_decimals() {
        assert_eq!(hours(3_600_000), 1.0);
        assert_eq!(hours(5_415_000), 1.5042);
        assert_eq!(seconds(5_415_999), 5415);
    }
}
