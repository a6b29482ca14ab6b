//! Admin routes: users, all sessions, GPUs, the event log. Every route
//! takes the [`Admin`] extractor.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use medforge_core::model::{Session, UserId};
use medforge_core::store::StoredEvent;
use medforge_core::store::{EventFilter, SessionFilter};
use serde::Deserialize;

use super::json::ApiJson;
use super::paging::{self, ListQuery};
use super::schemas::{
    AdminErrors, EmptyBody, EnvelopeDoc, InvalidErrors, JsonErrors, PageErrors, PageParams, ProblemDoc,
};
use super::sessions::stop_answer;
use super::views::{GpuView, UserView};
use crate::http::envelope::Envelope;
use crate::http::extract::Admin;
use crate::service::accounts::Caller;
use crate::service::admin::{self as admin_service, NewAccount, UserChange};
use crate::service::{AppState, Error, sessions, usage};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v2/admin/users", get(list_users).post(create_user))
        .route("/api/v2/admin/users/{id}", patch(update_user))
        .route("/api/v2/admin/sessions", get(list_sessions))
        .route("/api/v2/admin/sessions/{id}/stop", post(stop_session))
        .route("/api/v2/admin/gpus", get(list_gpus))
        .route("/api/v2/admin/gpus/{id}", patch(update_gpu))
        .route("/api/v2/admin/events", get(list_events))
}

#[utoipa::path(
    get,
    path = "/api/v2/admin/users",
    tag = "admin",
    params(PageParams),
    responses((status = 200, description = "Users, newest first", body = EnvelopeDoc<Vec<UserView>>), AdminErrors, PageErrors)
)]
pub async fn list_users(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
    _: Admin,
) -> Result<Envelope, Error> {
    let params = paging::parse(q)?;
    let limit = params.page.limit;
    let found = state.store.list_users(params.page).await?;
    Ok(paging::envelope(limit, found, |u| serde_json::to_value(UserView::listed(u)).unwrap_or_default()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    email: String,
    /// The first password, for the admin to pass on (8 to 128 characters).
    password: String,
    /// `user` (the default) or `admin`.
    #[serde(default)]
    role: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v2/admin/users",
    tag = "admin",
    request_body = NewUserBody,
    responses(
        (status = 201, description = "Made, whatever the sign-up policy", body = EnvelopeDoc<UserView>),
        (status = 409, description = "Email taken", body = ProblemDoc, content_type = "application/problem+json"),
        AdminErrors,
        InvalidErrors,
        JsonErrors,
    )
)]
pub async fn create_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Admin(admin): Admin,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<Envelope, Error> {
    let role = match body.role.as_deref() {
        None | Some("user") => false,
        Some("admin") => true,
        Some(_) => return Err(Error::field("role", "must be user or admin")),
    };
    let new = NewAccount { email: &body.email, password: &body.password, admin: role };
    let user = admin_service::create_user(&state, &caller, &admin, new).await?;
    Ok(Envelope::with_status(StatusCode::CREATED, UserView::changed(&user)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<String>,
    pub can_use_internal: Option<bool>,
    pub max_concurrent_sessions: Option<i64>,
    /// Bytes; 0: no quota; `null`: back to the configured default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub workspace_quota_bytes: Option<Option<i64>>,
    /// Seconds of a session's lifetime; 0: no limit; `null`: back to `sessions.max_lifetime`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub max_lifetime_secs: Option<Option<i64>>,
}

/// Reads a field that may be `null` as `Some(None)`, so that a PATCH can
/// tell "set to null" from "leave alone" (absent: `None`, by `default`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[utoipa::path(
    patch,
    path = "/api/v2/admin/users/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "user id (uuid)")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "Updated", body = EnvelopeDoc<UserView>),
        (status = 404, description = "No such user", body = ProblemDoc, content_type = "application/problem+json"),
        AdminErrors,
        InvalidErrors,
        JsonErrors,
    )
)]
pub async fn update_user(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
    Admin(admin): Admin,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Result<Envelope, Error> {
    let change = UserChange {
        role: patch.role,
        can_use_internal: patch.can_use_internal,
        max_concurrent_sessions: patch.max_concurrent_sessions,
        workspace_quota_bytes: patch.workspace_quota_bytes,
        max_lifetime_secs: patch.max_lifetime_secs,
    };
    let user = admin_service::change_user(&state, &caller, &admin, &id, change).await?;
    Ok(Envelope::ok(UserView::changed(&user)))
}

#[utoipa::path(
    get,
    path = "/api/v2/admin/sessions",
    tag = "admin",
    params(
        PageParams,
        ("status" = Option<String>, Query, description = "comma list"),
        ("exposure" = Option<String>, Query, description = "external or internal"),
    ),
    responses((status = 200, description = "All sessions, newest first", body = EnvelopeDoc<Vec<Session>>), AdminErrors, PageErrors)
)]
pub async fn list_sessions(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
    _: Admin,
) -> Result<Envelope, Error> {
    let params = paging::parse(q)?;
    let filter = SessionFilter { user_id: None, exposure: params.exposure, statuses: params.statuses };
    paging::sessions(&state, filter, params.page).await
}

