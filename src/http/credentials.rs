//! Credentials for every authenticated HTTP route: which key or token a request presents, the
//! principal it acts for, whether it may do this, and whether it has budget left; or the
//! 401/403/429/503 answer instead.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use super::audit::RefusedCaller;
use super::{api_error_response, error_response, graphql_error_response, AppState};
use crate::auth::{refused_caller, AuthError, Principal, Scope};
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

/// The principal for the credentials `headers` present, or the answer to send instead (carrying
/// a `RefusedCaller` for the audit trail when a credential was presented).
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
    let error = match state.auth.verify(key).await {
        Ok(principal) => return Ok(principal),
        Err(error) => error,
    };
    let mut response = match &error {
        AuthError::Store(e) => {
            tracing::warn!(error = %e, "cannot verify credentials");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "credentials cannot be verified right now; retry shortly",
            )
        }
        AuthError::Unauthenticated | AuthError::Revoked(_) => error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "unknown or revoked API key",
        ),
        AuthError::InvalidToken(_) | AuthError::Expired { .. } => error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            &error.to_string(),
        ),
    };
    let (id, kind) = refused_caller(key, &error);
    response.extensions_mut().insert(RefusedCaller { id, kind });
    Err(response)
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
