//! JSON request bodies whose rejections are problem documents, not axum's text.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use crate::http::problem::Problem;
use crate::service::FieldError;

#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(Problem::http(StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large."))
            }
            Err(rejection) => {
                Err(Problem::validation(vec![FieldError { field: "body".into(), message: rejection.body_text() }]))
            }
        }
    }
}

/// A body that may be left out: empty (or only whitespace) is `T`'s
/// default, anything else must be exactly its documented fields.
pub fn optional_body<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, crate::service::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| crate::service::Error::field("body", e.to_string()))
}

/// A body's `pack_id`, when it names one.
pub fn pack_id(text: Option<String>) -> Result<Option<medforge_core::model::PackId>, crate::service::Error> {
    text.map(|p| p.parse().map_err(|_| crate::service::Error::field("pack_id", "must be a uuid"))).transpose()
}
