//! The Origin rule of docs/api.md on every state-changing request: no `Origin`,
//! or one within the base domain (`medforge_core::auth::origin_allowed`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::service::{AppState, Denied, Error};

pub async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let changes_state = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    if changes_state {
        let origin = req.headers().get(header::ORIGIN).map(|v| v.to_str().unwrap_or("\u{0}"));
        if !medforge_core::auth::origin_allowed(origin, &state.config.base_domain) {
            return Error::Forbidden(Denied::CrossOrigin).into_response();
        }
    }
    next.run(req).await
}
