//! Viewer tokens for admins: `createViewerToken` mints a short-lived credential that reads one
//! group's events (the tenant's backend hands it to its customer's browser);
//! `rotateViewerTokenKey` revokes every viewer token of the tenant. Both are recorded in tenant
//! `_traceledger`.

use std::sync::Arc;

use async_graphql::{Context, Enum, ErrorExtensions, Object, SimpleObject};

use super::error::ApiError;
use super::guard::principal;
use super::scalars::DateTime;
use super::Services;
use crate::access::auth::Scope;
use crate::app::ViewerTokenRequest;

/// What a viewer token may do.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewerScope {
    /// Read the group's events: list, by id, search, statistics, live feeds (and export, if
    /// allowed).
    EventsRead,
}

/// A viewer token: pass `token` to the browser, which presents it like any credential
/// (`Authorization: Bearer`, or `connection_init`).
#[derive(SimpleObject)]
pub struct ViewerToken {
    token: String,
    expires_at: DateTime,
    group_id: String,
    actor_id: Option<String>,
    export_allowed: bool,
}

#[derive(Default)]
pub struct ViewerTokenMutation;

#[Object]
impl ViewerTokenMutation {
    /// Mints a viewer token (admin scope) that reads only the events of group `groupId` of the
    /// caller's tenant (and only actor `actorId`'s, if given): never events of another group or
    /// without one, never a write or anything tenant-wide. It lives `ttlSeconds` (at most 86400)
    /// and is revoked early only by `rotateViewerTokenKey`.
    async fn create_viewer_token(
        &self,
        ctx: &Context<'_>,
        group_id: String,
        actor_id: Option<String>,
        #[graphql(default = 3600)] ttl_seconds: i32,
        #[graphql(default_with = "vec![ViewerScope::EventsRead]")] scopes: Vec<ViewerScope>,
        #[graphql(default = false)] export_allowed: bool,
    ) -> async_graphql::Result<ViewerToken> {
        let run = async {
            let caller = principal(ctx, Scope::Admin)?;
            if scopes.is_empty() {
                return Err(ApiError::bad_input("scopes", "name at least one scope"));
            }
            let services = ctx.data_unchecked::<Arc<Services>>();
            let minted = services
                .viewer_tokens
                .mint(
                    caller,
                    ViewerTokenRequest {
                        group_id,
                        actor_id,
                        ttl_seconds: i64::from(ttl_seconds),
                        export_allowed,
                    },
                )
                .await?;
            let grant = minted.grant;
            Ok(ViewerToken {
                token: minted.token,
                expires_at: DateTime(grant.expires_at),
                group_id: grant.scope.group_id,
                actor_id: grant.scope.actor_id,
                export_allowed: grant.export_allowed,
            })
        };
        run.await.map_err(|e| e.extend())
    }

    /// Replaces the tenant's viewer key (admin scope): every viewer token minted before stops
    /// working, on every instance within the key cache's lifetime (`--key-cache-secs`).
    async fn rotate_viewer_token_key(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let run = async {
            let caller = principal(ctx, Scope::Admin)?;
            let services = ctx.data_unchecked::<Arc<Services>>();
            services.viewer_tokens.rotate_key(caller).await?;
            Ok::<_, ApiError>(true)
        };
        run.await.map_err(|e| e.extend())
    }
}
