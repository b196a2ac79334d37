//! Credentials for every authenticated HTTP route: which key a request presents, and the
//! principal it acts for, or the 401/503 answer when there is none.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use super::{error_response, AppState};
use crate::auth::{AuthError, Principal};

/// `Authorization: Bearer <key>` or `X-API-Key: <key>`.
pub(super) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return value.strip_prefix("Bearer ").map(str::trim);
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The principal for the key `headers` present, or the answer to send instead.
pub(super) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, Response> {
    let Some(key) = presented_key(headers) else {
        return Err(error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "missing API key: send \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\"",
        ));
    };
    match state.auth.verify(key).await {
        Ok(principal) => Ok(principal),
        Err(AuthError::Unauthenticated) => Err(error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "unknown or revoked API key",
        )),
        Err(AuthError::Store(e)) => {
            tracing::warn!(error = %e, "cannot verify credentials");
            Err(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "credentials cannot be verified right now; retry shortly",
            ))
        }
    }
}
