//! The HTTP API of docs/api.md: one module per resource, each a set of
//! routes whose handlers read the request, call the service layer and
//! answer with an [`Envelope`](crate::http::envelope::Envelope) or a
//! service error (a problem document, written by `crate::http::context`).

pub mod admin;
pub mod auth;
pub mod gate;
pub mod health;
pub mod invites;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod paging;
pub mod queue;
pub mod schemas;
pub mod sessions;
pub mod usage;
pub mod views;

use std::sync::Arc;

use axum::Router;

use crate::service::{AppState, Error, Missing};

/// Every API route of the main listener (`/api/v2/...`, `/healthz`; `/metrics`
/// has a listener of its own: [`metrics::app`]).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .merge(auth::routes())
        .merge(admin::routes())
        .merge(invites::routes())
        .merge(sessions::routes())
        .merge(queue::routes())
        .merge(usage::routes())
        .merge(gate::routes())
        .merge(health::routes())
        .merge(openapi::routes())
}

/// Any path no route has.
pub async fn not_found() -> Error {
    Error::NotFound(Missing::Route)
}
