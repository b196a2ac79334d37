//! Credentials for every authenticated HTTP route: which key or token a request presents, the
//! principal it acts for, whether it may do this, and whether it has budget left; or the
//! 401/403/429/503 answer instead.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use super::{api_error_response, error_response, graphql_error_response, AppState};
use crate::auth::{AuthError, Principal, Scope};
use crate::graphql::ApiError;
use crate::ratelimit::{Limited, RequestKind};

/// `Authorization: Bearer <key or JWT>` or `X-API-Key: <key>`.
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

/// The principal for the credentials `headers` present, or the answer to send instead.
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
        Err(e @ AuthError::InvalidToken(_)) => Err(error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            &e.to_string(),
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

/// The 403 FORBIDDEN answer, unless the principal holds `scope`.
pub(super) fn forbidden_unless(principal: &Principal, scope: Scope) -> Option<Response> {
    if principal.has(scope) {
        return None;
    }
    Some(error_response(
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        &format!("this needs a key with the {} scope", scope.as_str()),
    ))
}

/// Takes `cost` units of `kind` from the caller's budget (a write costs its events), or answers
/// 429 with `Retry-After`; a call larger than the caller may ever send at once gets the GraphQL
/// error BAD_USER_INPUT instead, since retrying it cannot help.
pub(super) async fn rate_limit(
    state: &AppState,
    principal: &Principal,
    kind: RequestKind,
    cost: u32,
) -> Result<(), Response> {
    match state.limiter.check(principal, kind, cost).await {
        Ok(()) => Ok(()),
        Err(limited @ Limited::Wait(_)) => Err(api_error_response(&ApiError::from(limited))),
        Err(limited @ Limited::TooLarge { .. }) => {
            Err(graphql_error_response(&ApiError::from(limited)))
        }
    }
}
