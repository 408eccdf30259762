//! The one place where errors become HTTP responses.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use blindstore_cluster::NodeError;
use blindstore_types::api::{ErrorBody, ErrorCode};
use blindstore_web::{error_response_with, OUTCOME_UNKNOWN, UNAVAILABLE};

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
    /// No route has this path.
    NotFound,
    /// The route exists, but not with this method.
    MethodNotAllowed,
    /// The server is at its limit of requests in flight (or the request took too long).
    Busy(&'static str),
    /// Over a rate limit; try again after this long.
    RateLimited(std::time::Duration),
    /// The zone has no reverse-proxy route of this name.
    UnknownProxy(String),
    /// A proxied upstream failed (502) or was too slow (504); the message says which.
    Upstream {
        timeout: bool,
        message: String,
    },
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

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl ApiError {
    /// The code and the message a client sees, plus a conflict's details.
    fn parts(self) -> (ErrorCode, String, Option<Conflict>) {
        use ErrorCode as C;
        match self {
            ApiError::BadRequest(m) => (C::BadRequest, m, None),
            ApiError::TooLarge(m) => (C::PayloadTooLarge, m, None),
            ApiError::Unauthorized => (
                C::Unauthorized,
                "missing or invalid admin token (Authorization: Bearer <token>; once `blindstore cluster admin-token rotate` has run, only the cluster's admin token)".into(),
                None,
            ),
            ApiError::NotFound => (C::NotFound, "no such route".into(), None),
            ApiError::MethodNotAllowed => (
                C::MethodNotAllowed,
                "this route does not take that method".into(),
                None,
            ),
            ApiError::Busy(why) => (C::Unavailable, why.into(), None),
            ApiError::UnknownProxy(name) => (
                C::UnknownProxy,
                format!("the zone has no proxy route {name:?}"),
                None,
            ),
            ApiError::Upstream { timeout, message } => (
                if timeout {
                    C::GatewayTimeout
                } else {
                    C::BadGateway
                },
                message,
                None,
            ),
            ApiError::RateLimited(wait) => (
                C::RateLimited,
                format!("too many attempts; retry in {} s", retry_after_secs(wait)),
                None,
            ),
            ApiError::Node(e) => {
                let message = e.to_string();
                match e {
                    NodeError::UnknownZone => (C::UnknownZone, message, None),
                    NodeError::UnknownChain => (C::UnknownChain, message, None),
                    NodeError::UnknownChunk => (C::UnknownChunk, message, None),
                    NodeError::BadRequest(_) => (C::BadRequest, message, None),
                    NodeError::BadPublicKey => (C::BadPublicKey, message, None),
                    NodeError::BadSignature => (C::BadSignature, message, None),
                    NodeError::HashMismatch { .. } => (C::HashMismatch, message, None),
                    NodeError::MissingChunks(_) => (C::MissingChunk, message, None),
                    NodeError::IndexConflict { length, head } => (
                        C::IndexConflict,
                        message,
                        Some(Conflict::Chain(length, head)),
                    ),
                    NodeError::EnvelopeConflict { version } => (
                        C::EnvelopeConflict,
                        message,
                        Some(Conflict::Version(version)),
                    ),
                    NodeError::InvalidLogin => (C::InvalidLogin, message, None),
                    NodeError::InvalidSession => (C::InvalidSession, message, None),
                    NodeError::StepUpRequired { .. } => (C::StepUpRequired, message, None),
                    NodeError::RegistrationClosed => (C::RegistrationClosed, message, None),
                    NodeError::Removed(_) => (C::NodeRemoved, message, None),
                    NodeError::InvalidInvite => (C::InvalidInvite, message, None),
                    NodeError::AccountExists => (C::AccountExists, message, None),
                    NodeError::UnknownAccount => (C::UnknownAccount, message, None),
                    NodeError::UnknownEnvelope => (C::UnknownEnvelope, message, None),
                    NodeError::UnknownPasskey => (C::UnknownPasskey, message, None),
                    NodeError::PasskeyExists => (C::PasskeyExists, message, None),
                    NodeError::PasskeysOff => (C::PasskeysOff, message, None),
                    NodeError::TooLarge { .. } => (C::PayloadTooLarge, message, None),
                    NodeError::QuotaExceeded(_) => (C::QuotaExceeded, message, None),
                    NodeError::InsufficientStorage(_) => (C::InsufficientStorage, message, None),
                    // Refusals whose reason the caller needs: said, not hidden behind "unavailable".
                    NodeError::NeedsClusterVersion { .. }
                    | NodeError::RotatedMeanwhile(_)
                    | NodeError::NotLeader(_) => {
                        (C::Unavailable, message, None)
                    }
                    NodeError::Unavailable(_) | NodeError::CorruptChunk(_) => {
                        tracing::warn!(error = %message, "answered 503 unavailable");
                        (C::Unavailable, UNAVAILABLE.into(), None)
                    }
                    NodeError::OutcomeUnknown(_) => {
                        tracing::warn!(error = %message, "answered 503 outcome_unknown");
                        (C::OutcomeUnknown, OUTCOME_UNKNOWN.into(), None)
                    }
                    NodeError::Internal(_) | NodeError::Storage(_) | NodeError::Identity(_) => {
                        tracing::error!(error = %message, "internal error");
                        (
                            C::Internal,
                            "internal error; see the server log".into(),
                            None,
                        )
                    }
                }
            }
        }
    }
}

/// What a 409 tells besides its message.
enum Conflict {
    /// A chain's length and head.
    Chain(u64, blindstore_types::Hash32),
    /// An envelope's current version.
    Version(u64),
}

/// `Retry-After` in whole seconds, rounded up.
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            ApiError::RateLimited(wait) => Some(retry_after_secs(*wait)),
            _ => None,
        };
        let (code, message, conflict) = self.parts();
        let mut body = ErrorBody::new(code, message);
        match conflict {
            Some(Conflict::Chain(length, head)) => {
                body.error.length = Some(length);
                body.error.head = Some(head);
                body.length = Some(length);
                body.head = Some(head);
            }
            Some(Conflict::Version(version)) => body.error.version = Some(version),
            None => {}
        }
        let mut response = error_response_with(body);
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
