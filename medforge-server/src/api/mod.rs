//! The HTTP API of API.md: the envelope, problem documents, request ids,
//! the Origin guard, and one module per resource.
//!
//! Handlers return [`Envelope`] or [`ApiError`]; neither knows the request
//! id or path. The [`context`] middleware, which wraps every route, adds
//! them: it wraps `data` in `{data, meta}`, fills `instance` and
//! `request_id` into problem documents, and turns any bare error response
//! (axum's own 404/405/413, say) into a problem document too.

pub mod admin;
pub mod auth;
pub mod gate;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod sessions;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::state::AppState;

pub const API_VERSION: &str = "v2.0";
const PROBLEM_BASE: &str = "https://medforge.dev/problems/";

/// A successful answer: `data` now, `meta` added by the middleware.
#[derive(Debug)]
pub struct Envelope {
    status: StatusCode,
    data: Value,
    page: Option<PageMeta>,
    headers: HeaderMap,
}

#[derive(Debug, Clone)]
pub struct PageMeta {
    pub limit: u32,
    pub next_cursor: Option<String>,
}

impl Envelope {
    pub fn ok(data: impl Serialize) -> Self {
        Self::with_status(StatusCode::OK, data)
    }

    pub fn with_status(status: StatusCode, data: impl Serialize) -> Self {
        // Our own types always serialise; a failure would be a bug, and is
        // answered as an empty object rather than a panic.
        let data = serde_json::to_value(data).unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not serialise a response");
            json!({})
        });
        Self { status, data, page: None, headers: HeaderMap::new() }
    }

    pub fn page(mut self, page: PageMeta) -> Self {
        self.page = Some(page);
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }
}

/// Carried from handler to middleware in the response's extensions.
#[derive(Debug, Clone)]
struct EnvelopeBody {
    data: Value,
    page: Option<PageMeta>,
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.headers).into_response();
        response.extensions_mut().insert(EnvelopeBody { data: self.data, page: self.page });
        response
    }
}

/// One bad field in a 422.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// An error as a problem document (RFC 9457). Boxed: errors travel in
/// `Result`s everywhere, and the document is large.
#[derive(Debug, Clone)]
pub struct ApiError(Box<Problem>);

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

impl ApiError {
    /// The problem document, for callers that show it their own way (the web UI).
    pub fn problem(&self) -> &Problem {
        &self.0
    }

    /// A plain HTTP error: suffix `http/<status>`, code `"<status>"`.
    pub fn http(status: StatusCode, detail: impl Into<String>) -> Self {
        Self(Box::new(Problem {
            status,
            suffix: format!("http/{}", status.as_u16()),
            code: status.as_u16().to_string(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }))
    }

    pub fn unauthorized() -> Self {
        Self::http(StatusCode::UNAUTHORIZED, "Authentication required.")
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::http(StatusCode::FORBIDDEN, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::http(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::http(StatusCode::CONFLICT, detail)
    }

    /// 422 `validation/request` with the bad fields.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self(Box::new(Problem {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            suffix: "validation/request".into(),
            code: "request_validation_failed".into(),
            title: "Request validation failed".into(),
            detail: "The request has invalid fields.".into(),
            errors,
            retry_after: None,
        }))
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError { field: field.into(), message: message.into() }])
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self(Box::new(Problem {
            status: StatusCode::TOO_MANY_REQUESTS,
            suffix: "rate-limit/exceeded".into(),
            code: "rate_limit_exceeded".into(),
            title: "Too many requests".into(),
            detail: "Too many attempts from this address; try again later.".into(),
            errors: Vec::new(),
            retry_after: Some(retry_after),
        }))
    }

    pub fn invalid_cursor() -> Self {
        Self(Box::new(Problem {
            status: StatusCode::BAD_REQUEST,
            suffix: "pagination/invalid-cursor".into(),
            code: "invalid_cursor".into(),
            title: "Invalid cursor".into(),
            detail: "The pagination cursor is not one this server issued.".into(),
            errors: Vec::new(),
            retry_after: None,
        }))
    }

    /// A 500 whose cause is logged here and never sent to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::http(StatusCode::INTERNAL_SERVER_ERROR, "An internal error occurred.")
    }
}

