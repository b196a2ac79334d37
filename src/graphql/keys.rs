//! Key management for admins: `apiKeys`, `createApiKey`, `revokeApiKey`. An admin manages the
//! keys of its own tenant only; managing keys across tenants is the operator's CLI
//! (`traceledger keys list|create|revoke`), which needs database access. Every change is recorded
//! in tenant `_traceledger`.

use std::sync::Arc;

use async_graphql::{Context, Enum, ErrorExtensions, Object, SimpleObject, ID};
use uuid::Uuid;

use super::error::ApiError;
use super::guard::principal;
use super::scalars::DateTime;
use super::Services;
use crate::access::auth::Scope;
use crate::app::{Actor, KeyRequest, Rates};
use crate::store::ApiKeyRecord;

/// What a key may do.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "Scope")]
pub enum KeyScope {
    /// Record events.
    EventsWrite,
    /// Query, search, subscribe and export.
    EventsRead,
    /// Manage keys and dead letters.
    Admin,
}

/// An API key, without its secret.
#[derive(SimpleObject)]
pub struct ApiKey {
    id: ID,
    tenant: String,
    name: String,
    /// The key's first characters, to tell keys apart.
    prefix: String,
    /// Scope names as stored: `events:write`, `events:read`, `admin`.
    scopes: Vec<String>,
    created_at: DateTime,
    /// Null while the key works.
    revoked_at: Option<DateTime>,
    /// The key's own write limit in requests per second; null: the deployment's default.
    write_rate_per_sec: Option<i32>,
    /// The key's own read limit in requests per second; null: the deployment's default.
    read_rate_per_sec: Option<i32>,
}

impl From<ApiKeyRecord> for ApiKey {
    fn from(k: ApiKeyRecord) -> Self {
        Self {
            id: ID(k.id.to_string()),
            tenant: k.tenant,
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            created_at: DateTime(k.created_at),
            revoked_at: k.revoked_at.map(DateTime),
            write_rate_per_sec: k.write_rate_per_sec,
            read_rate_per_sec: k.read_rate_per_sec,
        }
    }
}

/// A new key and its secret, which is shown this once and never again.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    key: ApiKey,
    secret: String,
}

#[derive(Default)]
pub struct KeysQuery;

#[Object]
impl KeysQuery {
    /// The keys of the caller's tenant, oldest first (admin scope).
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false)] include_revoked: bool,
    ) -> async_graphql::Result<Vec<ApiKey>> {
        let list = async {
            let principal = principal(ctx, Scope::Admin)?;
            let services = ctx.data_unchecked::<Arc<Services>>();
            let keys = services
                .keys
                .list(Some(&principal.tenant), include_revoked)
                .await?;
            Ok(keys.into_iter().map(ApiKey::from).collect())
        };
        list.await.map_err(|e: ApiError| e.extend())
    }
}

#[derive(Default)]
pub struct KeysMutation;

#[Object]
impl KeysMutation {
    /// Mints a key for the caller's tenant (admin scope). Scopes default to EVENTS_WRITE and
    /// EVENTS_READ.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        name: String,
        scopes: Option<Vec<KeyScope>>,
        write_rate_per_sec: Option<i32>,
        read_rate_per_sec: Option<i32>,
    ) -> async_graphql::Result<CreatedApiKey> {
        let create = async {
            let principal = principal(ctx, Scope::Admin)?;
            let services = ctx.data_unchecked::<Arc<Services>>();
            let request = KeyRequest {
                tenant: principal.tenant.to_string(),
                name,
                scopes: scopes.map(|scopes| scopes.into_iter().map(Into::into).collect()),
                rates: Rates {
                    write_per_sec: write_rate_per_sec,
                    read_per_sec: read_rate_per_sec,
                },
            };
            let created = services
                .keys
                .create(Actor::Caller(principal), request)
                .await?;
            Ok(CreatedApiKey {
                key: created.key.into(),
                secret: created.secret,
            })
        };
        create.await.map_err(|e: ApiError| e.extend())
    }

    /// Revokes a key of the caller's tenant (admin scope): it stops working within seconds.
    /// Revoking a revoked key changes nothing.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ApiKey> {
        let revoke = async {
            let principal = principal(ctx, Scope::Admin)?;
            let services = ctx.data_unchecked::<Arc<Services>>();
            let id = Uuid::try_parse(&id).map_err(|_| ApiError::bad_input("id", "not a key id"))?;
            let revoked = services
                .keys
                .revoke(Actor::Caller(principal), id)
                .await
                .map_err(|e| match e {
                    ApiError::NotFound(_) => {
                        ApiError::NotFound("the tenant has no key with this id".into())
                    }
                    other => other,
                })?;
            Ok(revoked.into())
        };
        revoke.await.map_err(|e: ApiError| e.extend())
    }
}
