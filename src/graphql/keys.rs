//! Key management for admins: `apiKeys`, `createApiKey`, `revokeApiKey`. An admin manages the
//! keys of its own tenant only; managing keys across tenants is the operator's CLI
//! (`traceledger keys list|create|revoke`), which needs database access. Every change is recorded
//! in tenant `_traceledger`.

use std::sync::Arc;

use async_graphql::{Context, Enum, ErrorExtensions, Object, SimpleObject, ID};
use serde_json::json;
use uuid::Uuid;

use super::error::ApiError;
use super::guard::principal;
use super::scalars::DateTime;
use super::Services;
use crate::auth::{self, Scope};
use crate::store::ApiKeyRecord;

fn saturating_i32(rate: u32) -> i32 {
    i32::try_from(rate).unwrap_or(i32::MAX)
}

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
                .store
                .list_api_keys(Some(&principal.tenant))
                .await?;
            Ok(keys
                .into_iter()
                .filter(|k| include_revoked || k.revoked_at.is_none())
                .map(ApiKey::from)
                .collect())
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
            if name.trim().is_empty() || name.len() > crate::domain::MAX_ID_LEN {
                return Err(ApiError::bad_input(
                    "name",
                    "must be 1 to 256 characters, not only spaces",
                ));
            }
            // A tenant's admin may give its keys at most the tenant's ceiling: the operator's,
            // or else the deployment's default rate.
            let (write_ceiling, read_ceiling) = services
                .store
                .tenant_rate_ceilings(&principal.tenant)
                .await?;
            let defaults = services.default_rates;
            for (field, rate, ceiling) in [
                (
                    "writeRatePerSec",
                    write_rate_per_sec,
                    write_ceiling.unwrap_or(saturating_i32(defaults.write_per_sec)),
                ),
                (
                    "readRatePerSec",
                    read_rate_per_sec,
                    read_ceiling.unwrap_or(saturating_i32(defaults.read_per_sec)),
                ),
            ] {
                if rate.is_some_and(|r| !(1..=ceiling).contains(&r)) {
                    return Err(ApiError::bad_input(
                        field,
                        format!(
                            "must be between 1 and {ceiling}, the tenant's ceiling (an operator sets it with `traceledger tenants limit`)"
                        ),
                    ));
                }
            }
            let scopes: Vec<Scope> = match scopes {
                Some(scopes) if !scopes.is_empty() => scopes.into_iter().map(Into::into).collect(),
                Some(_) => return Err(ApiError::bad_input("scopes", "name at least one scope")),
                None => Scope::DEFAULT.to_vec(),
            };
            let new =
                auth::create_scoped_api_key(&services.store, &principal.tenant, &name, &scopes)
                    .await?;
            if write_rate_per_sec.is_some() || read_rate_per_sec.is_some() {
                services
                    .store
                    .set_api_key_rates(new.id, write_rate_per_sec, read_rate_per_sec)
                    .await?;
            }
            let record = services
                .store
                .api_key_by_id(new.id)
                .await?
                .ok_or(ApiError::Internal)?;
            services.audit.admin_action(
                principal,
                "api_key.create",
                Some(("api_key", &new.id.to_string())),
                format!("API key {:?} created for tenant {}", name, principal.tenant),
                json!({ "name": name, "scopes": record.scopes }),
            );
            Ok(CreatedApiKey {
                key: record.into(),
                secret: new.secret,
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
                .store
                .revoke_api_key(id, Some(&principal.tenant))
                .await?
                .ok_or_else(|| ApiError::NotFound("the tenant has no key with this id".into()))?;
            services.audit.admin_action(
                principal,
                "api_key.revoke",
                Some(("api_key", &id.to_string())),
                format!("API key {id} of tenant {} revoked", principal.tenant),
                json!({ "name": revoked.name }),
            );
            Ok(revoked.into())
        };
        revoke.await.map_err(|e: ApiError| e.extend())
    }
}
