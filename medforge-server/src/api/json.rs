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
