//! Extractors: who is calling ([`Caller`]), the signed-in user
//! ([`SignedIn`]) and the signed-in admin ([`Admin`]). Their rejections
//! are service errors: the API answers them as problem documents, the web
//! UI as a login redirect or an error page (`crate::ui::failure`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use medforge_core::model::User;

use super::context::RequestId;
use super::cookie;
use crate::service::accounts::{self, Caller};
use crate::service::{AppState, Denied, Error};

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        // Behind trusted proxies, `crate::http::forwarded` has put the client here.
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| Error::internal("no client address on the request"))?;
        let user_agent =
            parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(512).collect());
        let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
        Ok(Caller { ip, user_agent, request_id })
    }
}

/// The signed-in user; [`Error::Unauthenticated`] without a live login.
#[derive(Debug, Clone)]
pub struct SignedIn(pub User);

impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let token = cookie::token_from(&parts.headers, &state.config);
        let (user, _) = accounts::signed_in(state, token.as_ref()).await?;
        Ok(Self(user))
    }
}

/// The signed-in admin; [`Error::Forbidden`] for anyone else signed in.
#[derive(Debug, Clone)]
pub struct Admin(pub User);

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let SignedIn(user) = SignedIn::from_request_parts(parts, state).await?;
        if !user.is_admin() {
            return Err(Error::Forbidden(Denied::NotAdmin));
        }
        Ok(Self(user))
    }
}
