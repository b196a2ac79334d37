//! Who may call what: every resolver names the scope it needs and gets the caller's principal
//! (and so its tenant) only if the caller holds that scope. A viewer token reads its group's
//! events through [`reader`] and [`event_reader`], which hold every read to its view; what is
//! tenant-wide ([`tenant`]: the ledger, the pipeline's figures) it may not read at all.

use async_graphql::Context;

use super::error::ApiError;
use crate::access::auth::{Principal, Scope};
use crate::domain::{EventFilter, Tenant, ViewScope};

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

/// The tenant every read or write of this request is scoped to, if the caller holds `scope`
/// and is not held to a viewer's group.
pub(super) fn tenant(ctx: &Context<'_>, scope: Scope) -> Result<Tenant, ApiError> {
    let principal = principal(ctx, scope)?;
    if principal.view.is_some() {
        return Err(ApiError::Forbidden(
            "a viewer token reads its group's events only".into(),
        ));
    }
    Ok(principal.tenant.clone())
}

/// A read of the caller's events: its tenant and `filter` held to what the caller may see.
pub(super) fn reader(
    ctx: &Context<'_>,
    filter: EventFilter,
) -> Result<(Tenant, EventFilter), ApiError> {
    let principal = principal(ctx, Scope::EventsRead)?;
    Ok((principal.tenant.clone(), principal.held_to_view(filter)))
}

/// A read of one event by id: the caller's tenant, and the view the event must be in.
pub(super) fn event_reader<'a>(
    ctx: &Context<'a>,
) -> Result<(Tenant, Option<&'a ViewScope>), ApiError> {
    let principal = principal(ctx, Scope::EventsRead)?;
    Ok((
        principal.tenant.clone(),
        principal.view.as_ref().map(|v| &v.scope),
    ))
}
