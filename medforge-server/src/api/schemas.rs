//! Schemas of the OpenAPI document that no handler builds as such: the
//! envelope and the problem document, and the error responses most routes
//! share (written once here, named in each route's `responses`).

use utoipa::{IntoParams, IntoResponses, ToSchema};

/// Every success body: `data` (of the type each route names), and `meta`
/// as docs/api.md describes it.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // a schema, never built
pub struct EnvelopeDoc<T> {
    data: T,
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

/// What every route that needs a login may answer.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)]
pub enum SignedInErrors {
    #[response(status = 401, description = "Not signed in", content_type = "application/problem+json")]
    Unauthorized(#[to_schema] ProblemDoc),
}

/// What every admin route may answer.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)]
pub enum AdminErrors {
    #[response(status = 401, description = "Not signed in", content_type = "application/problem+json")]
    Unauthorized(#[to_schema] ProblemDoc),
    #[response(status = 403, description = "Admins only", content_type = "application/problem+json")]
    Forbidden(#[to_schema] ProblemDoc),
}

/// What every state-changing route may answer when the request is not JSON
/// (docs/api.md, "JSON only").
#[derive(Debug, IntoResponses)]
#[allow(dead_code)]
pub enum JsonErrors {
    #[response(
        status = 415,
        description = "Not Content-Type: application/json",
        content_type = "application/problem+json"
    )]
    NotJson(#[to_schema] ProblemDoc),
}

/// The body of an action that takes none: `{}` (it is ignored), sent as
/// `Content-Type: application/json` like every state-changing request.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct EmptyBody {}

/// What a route with a body or a query may answer for bad fields.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)]
pub enum InvalidErrors {
    #[response(status = 422, description = "Invalid fields", content_type = "application/problem+json")]
    Unprocessable(#[to_schema] ProblemDoc),
}

/// What a paged listing may answer for a bad cursor.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)]
pub enum PageErrors {
    #[response(status = 400, description = "Invalid cursor", content_type = "application/problem+json")]
    BadCursor(#[to_schema] ProblemDoc),
    #[response(status = 422, description = "Invalid query", content_type = "application/problem+json")]
    Unprocessable(#[to_schema] ProblemDoc),
}

/// What a route on one session (`/{exposure}/sessions/{id}/...`) may answer.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)]
pub enum SessionErrors {
    #[response(status = 401, description = "Not signed in", content_type = "application/problem+json")]
    Unauthorized(#[to_schema] ProblemDoc),
    #[response(status = 403, description = "Not yours", content_type = "application/problem+json")]
    Forbidden(#[to_schema] ProblemDoc),
    #[response(status = 404, description = "No such session", content_type = "application/problem+json")]
    NotFound(#[to_schema] ProblemDoc),
}

/// The page of a listing.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// 1..500, default 50
    limit: Option<u32>,
    /// next_cursor of the previous page
    cursor: Option<String>,
}
