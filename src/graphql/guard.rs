//! Who may call what: every resolver names the scope it needs and gets the caller's principal
//! (and so its tenant) only if the caller holds that scope.

use async_graphql::Context;

use super::error::ApiError;
use crate::access::auth::{Principal, Scope};
use crate::domain::Tenant;

/// The caller, if it holds `scope`; FORBIDDEN naming the missing scope otherwise.
pub(super) fn principal<'a>(ctx: &Context<'a>, scope: Scope) -> Result<&'a Principal, ApiError> {
    let principal = ctx
        .data_opt::<Principal>()
        .ok_or_else(ApiError::no_credentials)?;
    if !principal.has(scope) {
        return Err(ApiError::missing_scope(scope));
    }
    Ok(principal)
}

/// The tenant every read or write of this request is scoped to, if the caller holds `scope`.
pub(super) fn tenant(ctx: &Context<'_>, scope: Scope) -> Result<Tenant, ApiError> {
    principal(ctx, scope).map(|p| p.tenant.clone())
}
