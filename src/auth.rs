//! API keys: minting them, and turning a presented key into the tenant it acts for.
//!
//! Keys are 32 random bytes behind a recognisable `tlk_` prefix (so secret scanners can spot a
//! leaked one). Only their SHA-256 is stored: a high-entropy key needs no slow hash.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::{Store, StoreError};

pub const KEY_PREFIX: &str = "tlk_";
/// Characters of a key kept in clear for listings: the prefix and a few more.
const SHOWN_PREFIX_LEN: usize = KEY_PREFIX.len() + 8;
/// Keys remembered at most by one instance's cache before it starts afresh.
const MAX_CACHED_KEYS: usize = 10_000;
/// While PostgreSQL is unreachable, a key verified this recently is still accepted, so recording
/// (which goes through the broker) keeps working during a database outage.
const STALE_WHILE_DOWN: Duration = Duration::from_secs(600);

/// Who is calling: the tenant every read and write of the request is scoped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub key_id: Uuid,
}

/// A newly minted key; `secret` is shown once and never stored.
#[derive(Debug)]
pub struct NewApiKey {
    pub id: Uuid,
    pub secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or unknown API key")]
    Unauthenticated,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies keys against the store, remembering verified ones briefly so a request does not cost
/// a query; a revoked key therefore stops working within that time.
pub struct Authenticator {
    store: Store,
    ttl: Duration,
    verified: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl Authenticator {
    pub fn new(store: Store, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            verified: Mutex::new(HashMap::new()),
        }
    }

    pub async fn verify(&self, key: &str) -> Result<Principal, AuthError> {
        if !key.starts_with(KEY_PREFIX) {
            return Err(AuthError::Unauthenticated);
        }
        let hash = hash_key(key);
        if let Some(principal) = self.cached(&hash, self.ttl) {
            return Ok(principal);
        }
        let record = match self.store.api_key_by_hash(&hash).await {
            Ok(record) => record.ok_or(AuthError::Unauthenticated)?,
            Err(e) if e.is_unavailable() => {
                return self.cached(&hash, STALE_WHILE_DOWN).ok_or(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        let principal = Principal {
            tenant: record.tenant,
            key_id: record.id,
        };
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= MAX_CACHED_KEYS {
            verified.clear();
        }
        verified.insert(hash, (principal.clone(), Instant::now()));
        Ok(principal)
    }

    fn cached(&self, hash: &[u8; 32], max_age: Duration) -> Option<Principal> {
        let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        verified
            .get(hash)
            .filter(|(_, at)| at.elapsed() < max_age)
            .map(|(principal, _)| principal.clone())
    }
}

/// Mints a key for `tenant` and stores its hash.
pub async fn create_api_key(
    store: &Store,
    tenant: &str,
    name: &str,
) -> Result<NewApiKey, StoreError> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    let id = Uuid::now_v7();
    store
        .insert_api_key(
            id,
            tenant,
            name,
            &secret[..SHOWN_PREFIX_LEN],
            &hash_key(&secret),
        )
        .await?;
    Ok(NewApiKey { id, secret })
}

fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}
