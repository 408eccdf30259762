//! The one place where errors become HTTP responses.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use blindstore_cluster::NodeError;
use blindstore_types::api::{ErrorBody, ErrorDetail};
use blindstore_types::Hash32;

/// An error as the API reports it: status, stable code, message. Internal details are logged,
/// never returned.
#[derive(Debug)]
pub enum ApiError {
    Node(NodeError),
    /// Malformed input found by the HTTP layer (path, query, JSON).
    BadRequest(String),
    /// A request body above the size limit.
    TooLarge(String),
    /// Missing or wrong admin token.
    Unauthorized,
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        ApiError::Node(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge("request body is too large".into()),
            _ => ApiError::BadRequest(r.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, conflict): (StatusCode, &str, String, Option<(u64, Hash32)>) =
            match self {
                ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m, None),
                ApiError::TooLarge(m) => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m, None)
                }
                ApiError::Unauthorized => (
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing or invalid admin token (Authorization: Bearer <token>)".into(),
                    None,
                ),
                ApiError::Node(e) => {
                    let message = e.to_string();
                    match e {
                        NodeError::UnknownZone => {
                            (StatusCode::NOT_FOUND, "unknown_zone", message, None)
                        }
                        NodeError::UnknownChain => {
                            (StatusCode::NOT_FOUND, "unknown_chain", message, None)
                        }
                        NodeError::UnknownChunk => {
                            (StatusCode::NOT_FOUND, "unknown_chunk", message, None)
                        }
                        NodeError::BadRequest(_) => {
                            (StatusCode::BAD_REQUEST, "bad_request", message, None)
                        }
                        NodeError::BadPublicKey => {
                            (StatusCode::BAD_REQUEST, "bad_public_key", message, None)
                        }
                        NodeError::BadSignature => {
                            (StatusCode::BAD_REQUEST, "bad_signature", message, None)
                        }
                        NodeError::HashMismatch { .. } => {
                            (StatusCode::BAD_REQUEST, "hash_mismatch", message, None)
                        }
                        NodeError::MissingChunks(_) => {
                            (StatusCode::BAD_REQUEST, "missing_chunk", message, None)
                        }
                        NodeError::IndexConflict { length, head } => (
                            StatusCode::CONFLICT,
                            "index_conflict",
                            message,
                            Some((length, head)),
                        ),
                        NodeError::TooLarge { .. } => (
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "payload_too_large",
                            message,
                            None,
                        ),
                        NodeError::Unavailable(_) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "unavailable",
                            message,
                            None,
                        ),
                        NodeError::OutcomeUnknown(_) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "outcome_unknown",
                            message,
                            None,
                        ),
                        NodeError::CorruptChunk(_) => {
                            tracing::error!(error = %message, "serving error");
                            (
                                StatusCode::SERVICE_UNAVAILABLE,
                                "unavailable",
                                message,
                                None,
                            )
                        }
                        NodeError::Internal(_) | NodeError::Storage(_) => {
                            tracing::error!(error = %message, "internal error");
                            (
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "internal",
                                "internal error; see the server log".into(),
                                None,
                            )
                        }
                    }
                }
            };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message,
                length: conflict.map(|c| c.0),
                head: conflict.map(|c| c.1),
            },
            length: conflict.map(|c| c.0),
            head: conflict.map(|c| c.1),
        };
        (status, Json(body)).into_response()
    }
}
