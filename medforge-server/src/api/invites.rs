//! `/api/v2/admin/invites`: an admin's sign-up links (docs/security.md,
//! "Who may sign up"). Every route takes the [`Admin`] extractor.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get};
use serde::Deserialize;

use super::json::ApiJson;
use super::paging::{self, ListQuery};
use super::schemas::{
    AdminErrors, EmptyBody, EnvelopeDoc, InvalidErrors, JsonErrors, PageErrors, PageParams, ProblemDoc,
};
use super::views::{InviteView, Message};
use crate::http::envelope::Envelope;
use crate::http::extract::Admin;
use crate::http::host::ui_base;
use crate::service::accounts::Caller;
use crate::service::{AppState, Error, invites};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v2/admin/invites", get(list_invites).post(create_invite))
        .route("/api/v2/admin/invites/{id}", delete(revoke_invite))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInviteBody {
    /// The address the invite is for: the account it makes has this email.
    email: String,
}

#[utoipa::path(
    post,
    path = "/api/v2/admin/invites",
    tag = "admin",
    request_body = NewInviteBody,
    responses(
        (status = 201, description = "Invited; `link` is the one-time sign-up link, shown only here", body = EnvelopeDoc<InviteView>),
        (status = 409, description = "The address has an account", body = ProblemDoc, content_type = "application/problem+json"),
        AdminErrors,
        InvalidErrors,
        JsonErrors,
    )
)]
pub async fn create_invite(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    caller: Caller,
    Admin(admin): Admin,
    ApiJson(body): ApiJson<NewInviteBody>,
) -> Result<Envelope, Error> {
    let issued = invites::create(&state, &caller, &admin, &body.email).await?;
    let link = invites::link(&ui_base(&state.config, &headers), &issued.token);
    Ok(Envelope::with_status(StatusCode::CREATED, InviteView::new(&issued.invite, Some(link))))
}

#[utoipa::path(
    get,
    path = "/api/v2/admin/invites",
    tag = "admin",
    params(PageParams),
    responses((status = 200, description = "Invites, newest first, in every state", body = EnvelopeDoc<Vec<InviteView>>), AdminErrors, PageErrors)
)]
pub async fn list_invites(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
    _: Admin,
) -> Result<Envelope, Error> {
    let params = paging::parse(q)?;
    let limit = params.page.limit;
    let found = invites::list(&state, params.page).await?;
    Ok(paging::envelope(limit, found, |i| serde_json::to_value(InviteView::new(i, None)).unwrap_or_default()))
}

#[utoipa::path(
    delete,
    path = "/api/v2/admin/invites/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "invite id (uuid)")),
    request_body = EmptyBody,
    responses(
        (status = 200, description = "Revoked: the link opens nothing", body = EnvelopeDoc<Message>),
        (status = 404, description = "No open invite with this id", body = ProblemDoc, content_type = "application/problem+json"),
        AdminErrors,
        JsonErrors,
    )
)]
pub async fn revoke_invite(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
    Admin(admin): Admin,
) -> Result<Envelope, Error> {
    invites::revoke(&state, &caller, &admin, &id).await?;
    Ok(Envelope::ok(Message { message: "Invite revoked." }))
}
