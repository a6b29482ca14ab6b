//! Problem documents (RFC 9457): the one place a service [`Error`] becomes
//! an HTTP status, a `type`, a `code` and the words docs/api.md gives.
//!
//! A handler's `Err(Error)` becomes a response that carries the error
//! ([`Failed`]); the request context (`crate::http::context`) writes it out
//! as a problem document, unless the web UI's layer made a page of it first.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medforge_core::store::AllocationError;
use serde_json::{Value, json};

use crate::service::{Denied, Error, FieldError, Missing};

const PROBLEM_BASE: &str = "https://medforge.dev/problems/";

/// An error as a problem document, before `instance` and `request_id`.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// Appended to `https://medforge.dev/problems/`.
    pub suffix: String,
    pub code: String,
    pub title: String,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u64>,
}

/// A handler's error, carried in the response to the middleware that
/// writes it (a problem document, or the web UI's page).
#[derive(Debug, Clone)]
pub struct Failed(pub Arc<Error>);

impl Problem {
    /// A plain HTTP error: suffix `http/<status>`, code `"<status>"`.
    pub fn http(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            suffix: format!("http/{}", status.as_u16()),
            code: status.as_u16().to_string(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    fn special(status: StatusCode, suffix: &str, code: &str, title: &str, detail: &str) -> Self {
        Self {
            status,
            suffix: suffix.into(),
            code: code.into(),
            title: title.into(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 429 `rate-limit/exceeded`, with `Retry-After` and what was limited.
    fn rate_limited(retry_after: u64, detail: &str) -> Self {
        let status = StatusCode::TOO_MANY_REQUESTS;
        Self {
            retry_after: Some(retry_after),
            ..Self::special(status, "rate-limit/exceeded", "rate_limit_exceeded", "Too many requests", detail)
        }
    }

    /// 422 `validation/request` with the bad fields.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        let title = "Request validation failed";
        let detail = "The request has invalid fields.";
        Self { errors, ..Self::special(status, "validation/request", "request_validation_failed", title, detail) }
    }

    /// The document, with the request's path and id.
    pub fn body(&self, instance: &str, request_id: &str) -> Value {
        let mut body = json!({
            "type": format!("{PROBLEM_BASE}{}", self.suffix),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "instance": instance,
            "code": self.code,
            "request_id": request_id,
        });
        if !self.errors.is_empty() {
            body["errors"] = serde_json::to_value(&self.errors).unwrap_or_default();
        }
        body
    }

    /// A finished response, for answers made outside the request context
    /// (the session proxy, whose upstream's answers must pass as they are).
    pub fn standalone(&self, instance: &str) -> Response {
        let id = uuid::Uuid::new_v4().to_string();
        let bytes = serde_json::to_vec(&self.body(instance, &id)).unwrap_or_default();
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = self.status;
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Ok(v) = HeaderValue::from_str(&id) {
            response.headers_mut().insert("x-request-id", v);
        }
        response
    }
}

/// docs/api.md's words for what was denied.
pub fn denied_detail(d: Denied) -> &'static str {
    match d {
        Denied::NotAdmin => "Admins only.",
        Denied::NotYourSession => "Session access denied.",
        Denied::NotEntitled => "Internal sessions need the internal entitlement.",
        Denied::WrongPassword => "The current password is wrong.",
        Denied::CrossOrigin => "Cross-origin request refused.",
        Denied::BadCsrfToken => "The form's CSRF token is missing or wrong; reload the page and try again.",
    }
}

/// docs/api.md's words for what is missing.
pub fn missing_detail(m: Missing) -> &'static str {
    match m {
        Missing::Route => "No such route.",
        Missing::Session => "Session not found.",
        Missing::User => "User not found.",
        Missing::Gpu => "GPU not found.",
        Missing::Invite => "No open invite with this id.",
        Missing::SessionAtHost => "No running session at this host.",
        Missing::QueueEntry => "You are not in this queue.",
    }
}

impl From<&Error> for Problem {
    fn from(e: &Error) -> Self {
        match e {
            Error::Unauthenticated => Self::http(StatusCode::UNAUTHORIZED, "Authentication required."),
            Error::InvalidCredentials => Self::http(StatusCode::UNAUTHORIZED, "Invalid email or password."),
            Error::Forbidden(d) => Self::http(StatusCode::FORBIDDEN, denied_detail(*d)),
            Error::NotFound(m) => Self::http(StatusCode::NOT_FOUND, missing_detail(*m)),
            Error::EmailTaken => Self::http(StatusCode::CONFLICT, "Email already registered."),
            Error::Conflict(c) => Self::http(StatusCode::CONFLICT, c.sentence()),
            Error::SignupRefused(r) => Self::http(StatusCode::FORBIDDEN, r.sentence()),
            Error::Allocation(a) => allocation(a),
            Error::Invalid(errors) => Self::validation(errors.clone()),
            Error::RateLimited { retry_after } => {
                Self::rate_limited(*retry_after, "Too many attempts from this address; try again later.")
            }
            Error::AccountLocked { retry_after } => {
                Self::rate_limited(*retry_after, "Too many failed sign-ins for this account; try again later.")
            }
            Error::InvalidCursor => Self::special(
                StatusCode::BAD_REQUEST,
                "pagination/invalid-cursor",
                "invalid_cursor",
                "Invalid cursor",
                "The pagination cursor is not one this server issued.",
            ),
            Error::NotJson => Self::http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "State-changing API requests must be sent as Content-Type: application/json.",
            ),
            Error::StorageUnavailable => {
                Self::http(StatusCode::SERVICE_UNAVAILABLE, "Workspace storage is unavailable; try again later.")
            }
            Error::IsolationDown => Self::http(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sessions cannot start now: their isolation from each other is not in place and could not be \
                 put back. An admin runs `medforge firewall check`, which says why.",
            ),
            Error::Internal(_) => Self::http(StatusCode::INTERNAL_SERVER_ERROR, "An internal error occurred."),
        }
    }
}

fn allocation(a: &AllocationError) -> Problem {
    let text = a.to_string();
    match a {
        AllocationError::NotEntitled => Problem::http(StatusCode::FORBIDDEN, text),
        AllocationError::UserNotFound => Problem::http(StatusCode::UNAUTHORIZED, "Authentication required."),
        AllocationError::PackNotFound => Problem::http(StatusCode::NOT_FOUND, text),
        AllocationError::PackExposureMismatch { .. } => {
            Problem::validation(vec![FieldError { field: "pack_id".into(), message: text }])
        }
        AllocationError::LimitReached { .. }
        | AllocationError::NoGpusAvailable
        | AllocationError::Contention
        | AllocationError::PackDeprecated => Problem::http(StatusCode::CONFLICT, text),
        AllocationError::Store(_) => Problem::http(StatusCode::INTERNAL_SERVER_ERROR, "An internal error occurred."),
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = Problem::from(&self);
        let mut response = problem.status.into_response();
        if let Some(secs) = problem.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(Failed(Arc::new(self)));
        response
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}
