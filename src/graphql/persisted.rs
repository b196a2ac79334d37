//! Automatic persisted queries, Apollo's protocol: a client sends
//! `extensions.persistedQuery { version: 1, sha256Hash }` and no text; on
//! `PERSISTED_QUERY_NOT_FOUND` it sends the text with the hash once, and the hash alone after.
//!
//! Each tenant has its own registry, and each group's viewer tokens one of their own: a shared
//! one would tell one caller, by a hit, which query texts (search strings written inline, say)
//! another tenant, or the tenant's own admins, sent. A text is kept only when its
//! SHA-256 is the hash sent with it, so no caller can make a hash stand for another text. Each
//! instance keeps its own, bounded by bytes; a client that reaches an instance that has not seen
//! its hash gets one miss and sends the text again, as the protocol expects.

use std::sync::Arc;

use async_graphql::{Request, Value};
use sha2::{Digest, Sha256};

use crate::app::ApiError;
use crate::domain::{Tenant, ViewScope};

/// The bytes of query text kept at most, over all tenants (least used go first).
const MAX_KEPT_BYTES: u64 = 16 * 1024 * 1024;
/// Longer texts still run but are not kept: one would crowd out hundreds of ordinary ones.
const MAX_PERSISTED_QUERY_BYTES: usize = 64 * 1024;
/// A guess at how many entries fit, for the cache's table size.
const ESTIMATED_ENTRIES: usize = 8 * 1024;
/// What an entry costs beyond its bytes (the cache's own bookkeeping), so that tiny texts cannot
/// make the byte bound a bound on nothing.
const ENTRY_OVERHEAD_BYTES: u64 = 256;
/// The only version of the protocol there is.
const VERSION: u64 = 1;
const EXTENSION: &str = "persistedQuery";

type Hash = [u8; 32];
/// Whose registry: a tenant, and the view of a viewer token (its group and actor).
type Key = (Tenant, Option<Box<str>>, Hash);

#[derive(Clone)]
struct TextBytes;

impl quick_cache::Weighter<Key, Arc<str>> for TextBytes {
    fn weight(&self, key: &Key, text: &Arc<str>) -> u64 {
        (key.0.len() + key.1.as_ref().map_or(0, |v| v.len()) + text.len()) as u64
            + ENTRY_OVERHEAD_BYTES
    }
}

pub struct PersistedQueries {
    kept: quick_cache::sync::Cache<Key, Arc<str>, TextBytes>,
}

impl Default for PersistedQueries {
    fn default() -> Self {
        Self {
            kept: quick_cache::sync::Cache::with_weighter(
                ESTIMATED_ENTRIES,
                MAX_KEPT_BYTES,
                TextBytes,
            ),
        }
    }
}

/// A text sent with its hash, to be kept once the request has been charged and its text
/// parses: a caller over its budget, or sending junk, keeps nothing.
#[derive(Debug)]
pub struct Registration {
    key: Key,
    text: Arc<str>,
}

impl PersistedQueries {
    /// Fills in the text of a request that names a persisted query by hash only; for one that
    /// sends both, checks the hash and returns the registration to [`keep`](Self::keep). A
    /// request without the extension is left as it is. `view` names a viewer token's group and
    /// actor (its own registry).
    pub fn resolve(
        &self,
        tenant: &Tenant,
        view: Option<&ViewScope>,
        request: &mut Request,
    ) -> Result<Option<Registration>, ApiError> {
        let Some(extension) = request.extensions.get(EXTENSION) else {
            return Ok(None);
        };
        let hash = requested_hash(extension)?;
        let view = view
            .map(|v| format!("{}\u{0}{}", v.group_id, v.actor_id.as_deref().unwrap_or("")).into());
        let key = (tenant.clone(), view, hash);
        if request.query.is_empty() {
            let text = self
                .kept
                .get(&key)
                .ok_or(ApiError::PersistedQueryNotFound)?;
            request.query = text.to_string();
            return Ok(None);
        }
        if <[u8; 32]>::from(Sha256::digest(request.query.as_bytes())) != hash {
            return Err(ApiError::bad_input(
                "extensions.persistedQuery.sha256Hash",
                "provided sha does not match query",
            ));
        }
        Ok(
            (request.query.len() <= MAX_PERSISTED_QUERY_BYTES).then(|| Registration {
                key,
                text: request.query.as_str().into(),
            }),
        )
    }

    pub fn keep(&self, registration: Registration) {
        self.kept.insert(registration.key, registration.text);
    }
}

