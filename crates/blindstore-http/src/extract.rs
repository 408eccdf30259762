//! Extractors several route modules share.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use blindstore_web::admin::{admits, bearer, Access};

use crate::{ApiError, AppState};

/// Proof that the request carries an admin credential (the cluster's once rotated, else this
/// node's own token); handlers take it as an argument.
pub(crate) struct Admin;

/// Proof that the request may read metrics: an admin credential or the metrics one.
pub(crate) struct MetricsReader;

fn check(parts: &Parts, state: &AppState, access: Access) -> Result<(), ApiError> {
    let presented = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
    let cluster = state.node.credentials().current();
    if admits(cluster.as_ref(), &state.admin_token, presented, access) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check(parts, state, Access::Admin).map(|()| Admin)
    }
}

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check(parts, state, Access::Metrics).map(|()| MetricsReader)
    }
}
