//! `GET /api/v2/openapi.json`: the OpenAPI 3.1 document, generated from the
//! handlers' `#[utoipa::path]` attributes and the request types.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use utoipa::{OpenApi, ToSchema};

use crate::state::AppState;

/// Every success body: `data`, and `meta` as API.md describes it.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // a schema, never built
pub struct EnvelopeDoc {
    data: serde_json::Value,
    meta: MetaDoc,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct MetaDoc {
    request_id: String,
    api_version: String,
    timestamp: String,
    limit: Option<u32>,
    next_cursor: Option<String>,
    has_more: Option<bool>,
}

/// An RFC 9457 problem document.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ProblemDoc {
    r#type: String,
    title: String,
    status: u16,
    detail: String,
    instance: String,
    code: String,
    request_id: String,
    errors: Option<Vec<FieldErrorDoc>>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct FieldErrorDoc {
    field: String,
    message: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MedForge API",
        version = "2.0.0",
        description = "Browser IDE sessions with one GPU each. See API.md."
    ),
    paths(
        super::auth::signup,
        super::auth::login,
        super::auth::logout,
        super::auth::me,
        super::auth::update_me,
        super::sessions::create,
        super::sessions::list,
        super::sessions::current,
        super::sessions::get_one,
        super::sessions::stop,
        super::sessions::snapshots,
        super::sessions::progress,
        super::admin::list_users,
        super::admin::update_user,
        super::admin::list_sessions,
        super::admin::stop_session,
        super::admin::list_gpus,
        super::admin::update_gpu,
        super::admin::list_events,
        super::gate::session_proxy,
        super::health::healthz,
        super::metrics::render,
    ),
    components(schemas(EnvelopeDoc, MetaDoc, ProblemDoc, FieldErrorDoc))
)]
pub struct ApiDoc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v2/openapi.json", get(document))
}

async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
