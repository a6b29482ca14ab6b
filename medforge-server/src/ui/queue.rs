//! The admin's view of the wait queue: who waits, in which order, who has
//! a GPU kept for them and until when; and removing a place.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::admin::emails;
use super::page::{Chrome, clock};
use crate::http::extract::Admin;
use crate::http::html::render;
use crate::service::accounts::Caller;
use crate::service::{AppState, Error, queue};

struct PlaceRow {
    id: String,
    email: String,
    exposure: String,
    state: String,
    /// "1", or "GPU kept until 14:05:00 UTC".
    standing: String,
    joined: String,
    auto_start: bool,
}

#[derive(Template)]
#[template(path = "admin_queue.html")]
struct QueuePage {
    chrome: Chrome,
    section: &'static str,
    places: Vec<PlaceRow>,
    order: &'static str,
}

pub async fn list(State(state): State<Arc<AppState>>, Admin(admin): Admin) -> Result<Response, Error> {
    let all = queue::everyone(&state).await?;
    let who = emails(&state, all.iter().map(|q| q.entry.user_id).collect()).await;
    let places = all
        .iter()
        .map(|q| PlaceRow {
            id: q.entry.id.to_string(),
            email: who.get(&q.entry.user_id).cloned().unwrap_or_default(),
            exposure: q.entry.exposure.to_string(),
            state: q.entry.state.to_string(),
            standing: match (q.position, q.entry.offered_until) {
                (_, Some(until)) => format!("GPU kept until {}", clock(until)),
                (Some(p), None) => p.to_string(),
                (None, None) => String::new(),
            },
            joined: clock(q.entry.joined_at),
            auto_start: q.entry.auto_start,
        })
        .collect();
    let order = match state.config.queue.order {
        medforge_core::queue::QueueOrder::Fifo => "first come, first served",
        medforge_core::queue::QueueOrder::Fair => "fewest GPU-hours in the last 7 days first",
    };
    let page = QueuePage { chrome: Chrome::new("Queue", Some(&admin), "admin"), section: "queue", places, order };
    Ok(render(StatusCode::OK, page))
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Admin(admin): Admin,
) -> Result<Response, Error> {
    queue::remove_by_admin(&state, &admin, &id, &caller.request_id).await?;
    Ok(Redirect::to("/admin/queue").into_response())
}
