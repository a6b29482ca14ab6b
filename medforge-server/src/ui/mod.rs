//! The web UI: server-rendered pages (askama templates, compile-checked) on
//! the UI hosts, with our own small stylesheet and script. Every form posts
//! and every page works without JavaScript; the script only adds live
//! updates (the progress event stream) and opens the IDE when a session is
//! ready. Handlers call the service layer (`crate::service`) as the API's
//! do, and show the same outcomes as pages; their errors become pages in
//! [`failure`].

mod account;
mod admin;
mod auth;
pub mod csrf;
mod enter;
mod events;
pub mod failure;
pub mod gpu;
mod invites;
pub mod next;
pub mod page;
mod queue;
mod sessions;
mod usage;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::service::AppState;

/// Every page and asset, with the layer that makes pages of errors.
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(sessions::dashboard))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/signup", get(auth::signup_page).post(auth::signup))
        .route("/logout", post(auth::logout))
        .route("/sessions", post(sessions::start))
        .route("/sessions/{id}", get(sessions::progress))
        .route("/sessions/{id}/stop", post(sessions::stop))
        .route("/sessions/{id}/extend", post(sessions::extend))
        .route("/queue", post(sessions::join_queue))
        .route("/queue/leave", post(sessions::leave_queue))
        .route("/snapshots", get(account::snapshots))
        .route("/account", get(account::show).post(account::update))
        .route("/usage", get(usage::mine))
        .route("/admin", get(admin::gpus))
        .route("/admin/gpus/{id}", post(admin::toggle_gpu))
        .route("/admin/sessions", get(admin::sessions))
        .route("/admin/sessions/{id}/stop", post(admin::stop))
        .route("/admin/queue", get(queue::list))
        .route("/admin/queue/{id}/remove", post(queue::remove))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/users/{id}", post(admin::update_user))
        .route("/admin/invites", get(invites::list).post(invites::create))
        .route("/admin/invites/{id}/revoke", post(invites::revoke))
        .route("/admin/events", get(events::events))
        .route("/admin/usage", get(usage::report))
        .route("/admin/usage.csv", get(usage::csv))
        .route("/static/app.css", get(stylesheet))
        .route("/static/app.js", get(script))
        .route("/static/favicon.svg", get(icon))
        .route("/favicon.ico", get(icon))
        .route("/sessions/enter", get(enter::enter))
        .route_layer(middleware::from_fn_with_state(state.clone(), failure::layer))
        .route_layer(middleware::from_fn_with_state(state, csrf::layer))
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../static/app.css"))
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../../static/app.js"))
}

async fn icon() -> Response {
    asset("image/svg+xml", include_str!("../../static/favicon.svg"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}
