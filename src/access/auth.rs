//! Credentials: minting API keys, and turning a presented key or JWT into the principal it acts
//! for.
//!
//! Keys are 32 random bytes behind a recognisable `tlk_` prefix (so secret scanners can spot a
//! leaked one). Only their SHA-256 is stored: a high-entropy key needs no slow hash.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::access::jwt::{JwtConfigError, JwtError, JwtSettings, JwtVerifier};
pub use crate::access::principal::{Credential, Principal, RateOverrides, Scope, ViewerAccess};
use crate::access::viewer::{self, CursorKey, ViewerKey, ViewerTokenError, VIEWER_TOKEN_PREFIX};
use crate::domain::Tenant;
use crate::store::{Store, StoreError};

pub const KEY_PREFIX: &str = "tlk_";
/// Characters of a key kept in clear for listings: the prefix and a few more.
const SHOWN_PREFIX_LEN: usize = KEY_PREFIX.len() + 8;
/// Keys one instance remembers at most; past this the least used go first.
const MAX_CACHED_KEYS: usize = 10_000;
/// While PostgreSQL is unreachable, a key verified this recently is still accepted, so recording
/// (which goes through the broker) keeps working during a database outage.
const STALE_WHILE_DOWN: Duration = Duration::from_secs(600);

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
    /// A key that exists but was revoked; the caller hears the same as for an unknown one.
    #[error("missing or unknown API key")]
    Revoked(Uuid),
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A token whose signature verifies but whose time has passed: a JWT (by its subject) or a
    /// viewer token (by its id).
    #[error("invalid token: the token has expired")]
    Expired { subject: String, kind: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How credentials are verified: API keys against the store (remembered briefly), JWTs by the
/// configured key.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Credentials")]
pub struct CredentialSettings {
    /// How long a verified API key is trusted before it is looked up again (so also how long a
    /// revoked key may keep working).
    #[arg(
        value_name = "KEY_CACHE_SECS",
        id = "key-cache-secs",
        long = "key-cache-secs",
        env = "TRACELEDGER_KEY_CACHE_SECS",
        default_value_t = 5
    )]
    pub key_cache_secs: u64,

    #[command(flatten)]
    pub jwt: JwtSettings,
}

/// Verifies keys against the store, remembering verified ones briefly so a request does not cost
/// a query; a revoked key therefore stops working within that time. JWTs, when configured, are
/// verified by signature alone.
pub struct Authenticator {
    store: Store,
    ttl: Duration,
    verified: quick_cache::sync::Cache<[u8; 32], (Principal, Instant)>,
    /// Tenants' viewer keys, remembered as verified keys are (so a rotation reaches every
    /// instance within the same time).
    viewer_keys: quick_cache::sync::Cache<Tenant, (ViewerKey, Instant)>,
    jwt: Option<JwtVerifier>,
}

impl Authenticator {
    pub fn new(store: Store, settings: &CredentialSettings) -> Result<Self, JwtConfigError> {
        Ok(Self {
            store,
            ttl: Duration::from_secs(settings.key_cache_secs),
            verified: quick_cache::sync::Cache::new(MAX_CACHED_KEYS),
            viewer_keys: quick_cache::sync::Cache::new(MAX_CACHED_KEYS),
            jwt: JwtVerifier::new(&settings.jwt)?,
        })
    }

    /// The principal for a presented credential: an API key (it starts with `tlk_`), a viewer
    /// token (`tlv_`) or, when JWTs are configured, anything else.
    pub async fn verify(&self, presented: &str) -> Result<Principal, AuthError> {
        self.verify_within(presented, self.ttl).await
    }

    /// Like `verify`, but a key is looked up in the store whatever the cache remembers (unless
    /// the store cannot answer, when the same outage grace applies).
    pub async fn verify_now(&self, presented: &str) -> Result<Principal, AuthError> {
        self.verify_within(presented, Duration::ZERO).await
    }

