//! Usage pages: a user's own GPU-hours (this week, this month, per day)
//! and the admin report over any period, with its CSV download. The
//! figures are the API's (`crate::service::usage`), in words.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use medforge_core::model;
use medforge_core::usage::{DayUsage, Period, UserUsage, utc_day};
use serde::Deserialize;

use super::page::{Chrome, ago, iso};
use crate::http::extract::{Admin, SignedIn};
use crate::http::html::render;
use crate::service::usage::{self as usage_service, BUSY_UNKNOWN, Report};
use crate::service::{AppState, Error};

/// Hours, as people read them: `1 h 05 min`, `42 min`, `0 min`.
pub fn duration(ms: u64) -> String {
    let minutes = ms / 60_000;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, m) => format!("{h} h {m:02} min"),
    }
}

fn date(d: time::Date) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    d.format(format).unwrap_or_default()
}

#[derive(Debug)]
struct Totals {
    label: &'static str,
    from: String,
    /// The last day included.
    until: String,
    sessions: usize,
    held: String,
    busy: Option<String>,
    /// Busy as a share of held, when both are known.
    busy_percent: Option<u64>,
}

fn totals(label: &'static str, period: Period, u: &UserUsage) -> Totals {
    Totals {
        label,
        from: date(period.from),
        until: date(period.to.previous_day().unwrap_or(period.to)),
        sessions: u.sessions.len(),
        held: duration(u.held_ms),
        busy: u.busy_ms.map(duration),
        busy_percent: u.busy_ms.filter(|_| u.held_ms > 0).map(|b| b * 100 / u.held_ms),
    }
}

#[derive(Debug)]
struct DayRow {
    day: String,
    sessions: u32,
    held: String,
    busy: Option<String>,
}

impl From<&DayUsage> for DayRow {
    fn from(d: &DayUsage) -> Self {
        Self { day: date(d.day), sessions: d.sessions, held: duration(d.held_ms), busy: d.busy_ms.map(duration) }
    }
}

#[derive(Debug)]
struct SessionLine {
    slug: String,
    id: String,
    started: String,
    started_iso: String,
    held: String,
    busy: Option<String>,
    mean: Option<u64>,
    peak: Option<String>,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    chrome: Chrome,
    /// This week, then this month.
    totals: Vec<Totals>,
    days: Vec<DayRow>,
    sessions: Vec<SessionLine>,
    busy_note: Option<&'static str>,
}

async fn own(state: &AppState, user: &model::User, period: Period) -> Result<(Report, UserUsage), Error> {
    let report = usage_service::report(state, Some(user.id), period).await?;
    let usage = report
        .users
        .first()
        .cloned()
        .unwrap_or_else(|| UserUsage::none(user.id, user.email.clone(), period, report.busy_measured));
    Ok((report, usage))
}

/// `GET /usage`: the caller's week and month, and the month day by day.
pub async fn mine(State(state): State<Arc<AppState>>, SignedIn(user): SignedIn) -> Result<Response, Error> {
    let today = utc_day(model::now());
    let (week_period, month_period) = (Period::week_to(today), Period::month_to(today));
    let (_, week) = own(&state, &user, week_period).await?;
    let (report, month) = own(&state, &user, month_period).await?;
    let page = UsagePage {
        chrome: Chrome::new("Usage", Some(&user), "usage"),
        totals: vec![totals("This week", week_period, &week), totals("This month", month_period, &month)],
        days: month.days.iter().rev().map(DayRow::from).collect(),
        sessions: month
            .sessions
            .iter()
            .map(|s| SessionLine {
                slug: s.slug.to_string(),
                id: s.session_id.to_string(),
                started: ago(s.created_at),
                started_iso: iso(s.created_at),
                held: duration(s.held_ms),
                busy: s.busy_ms.map(duration),
                mean: s.mean_utilization.map(|m| (m * 100.0).round() as u64),
                peak: s.peak_memory_bytes.map(super::gpu::gib),
            })
            .collect(),
        busy_note: (!report.busy_measured).then_some(BUSY_UNKNOWN),
    };
    Ok(render(StatusCode::OK, page))
}

#[derive(Debug, Default, Deserialize)]
pub struct PeriodQuery {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Debug)]
struct UserLine {
    email: String,
    sessions: usize,
    held: String,
    held_seconds: u64,
    busy: Option<String>,
    busy_percent: Option<u64>,
}

#[derive(Template)]
#[template(path = "admin_usage.html")]
struct AdminUsagePage {
    chrome: Chrome,
    section: &'static str,
    from: String,
    to: String,
    until: String,
    users: Vec<UserLine>,
    total_held: String,
    total_busy: Option<String>,
    csv_url: String,
    busy_note: Option<&'static str>,
}

/// `GET /admin/usage?from=&to=`: everyone's GPU-hours over the period.
pub async fn report(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, Error> {
    let period = usage_service::period(q.from.as_deref(), q.to.as_deref(), model::now())?;
    let report = usage_service::report(&state, None, period).await?;
    let mut users: Vec<UserLine> = report
        .users
        .iter()
        .map(|u| UserLine {
            email: u.email.to_string(),
            sessions: u.sessions.len(),
            held: duration(u.held_ms),
            held_seconds: u.held_ms / 1000,
            busy: u.busy_ms.map(duration),
            busy_percent: u.busy_ms.filter(|_| u.held_ms > 0).map(|b| b * 100 / u.held_ms),
        })
        .collect();
    // Who held most first: the question this page answers.
    users.sort_by(|a, b| b.held_seconds.cmp(&a.held_seconds).then_with(|| a.email.cmp(&b.email)));
    let held: u64 = report.users.iter().map(|u| u.held_ms).sum();
    let busy: Option<u64> = report.users.iter().map(|u| u.busy_ms).sum();
    let (from, to) = (date(period.from), date(period.to));
    let page = AdminUsagePage {
        chrome: Chrome::new("Usage", Some(&admin), "admin"),
        section: "usage",
        csv_url: format!("/admin/usage.csv?from={from}&to={to}"),
        until: date(period.to.previous_day().unwrap_or(period.to)),
        from,
        to,
        users,
        total_held: duration(held),
        total_busy: busy.filter(|_| report.busy_measured).map(duration),
        busy_note: (!report.busy_measured).then_some(BUSY_UNKNOWN),
    };
    Ok(render(StatusCode::OK, page))
}

/// `GET /admin/usage.csv?from=&to=`: the API's CSV, for a link to download.
pub async fn csv(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, Error> {
    let period = usage_service::period(q.from.as_deref(), q.to.as_deref(), model::now())?;
    let report = usage_service::report(&state, None, period).await?;
    Ok(crate::api::usage::csv_response(&report))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_hours_and_minutes() {
        assert_eq!(super::duration(0), "0 min");
        assert_eq!(super::duration(59_999), "0 min");
        assert_eq!(super::duration(42 * 60_000), "42 min");
        assert_eq!(super::duration((3 * 60 + 5) * 60_000), "3 h 05 min");
    }
}
