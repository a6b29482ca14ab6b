//! `GET /api/v2/openapi.json`: the OpenAPI 3.1 document, generated from the
//! handlers' `#[utoipa::path]` attributes and the request types.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;

use super::schemas::{FieldErrorDoc, MetaDoc, ProblemDoc};
use super::{admin, auth, gate, health, invites, queue, sessions, usage};
use crate::service::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MedForge API",
        version = "2.0.0",
        description = "Browser IDE sessions with one GPU each. See docs/api.md."
    ),
    paths(
        auth::signup,
        auth::login,
        auth::logout,
        auth::me,
        auth::update_me,
        sessions::create,
        sessions::list,
        sessions::current,
        sessions::get_one,
        sessions::stop,
        sessions::snapshots,
        sessions::progress,
        sessions::extend,
        queue::join,
        queue::mine,
        queue::leave,
        queue::everyone,
        queue::remove,
        admin::list_users,
        admin::create_user,
        admin::update_user,
        invites::create_invite,
        invites::list_invites,
        invites::revoke_invite,
        admin::list_sessions,
        admin::stop_session,
        admin::list_gpus,
        admin::update_gpu,
        admin::list_events,
        usage::mine,
        usage::everyone,
        gate::session_proxy,
        health::healthz,
    ),
    components(schemas(MetaDoc, ProblemDoc, FieldErrorDoc))
)]
#[derive(Debug)]
pub struct ApiDoc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v2/openapi.json", get(document))
}

async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
