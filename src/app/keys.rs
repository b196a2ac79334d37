//! Managing API keys and the rates a tenant's keys may get: the same use cases for an admin over
//! GraphQL (its own tenant, within the tenant's ceilings) and an operator at the command line
//! (any tenant). Every change leaves an audit event in tenant `_traceledger`.

use serde_json::json;
use uuid::Uuid;

use super::own_trail::{Actor, OwnTrail};
use super::ApiError;
use crate::access::auth::{self, Scope};
use crate::access::ratelimit::DefaultRates;
use crate::domain::check_tenant;
use crate::store::{ApiKeyRecord, Store};

/// Rates of one key or ceilings of one tenant, per second; `None`: the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rates {
    /// Events recorded.
    pub write_per_sec: Option<i32>,
    /// Requests made.
    pub read_per_sec: Option<i32>,
}

/// What a new key is.
#[derive(Clone, Debug)]
pub struct KeyRequest {
    pub tenant: String,
    pub name: String,
    /// `None`: events:write and events:read; named, at least one.
    pub scopes: Option<Vec<Scope>>,
    pub rates: Rates,
}

/// A new key, and its secret, which is shown this once and never again.
pub struct CreatedKey {
    pub key: ApiKeyRecord,
    pub secret: String,
}

/// The key use cases; cheap to clone.
#[derive(Clone)]
pub struct Keys {
    store: Store,
    trail: OwnTrail,
    default_rates: DefaultRates,
}

impl Keys {
    pub fn new(store: Store, trail: OwnTrail, default_rates: DefaultRates) -> Self {
        Self {
            store,
            trail,
            default_rates,
        }
    }

    /// Mints a key. A caller may mint keys of its own tenant only, with rates within the
    /// tenant's ceilings; an operator, for any tenant.
    pub async fn create(
        &self,
        actor: Actor<'_>,
        request: KeyRequest,
    ) -> Result<CreatedKey, ApiError> {
        let KeyRequest {
            tenant,
            name,
            scopes,
            rates,
        } = request;
        check_tenant(&tenant).map_err(|e| ApiError::bad_input("tenant", e.message))?;
        if name.trim().is_empty() || name.len() > crate::domain::MAX_ID_LEN {
            return Err(ApiError::bad_input(
                "name",
                "must be 1 to 256 characters, not only spaces",
            ));
        }
        if let Actor::Caller(principal) = actor {
            if principal.tenant != tenant {
                return Err(ApiError::Forbidden(
                    "keys are minted for the caller's own tenant".into(),
                ));
            }
            self.check_within_ceilings(&tenant, rates).await?;
        }
        let scopes = match scopes {
            None => Scope::DEFAULT.to_vec(),
            Some(scopes) if scopes.is_empty() => {
                return Err(ApiError::bad_input("scopes", "name at least one scope"))
            }
            Some(scopes) => scopes,
        };
        let new = auth::create_scoped_api_key(&self.store, &tenant, &name, &scopes).await?;
        if rates.write_per_sec.is_some() || rates.read_per_sec.is_some() {
            self.store
                .set_api_key_rates(new.id, rates.write_per_sec, rates.read_per_sec)
                .await?;
        }
        let key = self
            .store
            .api_key_by_id(new.id)
            .await?
            .ok_or(ApiError::Internal)?;
        self.trail
            .action(
                actor,
                "api_key.create",
                Some(("api_key", &new.id.to_string())),
                format!("API key {name:?} created for tenant {tenant}"),
                json!({ "tenant": tenant, "name": name, "scopes": key.scopes }),
            )
            .await?;
        Ok(CreatedKey {
            key,
            secret: new.secret,
        })
    }

    /// The keys of `tenant` (every tenant's for `None`), oldest first.
    pub async fn list(
        &self,
        tenant: Option<&str>,
        include_revoked: bool,
    ) -> Result<Vec<ApiKeyRecord>, ApiError> {
        let keys = self.store.list_api_keys(tenant).await?;
        Ok(keys
            .into_iter()
            .filter(|k| include_revoked || k.revoked_at.is_none())
            .collect())
    }

    /// Revokes a key (a caller's only if it is of its tenant); it stops working within the key
    /// cache's lifetime. Revoking a revoked key changes nothing.
    pub async fn revoke(&self, actor: Actor<'_>, id: Uuid) -> Result<ApiKeyRecord, ApiError> {
        let tenant = match actor {
            Actor::Caller(principal) => Some(principal.tenant.as_str()),
            Actor::Operator(_) => None,
        };
        let key = self
            .store
            .revoke_api_key(id, tenant)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("there is no key {id}")))?;
        self.trail
            .action(
                actor,
                "api_key.revoke",
                Some(("api_key", &id.to_string())),
                format!("API key {id} of tenant {} revoked", key.tenant),
                json!({ "tenant": key.tenant, "name": key.name }),
            )
            .await?;
        Ok(key)
    }

    /// Sets or clears a key's own rates (the operator's; no ceiling applies).
    pub async fn limit(&self, operator: &str, id: Uuid, rates: Rates) -> Result<(), ApiError> {
        if !self
            .store
            .set_api_key_rates(id, rates.write_per_sec, rates.read_per_sec)
            .await?
        {
            return Err(ApiError::NotFound(format!("there is no key {id}")));
        }
        self.trail
            .action(
                Actor::Operator(operator),
                "api_key.limit",
                Some(("api_key", &id.to_string())),
                format!("rate limits of API key {id} set"),
                json!({ "writePerSec": rates.write_per_sec, "readPerSec": rates.read_per_sec }),
            )
            .await?;
        Ok(())
    }

    /// Sets or clears the most a tenant's admins may give one key (the operator's).
    pub async fn limit_tenant(
        &self,
        operator: &str,
        tenant: &str,
        ceilings: Rates,
    ) -> Result<(), ApiError> {
        check_tenant(tenant).map_err(|e| ApiError::bad_input("tenant", e.message))?;
        self.store
            .set_tenant_rate_ceilings(tenant, ceilings.write_per_sec, ceilings.read_per_sec)
            .await?;
        self.trail
            .action(
                Actor::Operator(operator),
                "tenant.limit",
                Some(("tenant", tenant)),
                format!("rate ceilings of tenant {tenant} set"),
                json!({
                    "writePerSec": ceilings.write_per_sec,
                    "readPerSec": ceilings.read_per_sec,
                }),
            )
            .await?;
        Ok(())
    }

    /// A tenant's admin may give its keys at most the tenant's ceiling: the operator's, or else
    /// the deployment's default rate.
    async fn check_within_ceilings(&self, tenant: &str, rates: Rates) -> Result<(), ApiError> {
        let (write_ceiling, read_ceiling) = self.store.tenant_rate_ceilings(tenant).await?;
        let defaults = self.default_rates;
        for (field, rate, ceiling) in [
            (
                "writeRatePerSec",
                rates.write_per_sec,
                write_ceiling.unwrap_or(saturating_i32(defaults.write_per_sec)),
            ),
            (
                "readRatePerSec",
                rates.read_per_sec,
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
        Ok(())
    }
}

fn saturating_i32(rate: u32) -> i32 {
    i32::try_from(rate).unwrap_or(i32::MAX)
}
