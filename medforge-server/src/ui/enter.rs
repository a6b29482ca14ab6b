//! `GET /sessions/enter?host=<session host>&next=<path>`: step 2 of the
//! handshake (`crate::service::passes`). A session host sends a browser
//! without a pass here; signed in and allowed in by the gate, it goes
//! back with a one-time code. Signed out, the failure layer sends it to
//! the sign-in page first, and back here after.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use medforge_core::host::{Host, SessionHost};
use serde::Deserialize;

use crate::http::cookie;
use crate::http::host::port_suffix;
use crate::http::refusal::{self, Unauthenticated};
use crate::http::session_host::{handshake_redirect, local_path, redeem_url};
use crate::service::accounts::Caller;
use crate::service::{AppState, Error, Missing, accounts, gatekeeper};

#[derive(Debug, Default, Deserialize)]
pub struct EnterQuery {
    #[serde(default)]
    host: String,
    #[serde(default)]
    next: String,
}

pub async fn enter(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<EnterQuery>,
) -> Result<Response, Error> {
    let token = cookie::token_from(&headers, &state.config);
    let (user, login) = accounts::signed_in(&state, token.as_ref()).await?;
    let session_host = q
        .host
        .parse::<Host>()
        .ok()
        .and_then(|h| SessionHost::parse(&h, state.config.sessions_domain()))
        .ok_or(Error::NotFound(Missing::SessionAtHost))?;
    // Back on the port this request came in on: the session hosts share
    // the UI's front.
    let port = port_suffix(&headers);
    let code = match gatekeeper::admit(&state, &caller.events(), &user, &login, &session_host).await? {
        Ok(code) => code,
        // The session host's own refusal page (or problem), whose "sign in
        // as someone else" comes back here.
        Err(refusal) => {
            let here = format!("{}://{}{port}{}", state.config.scheme(), state.config.base_domain, uri);
            return Ok(refusal::refuse(&state.config, &headers, &here, uri.path(), refusal, Unauthenticated::Page));
        }
    };
    let to = redeem_url(&state.config, &session_host, &port, &code, &local_path(&q.next));
    Ok(handshake_redirect(StatusCode::SEE_OTHER, &to))
}
