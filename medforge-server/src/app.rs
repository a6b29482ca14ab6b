//! The whole HTTP app: the API's and the UI's routes, with the session
//! proxy in front of them, and the middleware each needs, outermost last:
//!
//! 1. `http::forwarded`: the client's address behind trusted proxies,
//!    before anything reads it;
//! 2. `proxy::dispatch`: session hosts go to the proxy and never reach the
//!    layers below (no body limit, no rewriting of an upstream's errors);
//! 3. `http::security_headers` on every answer of ours; `http::planted`:
//!    a request with a second (planted) login cookie is healed or refused
//!    before anything reads the cookie; `http::context`: the request id
//!    and span, envelopes and problem documents;
//! 4. the body limit and body timeout, and `http::origin`'s rule on
//!    state-changing requests;
//! 5. per route: request metrics, and on the UI's routes the layer that
//!    makes pages of errors (`ui::failure`) inside the one that checks
//!    their forms' CSRF tokens (`ui::csrf`).

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};

use crate::proxy::{self, Proxy};
use crate::service::AppState;
use crate::{api, http, ui};

/// How long a request body to the API or the UI may take to arrive.
pub const CONTROL_PLANE_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn app(state: Arc<AppState>) -> Router {
    let max_body = state.config.limits.max_body_bytes;
    Router::new()
        .merge(api::routes())
        .merge(ui::routes(state.clone()))
        .route_layer(from_fn(http::metrics::track))
        .fallback(api::not_found)
        .layer(from_fn_with_state(state.clone(), http::origin::guard))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        // A body the control plane reads (at most max_body_bytes) comes in
        // this long, or the request fails: a client that sends headers and
        // then dribbles a body holds its connection no longer. (Session
        // hosts never reach this: uploads to an IDE may take their time.)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(CONTROL_PLANE_BODY_TIMEOUT))
        .layer(from_fn(http::context::layer))
        .layer(from_fn_with_state(state.clone(), http::planted::layer))
        .layer(from_fn_with_state(state.clone(), http::security_headers::layer))
        .layer(from_fn_with_state(Proxy::new(state.clone()), proxy::dispatch))
        .layer(from_fn_with_state(state.clone(), http::forwarded::layer))
        .with_state(state)
}