#[utoipa::path(
    post,
    path = "/api/v2/admin/sessions/{id}/stop",
    tag = "admin",
    params(("id" = String, Path, description = "session id (uuid)")),
    request_body = EmptyBody,
    responses(
        (status = 202, description = "Stop requested", body = EnvelopeDoc<super::views::Message>),
        (status = 404, description = "No such session", body = ProblemDoc, content_type = "application/problem+json"),
        AdminErrors,
        JsonErrors,
    )
)]
pub async fn stop_session(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
    Admin(admin): Admin,
) -> Result<Envelope, Error> {
    let session = sessions::find(&state, &id).await?;
    let outcome = sessions::request_stop(&state, session, &admin, &caller.request_id).await?;
    Ok(stop_answer(outcome))
}

#[utoipa::path(
    get,
    path = "/api/v2/admin/gpus",
    tag = "admin",
    responses((status = 200, description = "GPUs and their holders", body = EnvelopeDoc<Vec<GpuView>>), AdminErrors)
)]
pub async fn list_gpus(State(state): State<Arc<AppState>>, _: Admin) -> Result<Envelope, Error> {
    let gpus = state.store.list_gpus().await?;
    Ok(Envelope::ok(gpus.into_iter().map(|g| GpuView::from(&usage::live(&state, g))).collect::<Vec<_>>()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuPatch {
    enabled: bool,
}

#[utoipa::path(
    patch,
    path = "/api/v2/admin/gpus/{id}",
    tag = "admin",
    params(("id" = u32, Path, description = "GPU index")),
    request_body = GpuPatch,
    responses(
        (status = 200, description = "Updated", body = EnvelopeDoc<GpuView>),
        (status = 404, description = "No such GPU", body = ProblemDoc, content_type = "application/problem+json"),
        AdminErrors,
        InvalidErrors,
        JsonErrors,
    )
)]
pub async fn update_gpu(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
    Admin(admin): Admin,
    ApiJson(patch): ApiJson<GpuPatch>,
) -> Result<Envelope, Error> {
    let gpu = admin_service::set_gpu_enabled(&state, &caller, &admin, &id, patch.enabled).await?;
    Ok(Envelope::ok(GpuView::from(&usage::live(&state, gpu))))
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    limit: Option<String>,
    cursor: Option<String>,
    event: Option<String>,
    user_id: Option<String>,
    actor_id: Option<String>,
}

/// The event log, newest first, by type (`user.login`, ...), by the user
/// an event is about and by the admin who did it.
#[utoipa::path(
    get,
    path = "/api/v2/admin/events",
    tag = "admin",
    params(
        PageParams,
        ("event" = Option<String>, Query, description = "event name"),
        ("user_id" = Option<String>, Query, description = "uuid: events about this user"),
        ("actor_id" = Option<String>, Query, description = "uuid: events this admin did"),
    ),
    responses((status = 200, description = "The event log, newest first", body = EnvelopeDoc<Vec<StoredEvent>>), AdminErrors, PageErrors)
)]
pub async fn list_events(
    State(state): State<Arc<AppState>>,
    Query(q): Query<EventsQuery>,
    _: Admin,
) -> Result<Envelope, Error> {
    let id = |field: &str, v: Option<String>| {
        v.map(|u| u.parse::<UserId>().map_err(|_| Error::field(field, "must be a uuid"))).transpose()
    };
    let (user_id, actor_id) = (id("user_id", q.user_id)?, id("actor_id", q.actor_id)?);
    let event = admin_service::event_name(q.event.as_deref().unwrap_or_default())?;
    let params = paging::parse(ListQuery { limit: q.limit, cursor: q.cursor, ..ListQuery::default() })?;
    let limit = params.page.limit;
    let found = state.store.list_events(&EventFilter { event, user_id, actor_id }, params.page).await?;
    Ok(paging::envelope(limit, found, |e| serde_json::to_value(e).unwrap_or_default()))
}