/// The hash of a well-formed `persistedQuery` extension.
fn requested_hash(extension: &Value) -> Result<Hash, ApiError> {
    let malformed = || {
        ApiError::bad_input(
            "extensions.persistedQuery",
            "persistedQuery must be { version: 1, sha256Hash: \"<64 hex digits>\" }",
        )
    };
    let Value::Object(fields) = extension else {
        return Err(malformed());
    };
    match fields.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
        Some(Value::Number(_)) => {
            return Err(ApiError::bad_input(
                "extensions.persistedQuery.version",
                "only version 1 of persisted queries is supported",
            ))
        }
        _ => return Err(malformed()),
    }
    let Some(Value::String(hex_hash)) = fields.get("sha256Hash") else {
        return Err(malformed());
    };
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut hash).map_err(|_| malformed())?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    fn request(query: &str, hash: &str) -> Request {
        let extension = serde_json::json!({ "version": 1, "sha256Hash": hash });
        let mut request = Request::new(query);
        request.extensions.insert(
            EXTENSION.to_owned(),
            Value::from_json(extension).expect("JSON converts"),
        );
        request
    }

    fn tenant(name: &str) -> Tenant {
        Tenant::parse(name).expect("a valid tenant")
    }

    fn code<T: std::fmt::Debug>(result: Result<T, ApiError>) -> String {
        result.expect_err("refused").code().to_owned()
    }

    #[test]
    fn a_hash_alone_runs_once_its_text_was_sent_by_the_same_tenant() {
        let registry = PersistedQueries::default();
        let text = "{ ledgerCheckpoint { treeSize } }";
        let acme = tenant("acme");

        let mut hash_only = request("", &hash_of(text));
        assert_eq!(
            code(registry.resolve(&acme, None, &mut hash_only)),
            "PERSISTED_QUERY_NOT_FOUND"
        );

        let mut with_text = request(text, &hash_of(text));
        let registration = registry
            .resolve(&acme, None, &mut with_text)
            .expect("the hash is the text's")
            .expect("a registration");
        registry.keep(registration);

        let mut hash_only = request("", &hash_of(text));
        registry
            .resolve(&acme, None, &mut hash_only)
            .expect("the hash is known now");
        assert_eq!(hash_only.query, text);

        let viewer = ViewScope {
            group_id: "org-1".into(),
            actor_id: None,
        };
        let mut a_viewer = request("", &hash_of(text));
        assert_eq!(
            code(registry.resolve(&acme, Some(&viewer), &mut a_viewer)),
            "PERSISTED_QUERY_NOT_FOUND",
            "a viewer token's group has a registry of its own"
        );

        let mut other_tenant = request("", &hash_of(text));
        assert_eq!(
            code(registry.resolve(&tenant("globex"), None, &mut other_tenant)),
            "PERSISTED_QUERY_NOT_FOUND"
        );
    }

    #[test]
    fn a_text_is_never_kept_under_a_hash_that_is_not_its_own() {
        let registry = PersistedQueries::default();
        let acme = tenant("acme");
        let honest = "{ apiKeys { id } }";
        let mut forged = request("mutation { revokeApiKey(id: \"x\") }", &hash_of(honest));
        let error = registry
            .resolve(&acme, None, &mut forged)
            .expect_err("refused");
        assert!(matches!(
            error,
            ApiError::BadInput { ref field, .. } if field == "extensions.persistedQuery.sha256Hash"
        ));
        let mut hash_only = request("", &hash_of(honest));
        assert_eq!(
            code(registry.resolve(&acme, None, &mut hash_only)),
            "PERSISTED_QUERY_NOT_FOUND"
        );
    }

    #[test]
    fn malformed_extensions_and_other_versions_are_bad_input() {
        let registry = PersistedQueries::default();
        let acme = tenant("acme");
        for extension in [
            serde_json::json!("abc"),
            serde_json::json!({ "version": 1 }),
            serde_json::json!({ "version": 1, "sha256Hash": "zz" }),
            serde_json::json!({ "version": 2, "sha256Hash": hash_of("{ a }") }),
        ] {
            let mut request = Request::new("");
            request.extensions.insert(
                EXTENSION.to_owned(),
                Value::from_json(extension.clone()).expect("JSON converts"),
            );
            assert_eq!(
                code(registry.resolve(&acme, None, &mut request)),
                "BAD_USER_INPUT",
                "{extension}"
            );
        }
        let mut plain = Request::new("{ a }");
        registry
            .resolve(&acme, None, &mut plain)
            .expect("no extension, nothing to do");
    }
}