impl From<medforge_core::store::StoreError> for ApiError {
    fn from(e: medforge_core::store::StoreError) -> Self {
        use medforge_core::store::StoreError;
        match e {
            StoreError::EmailTaken => ApiError::conflict("Email already registered."),
            StoreError::InvalidCursor => ApiError::invalid_cursor(),
            StoreError::InvalidPageLimit => ApiError::field("limit", "must be 1 to 500"),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = *self.0;
        let mut response = problem.status.into_response();
        if let Some(secs) = problem.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(problem);
        response
    }
}

pub type ApiResult = Result<Envelope, ApiError>;

/// JSON bodies whose rejections are 422 problem documents, not axum's text.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    return Err(ApiError::http(status, "The request body is too large."));
                }
                Err(ApiError::field("body", rejection.body_text()))
            }
        }
    }
}

/// The request id of the current request, for handlers that log or emit events.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Marks an error answer its handler finished on purpose (an HTML page for
/// a browser): `context` leaves it as it is instead of making it a problem
/// document.
#[derive(Debug, Clone, Copy)]
pub struct Finished;

/// Request ids, the envelope and problem documents (see the module docs).
async fn context(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let path = req.uri().path().to_owned();
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %path);
    let mut response = {
        let _enter = span.enter();
        next.run(req).await
    };
    let status = response.status();
    let body = if let Some(envelope) = response.extensions_mut().remove::<EnvelopeBody>() {
        let page = envelope.page.as_ref();
        Some((
            "application/json",
            json!({
                "data": envelope.data,
                "meta": {
                    "request_id": id,
                    "api_version": API_VERSION,
                    "timestamp": now_rfc3339(),
                    "limit": page.map(|p| p.limit),
                    "next_cursor": page.and_then(|p| p.next_cursor.clone()),
                    "has_more": page.map(|p| p.next_cursor.is_some()),
                },
            }),
        ))
    } else if let Some(problem) = response.extensions_mut().remove::<Problem>() {
        Some(("application/problem+json", problem_body(&problem, &path, &id)))
    } else if (status.is_client_error() || status.is_server_error())
        && !is_json(response.headers())
        && response.extensions().get::<Finished>().is_none()
    {
        // axum's own answers (unknown route, wrong method, body too large).
        let problem = ApiError::http(status, status.canonical_reason().unwrap_or("Error"));
        Some(("application/problem+json", problem_body(&problem.0, &path, &id)))
    } else {
        None
    };
    if let Some((content_type, value)) = body {
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        let (mut parts, _) = response.into_parts();
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        parts.headers.remove(header::CONTENT_LENGTH);
        response = Response::from_parts(parts, Body::from(bytes));
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"))
}

/// A finished problem document, for answers made outside the `context`
/// middleware (the session proxy, whose upstream errors must pass as they are).
pub fn standalone_problem(error: ApiError, instance: &str) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let bytes = serde_json::to_vec(&problem_body(&error.0, instance, &id)).unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = error.0.status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

fn problem_body(p: &Problem, instance: &str, request_id: &str) -> Value {
    let mut body = json!({
        "type": format!("{PROBLEM_BASE}{}", p.suffix),
        "title": p.title,
        "status": p.status.as_u16(),
        "detail": p.detail,
        "instance": instance,
        "code": p.code,
        "request_id": request_id,
    });
    if !p.errors.is_empty() {
        body["errors"] = serde_json::to_value(&p.errors).unwrap_or_default();
    }
    body
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The Origin rule of API.md on every state-changing request.
async fn origin_guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let changes_state = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    if changes_state {
        let origin = req.headers().get(header::ORIGIN).map(|v| v.to_str().unwrap_or("\u{0}"));
        if !medforge_core::auth::origin_allowed(origin, &state.config.base_domain) {
            return ApiError::forbidden("Cross-origin request refused.").into_response();
        }
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::not_found("No such route.")
}

pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.config.limits.max_body_bytes;
    Router::new()
        .merge(auth::routes())
        .merge(admin::routes())
        .merge(sessions::routes())
        .merge(gate::routes())
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(openapi::routes())
        .merge(crate::ui::routes())
        .route_layer(middleware::from_fn(metrics::track_http))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), origin_guard))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        .layer(middleware::from_fn(context))
        // Outermost: session hosts never reach the layers above (no body
        // limit, no rewriting of an upstream's errors).
        .layer(middleware::from_fn_with_state(state.clone(), crate::proxy::dispatch))
        // Before anything reads the client's address.
        .layer(middleware::from_fn_with_state(state.clone(), crate::forwarded::layer))
        .with_state(state)
}
