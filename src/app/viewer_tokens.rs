//! Viewer tokens for a tenant's own customers (see `access::viewer`): an admin mints one for a
//! group (and optionally one actor of it), and rotates the tenant's viewer key to revoke them
//! all. Both leave an audit event in tenant `_traceledger`.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use super::own_trail::{Actor, OwnTrail};
use super::ApiError;
use crate::access::auth::Principal;
use crate::access::viewer::{self, ViewerGrant, ViewerKey, MAX_TTL_SECONDS};
use crate::domain::{check_identifier, ViewScope};
use crate::store::Store;

/// What the minter asks for.
pub struct ViewerTokenRequest {
    pub group_id: String,
    pub actor_id: Option<String>,
    pub ttl_seconds: i64,
    pub export_allowed: bool,
}

/// A new token, handed to the minter's backend to pass to one browser.
pub struct MintedViewerToken {
    pub token: String,
    pub grant: ViewerGrant,
}

#[derive(Clone)]
pub struct ViewerTokens {
    store: Store,
    trail: OwnTrail,
}

impl ViewerTokens {
    pub fn new(store: Store, trail: OwnTrail) -> Self {
        Self { store, trail }
    }

    /// Mints a token of the caller's tenant (the caller has been checked to be its admin).
    pub async fn mint(
        &self,
        caller: &Principal,
        request: ViewerTokenRequest,
    ) -> Result<MintedViewerToken, ApiError> {
        if caller.view.is_some() {
            return Err(ApiError::Forbidden(
                "a viewer token cannot mint viewer tokens".into(),
            ));
        }
        check_id("groupId", &request.group_id)?;
        if let Some(actor) = &request.actor_id {
            check_id("actorId", actor)?;
        }
        if !(1..=MAX_TTL_SECONDS).contains(&request.ttl_seconds) {
            return Err(ApiError::bad_input(
                "ttlSeconds",
                format!("must be between 1 and {MAX_TTL_SECONDS}"),
            ));
        }
        let key = self.key_of(caller).await?;
        // Whole seconds, as the token carries them.
        let expires_at = DateTime::from_timestamp(
            (Utc::now() + Duration::seconds(request.ttl_seconds)).timestamp(),
            0,
        )
        .ok_or(ApiError::Internal)?;
        let grant = ViewerGrant {
            token_id: Uuid::now_v7(),
            tenant: caller.tenant.clone(),
            scope: ViewScope {
                group_id: request.group_id,
                actor_id: request.actor_id,
            },
            export_allowed: request.export_allowed,
            expires_at,
        };
        let token = viewer::mint(&key, &grant);
        self.trail
            .group_action(
                Actor::Caller(caller),
                Some(&grant.scope.group_id),
                "viewer_token.create",
                Some(("viewer_token", &grant.token_id.to_string())),
                format!(
                    "viewer token minted for group {:?} of tenant {}",
                    grant.scope.group_id, grant.tenant
                ),
                json!({
                    "tenant": grant.tenant,
                    "groupId": grant.scope.group_id,
                    "actorId": grant.scope.actor_id,
                    "expiresAt": grant.expires_at,
                    "exportAllowed": grant.export_allowed,
                }),
            )
            .await?;
        Ok(MintedViewerToken { token, grant })
    }

    /// Replaces the caller's tenant's viewer key: every viewer token minted before stops working
    /// (on every instance within the key cache's lifetime).
    pub async fn rotate_key(&self, caller: &Principal) -> Result<(), ApiError> {
        if caller.view.is_some() {
            return Err(ApiError::Forbidden(
                "a viewer token cannot rotate the viewer key".into(),
            ));
        }
        self.store
            .rotate_viewer_key(&caller.tenant, &viewer::new_viewer_key())
            .await?;
        self.trail
            .action(
                Actor::Caller(caller),
                "viewer_token.key_rotate",
                None,
                format!(
                    "viewer key of tenant {} rotated: earlier viewer tokens are revoked",
                    caller.tenant
                ),
                json!({ "tenant": caller.tenant }),
            )
            .await?;
        Ok(())
    }

    async fn key_of(&self, caller: &Principal) -> Result<ViewerKey, ApiError> {
        let stored = self
            .store
            .viewer_key_or_insert(&caller.tenant, &viewer::new_viewer_key())
            .await?;
        ViewerKey::try_from(stored.as_slice()).map_err(|_| ApiError::Internal)
    }
}

fn check_id(field: &str, value: &str) -> Result<(), ApiError> {
    check_identifier(field, value).map_err(|e| ApiError::bad_input(e.field, e.message))
}
