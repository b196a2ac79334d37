//! The event loader every event-returning resolver goes through: Redis first (one MGET), then
//! PostgreSQL for the misses (one query), which are written back to Redis; ids still unknown may
//! have been superseded under an idempotency key (see `Store::superseding_ids`). Keys carry the
//! tenant, so neither the loader nor the cache can hand one tenant another's event.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use uuid::Uuid;

use super::error::ApiError;
use crate::app::reads::EventSource;
use crate::cache::Cache;
use crate::domain::{AuditEvent, Tenant};
use crate::store::Store;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventKey {
    pub tenant: Tenant,
    pub id: Uuid,
}

pub struct EventLoader {
    store: Store,
    cache: Cache,
}

impl EventLoader {
    pub fn new(store: Store, cache: Cache) -> Self {
        Self { store, cache }
    }

    /// An id that lost its idempotency key to another event answers with that event: the
    /// client was told its event was accepted, and this is the event stored under its key.
    async fn load_superseded(
        &self,
        tenant: &Tenant,
        missing: &[Uuid],
        found: &mut HashMap<EventKey, AuditEvent>,
    ) -> Result<(), Arc<ApiError>> {
        let store_error = |e| Arc::new(ApiError::from(e));
        let superseding = self
            .store
            .superseding_ids(tenant, missing)
            .await
            .map_err(store_error)?;
        if superseding.is_empty() {
            return Ok(());
        }
        let owners: Vec<Uuid> = superseding.values().copied().collect();
        let events: HashMap<Uuid, AuditEvent> = self
            .store
            .events_by_ids(tenant, &owners)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        for (id, owner) in superseding {
            if let Some(event) = events.get(&owner) {
                let key = EventKey {
                    tenant: tenant.clone(),
                    id,
                };
                found.insert(key, event.clone());
            }
        }
        Ok(())
    }
}

impl Loader<EventKey> for EventLoader {
    type Value = AuditEvent;
    type Error = Arc<ApiError>;

    async fn load(&self, keys: &[EventKey]) -> Result<HashMap<EventKey, AuditEvent>, Self::Error> {
        let cache_keys: Vec<(String, Uuid)> =
            keys.iter().map(|k| (k.tenant.to_string(), k.id)).collect();
        let cached = self
            .cache
            .get_events(&cache_keys)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "event cache unavailable; reading from the store");
                vec![None; keys.len()]
            });

        let hits = cached.iter().filter(|hit| hit.is_some()).count();
        metrics::counter!("traceledger_cache_hits_total").increment(hits as u64);
        metrics::counter!("traceledger_cache_misses_total").increment((keys.len() - hits) as u64);
        let mut found = HashMap::with_capacity(keys.len());
        let mut misses: HashMap<Tenant, Vec<Uuid>> = HashMap::new();
        for (key, hit) in keys.iter().zip(cached) {
            match hit {
                Some(event) => {
                    found.insert(key.clone(), event);
                }
                None => misses.entry(key.tenant.clone()).or_default().push(key.id),
            }
        }
        for (tenant, ids) in misses {
            let loaded = self
                .store
                .events_by_ids(&tenant, &ids)
                .await
                .map_err(|e| Arc::new(ApiError::from(e)))?;
            if let Err(e) = self.cache.put_events(&loaded).await {
                tracing::warn!(error = %e, "could not fill the event cache");
            }
            let missing: Vec<Uuid> = {
                let loaded: HashSet<Uuid> = loaded.iter().map(|e| e.id).collect();
                ids.into_iter().filter(|id| !loaded.contains(id)).collect()
            };
            for event in loaded {
                let key = EventKey {
                    tenant: tenant.clone(),
                    id: event.id,
                };
                found.insert(key, event);
            }
            if !missing.is_empty() {
                self.load_superseded(&tenant, &missing, &mut found).await?;
            }
        }
        Ok(found)
    }
}

/// A request's events come through its loader, whichever read asks for them.
impl EventSource for DataLoader<EventLoader> {
    async fn events(
        &self,
        tenant: &Tenant,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, AuditEvent>, ApiError> {
        let keys = ids.iter().map(|&id| EventKey {
            tenant: tenant.clone(),
            id,
        });
        let found = self.load_many(keys).await.map_err(ApiError::from)?;
        Ok(found
            .into_iter()
            .map(|(key, event)| (key.id, event))
            .collect())
    }
}