    /// Verifies, trusting a key verified less than `fresh` ago.
    async fn verify_within(
        &self,
        presented: &str,
        fresh: Duration,
    ) -> Result<Principal, AuthError> {
        if presented.starts_with(KEY_PREFIX) {
            return self.verify_key(presented, fresh).await;
        }
        if presented.starts_with(VIEWER_TOKEN_PREFIX) {
            return self.verify_viewer_token(presented, fresh).await;
        }
        match &self.jwt {
            Some(jwt) => jwt.verify(presented).map_err(|e| match e {
                JwtError::Expired => match jwt.expired_subject(presented) {
                    Some(subject) => AuthError::Expired {
                        subject,
                        kind: "jwt_subject",
                    },
                    None => AuthError::InvalidToken(e.to_string()),
                },
                e => AuthError::InvalidToken(e.to_string()),
            }),
            None => Err(AuthError::Unauthenticated),
        }
    }

    async fn verify_key(&self, key: &str, fresh: Duration) -> Result<Principal, AuthError> {
        let hash = hash_key(key);
        if let Some(principal) = self.cached(&hash, fresh) {
            return Ok(principal);
        }
        let record = match self.store.api_key_by_hash(&hash).await {
            Ok(Some(record)) if record.revoked_at.is_some() => {
                return Err(AuthError::Revoked(record.id))
            }
            Ok(record) => record.ok_or(AuthError::Unauthenticated)?,
            Err(e) if e.is_unavailable() => {
                return self.cached(&hash, STALE_WHILE_DOWN).ok_or(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        let principal = Principal {
            tenant: Tenant::stored(&record.tenant),
            credential: Credential::ApiKey(record.id),
            // A name this version does not know grants nothing.
            scopes: record
                .scopes
                .iter()
                .filter_map(|s| Scope::parse(s))
                .collect(),
            rates: RateOverrides {
                write_per_sec: record
                    .write_rate_per_sec
                    .and_then(|r| u32::try_from(r).ok()),
                read_per_sec: record.read_rate_per_sec.and_then(|r| u32::try_from(r).ok()),
            },
            expires_at: None,
            view: None,
        };
        self.verified
            .insert(hash, (principal.clone(), Instant::now()));
        Ok(principal)
    }

    /// A viewer token: signed with its tenant's current viewer key and not expired. Its holder
    /// may read its group's events and nothing else.
    async fn verify_viewer_token(
        &self,
        token: &str,
        fresh: Duration,
    ) -> Result<Principal, AuthError> {
        let unverified = viewer::read(token).map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        let key = self
            .viewer_key(&unverified.tenant, fresh)
            .await?
            .ok_or(AuthError::Unauthenticated)?;
        let grant = unverified
            .verify(&key, chrono::Utc::now())
            .map_err(|e| match e {
                ViewerTokenError::Expired { token_id } => AuthError::Expired {
                    subject: token_id.to_string(),
                    kind: "viewer_token",
                },
                e => AuthError::InvalidToken(e.to_string()),
            })?;
        Ok(Principal {
            tenant: grant.tenant,
            credential: Credential::Viewer {
                token: grant.token_id,
                group: grant.scope.group_id.clone(),
            },
            scopes: vec![Scope::EventsRead],
            rates: RateOverrides::default(),
            expires_at: Some(SystemTime::from(grant.expires_at)),
            view: Some(ViewerAccess {
                scope: grant.scope,
                export_allowed: grant.export_allowed,
                cursor_key: CursorKey::derive(&key),
            }),
        })
    }

    /// The tenant's viewer key, looked up again once older than `fresh`; `None` if it has none.
    async fn viewer_key(
        &self,
        tenant: &Tenant,
        fresh: Duration,
    ) -> Result<Option<ViewerKey>, AuthError> {
        let cached = |max_age: Duration| {
            self.viewer_keys
                .get(tenant)
                .filter(|(_, at)| at.elapsed() < max_age)
                .map(|(key, _)| key)
        };
        if let Some(key) = cached(fresh) {
            return Ok(Some(key));
        }
        match self.store.viewer_key(tenant).await {
            Ok(Some(bytes)) => {
                let key = ViewerKey::try_from(bytes.as_slice()).ok();
                if let Some(key) = key {
                    self.viewer_keys
                        .insert(tenant.clone(), (key, Instant::now()));
                }
                Ok(key)
            }
            Ok(None) => Ok(None),
            Err(e) if e.is_unavailable() => cached(STALE_WHILE_DOWN).map(Some).ok_or(e.into()),
            Err(e) => Err(e.into()),
        }
    }

    fn cached(&self, hash: &[u8; 32], max_age: Duration) -> Option<Principal> {
        self.verified
            .get(hash)
            .filter(|(_, at)| at.elapsed() < max_age)
            .map(|(principal, _)| principal)
    }
}

/// Mints a key for `tenant` with the default scopes and stores its hash.
pub async fn create_api_key(
    store: &Store,
    tenant: &str,
    name: &str,
) -> Result<NewApiKey, StoreError> {
    create_scoped_api_key(store, tenant, name, &Scope::DEFAULT).await
}

/// Mints a key for `tenant` that may do what `scopes` say, and stores its hash.
pub async fn create_scoped_api_key(
    store: &Store,
    tenant: &str,
    name: &str,
    scopes: &[Scope],
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
            &scopes
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect::<Vec<_>>(),
        )
        .await?;
    Ok(NewApiKey { id, secret })
}

/// A credential a long-lived connection (a websocket) authenticated with. It is verified again
/// once its last verification is older than the key cache's lifetime, and at a JWT's expiry, so
/// a revocation or an expiry reaches connections opened before it.
pub struct HeldCredential {
    presented: String,
    auth: Arc<Authenticator>,
    expires_at: Option<SystemTime>,
    verified_at: Mutex<Instant>,
}

impl HeldCredential {
    /// `presented` was just verified as `principal`.
    pub fn new(presented: String, auth: Arc<Authenticator>, principal: &Principal) -> Self {
        Self {
            presented,
            auth,
            expires_at: principal.expires_at,
            verified_at: Mutex::new(Instant::now()),
        }
    }

    /// When it must be verified again: a key cache's lifetime after the last time, or the
    /// token's expiry if that comes first.
    pub fn next_check(&self) -> Instant {
        let due = *self.verified_at.lock().unwrap_or_else(|p| p.into_inner()) + self.auth.ttl;
        let expiry = self.expires_at.map(|at| {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            Instant::now() + left
        });
        expiry.map_or(due, |expiry| expiry.min(due))
    }

    /// Verifies it again if that is due, past the key cache (a revocation shows at once): `Err`
    /// with the reason once it no longer works. While the store cannot answer it stays accepted
    /// (as keys are for requests during an outage) and is tried again a lifetime later.
    pub async fn check(&self) -> Result<(), String> {
        if self.expires_at.is_some_and(|at| SystemTime::now() >= at) {
            return Err("the token has expired".to_owned());
        }
        if Instant::now() < self.next_check() {
            return Ok(());
        }
        let result = match self.auth.verify_now(&self.presented).await {
            Ok(_) => Ok(()),
            Err(AuthError::Unauthenticated | AuthError::Revoked(_)) => {
                Err("the API key was revoked".to_owned())
            }
            Err(e @ AuthError::Expired { .. }) => Err(e.to_string()),
            Err(AuthError::InvalidToken(reason)) => Err(reason),
            Err(AuthError::Store(e)) => {
                tracing::warn!(error = %e, "cannot verify a websocket's credential again; it stays open");
                Ok(())
            }
        };
        *self.verified_at.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        result
    }
}

/// Hex characters of a refused credential's SHA-256 that the audit trail keeps: enough to tell
/// one attacker's attempts apart, useless for guessing the credential.
const FINGERPRINT_HEX: usize = 12;

/// How the audit trail names the caller of a refused request: a known key's id (revoked), an
/// expired token's subject, or else a short fingerprint of what was presented; never the secret.
pub fn refused_caller(presented: &str, error: &AuthError) -> (String, &'static str) {
    match error {
        AuthError::Revoked(id) => (id.to_string(), "api_key"),
        AuthError::Expired { subject, kind } => (subject.clone(), kind),
        _ => {
            let digest = hex::encode(Sha256::digest(presented.as_bytes()));
            (
                digest[..FINGERPRINT_HEX].to_owned(),
                "credential_fingerprint",
            )
        }
    }
}

fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}
