//! Credentials for every authenticated HTTP route: which key or token a request presents, the
//! principal it acts for, whether it may do this, and whether it has budget left; or the
//! 401/403/429/503 answer instead.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use super::{error_response, AppState};
use crate::auth::{AuthError, Principal, Scope};
use crate::ratelimit::{whole_seconds, RequestKind};

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

/// Takes one request of `kind` from the caller's budget, or answers 429 with `Retry-After`.
pub(super) async fn rate_limit(
    state: &AppState,
    principal: &Principal,
    kind: RequestKind,
) -> Result<(), Response> {
    let Err(wait) = state.limiter.check(principal, kind).await else {
        return Ok(());
    };
    let seconds = whole_seconds(wait);
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        &format!("rate limit reached for this key; retry in {seconds} s"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    Err(response)
}
