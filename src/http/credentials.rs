//! Credentials for every authenticated HTTP route: which key or token a request presents, the
//! caller it acts for (one extractor), whether it may do this, and whether it has budget left.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use super::audit::RefusedCaller;
use super::AppState;
use crate::access::auth::{refused_caller, Principal, Scope};
use crate::access::ratelimit::RequestKind;
use crate::app::ApiError;

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

/// The caller of an authenticated route: extracting it verifies the credentials in the headers
/// (before any body is read), or answers 401/503 instead, carrying a `RefusedCaller` for the
/// audit trail when a credential was presented.
pub(super) struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(key) = presented_key(&parts.headers) else {
            return Err(ApiError::no_credentials().into_response());
        };
        match state.auth.verify(key).await {
            Ok(principal) => Ok(Caller(principal)),
            Err(error) => {
                let (id, kind) = refused_caller(key, &error);
                let mut response = ApiError::from(error).into_response();
                response.extensions_mut().insert(RefusedCaller { id, kind });
                Err(response)
            }
        }
    }
}

impl Caller {
    /// FORBIDDEN unless the caller holds `scope`.
    pub(super) fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.has(scope) {
            Ok(())
        } else {
            Err(ApiError::missing_scope(scope))
        }
    }

    /// FORBIDDEN unless the caller holds `scope` and may read the whole tenant (a viewer token,
    /// held to one group, may not).
    pub(super) fn require_whole_tenant(&self, scope: Scope) -> Result<(), ApiError> {
        self.require(scope)?;
        if self.0.view.is_some() {
            return Err(ApiError::Forbidden(
                "a viewer token reads its group's events only".into(),
            ));
        }
        Ok(())
    }

    /// Takes `cost` units of `kind` from the caller's budget (a write costs its events). A call
    /// larger than the caller may ever send at once is bad input, since retrying cannot help.
    pub(super) async fn charge(
        &self,
        state: &AppState,
        kind: RequestKind,
        cost: u32,
    ) -> Result<(), ApiError> {
        state
            .limiter
            .check(&self.0, kind, cost)
            .await
            .map_err(ApiError::from)
    }
}
