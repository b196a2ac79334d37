//! The verifiable ledger over GraphQL: checkpoints, the keys that sign them, inclusion and
//! consistency proofs, and each event's place in its tenant's ledger. Hashes are base64
//! (standard alphabet, as C2SP notes write them); proof hashes come in RFC 9162 order.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, ErrorExtensions, Object, SimpleObject, ID};
use uuid::Uuid;

use super::error::ApiError;
use super::guard::tenant;
use super::loader::EventKey;
use super::scalars::DateTime;
use super::types::PageInfo;
use super::Services;
use crate::access::auth::Scope;
use crate::app::Ledger;
use crate::domain::ledger::{encode_hash, leaf_bytes, leaf_hash};
use crate::domain::{AuditEvent, Tenant};
use crate::store::StoredCheckpoint;

/// An event's place in its tenant's ledger.
pub struct LedgerEntry {
    index: u64,
    event: AuditEvent,
}

#[Object]
impl LedgerEntry {
    /// Its ledger index: 0, 1, 2, … per tenant, gap-free, in commit order.
    async fn index(&self) -> u64 {
        self.index
    }

    /// SHA-256(0x00 ‖ the RFC 8785 canonical JSON of the event as served here), base64.
    /// Computed only when asked for: a feed that wants the index alone does not hash.
    async fn leaf_hash(&self) -> async_graphql::Result<String> {
        let leaf = leaf_bytes(&self.event).map_err(|e| {
            tracing::error!(error = %e, id = %self.event.id, "an event cannot be canonicalized");
            ApiError::Internal.extend()
        })?;
        Ok(encode_hash(&leaf_hash(&leaf)))
    }
}

/// A signed tree head: the tenant's ledger of `size` events has root `rootHash`.
#[derive(SimpleObject)]
pub struct LedgerCheckpoint {
    pub size: u64,
    pub root_hash: String,
    /// The checkpoint as a C2SP signed note (tlog-checkpoint body, Ed25519 signature line).
    pub note: String,
    /// The key it was signed with, `<name>+<id>+<base64>`.
    pub verifier_key: String,
    pub signed_at: DateTime,
}

impl From<StoredCheckpoint> for LedgerCheckpoint {
    fn from(c: StoredCheckpoint) -> Self {
        Self {
            size: c.size,
            root_hash: encode_hash(&c.root),
            note: c.note,
            verifier_key: c.verifier_key,
            signed_at: DateTime(c.signed_at),
        }
    }
}

#[derive(SimpleObject)]
pub struct LedgerCheckpointEdge {
    pub cursor: String,
    pub node: LedgerCheckpoint,
}

#[derive(SimpleObject)]
pub struct LedgerCheckpointConnection {
    pub edges: Vec<LedgerCheckpointEdge>,
    pub page_info: PageInfo,
}

/// A key that signs, or signed, the ledger's checkpoints.
#[derive(SimpleObject)]
pub struct LedgerKey {
    pub verifier_key: String,
    pub first_used: DateTime,
    /// The newest key: it signs from now on. Older keys verify older checkpoints.
    pub current: bool,
}

/// The audit path of one event in a tree (RFC 9162 §2.1.3).
#[derive(SimpleObject)]
pub struct InclusionProof {
    pub event_id: ID,
    pub ledger_index: u64,
    pub tree_size: u64,
    /// The leaf hash as sealed in the tree.
    pub leaf_hash: String,
    pub root_hash: String,
    /// Sibling hashes from the leaf up.
    pub hashes: Vec<String>,
    /// The signed checkpoint of `treeSize`, when one was signed at that size.
    pub checkpoint: Option<LedgerCheckpoint>,
}

/// The proof that one tree is a prefix of a larger one (RFC 9162 §2.1.4).
#[derive(SimpleObject)]
pub struct ConsistencyProof {
    pub from_size: u64,
    pub to_size: u64,
    pub from_root_hash: String,
    pub to_root_hash: String,
    pub hashes: Vec<String>,
}

#[derive(Default)]
pub struct LedgerQuery;

#[Object]
impl LedgerQuery {
    /// The caller's tenant's newest signed checkpoint; null before the first.
    async fn ledger_checkpoint(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<LedgerCheckpoint>> {
        let run = async {
            let tenant = tenant(ctx, Scope::EventsRead)?;
            let latest = ledger_of(ctx).latest_checkpoint(&tenant).await?;
            Ok::<_, ApiError>(latest.map(LedgerCheckpoint::from))
        };
        run.await.map_err(|e| e.extend())
    }

    /// Every checkpoint signed for the caller's tenant, oldest first (each one is kept).
    async fn ledger_checkpoints(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<LedgerCheckpointConnection> {
        let run = async {
            let tenant = tenant(ctx, Scope::EventsRead)?;
            let first = usize::try_from(first).unwrap_or(0);
            let after = after
                .map(|a| a.parse::<u64>())
                .transpose()
                .map_err(|_| ApiError::bad_input("after", "not a checkpoint cursor"))?;
            let ledger = ledger_of(ctx);
            let from_cursor = after.is_some();
            let (page, has_next_page) = ledger.checkpoints(&tenant, first, after).await?;
            let edges: Vec<LedgerCheckpointEdge> = page
                .into_iter()
                .map(|c| LedgerCheckpointEdge {
                    cursor: c.size.to_string(),
                    node: c.into(),
                })
                .collect();
            Ok::<_, ApiError>(LedgerCheckpointConnection {
                page_info: PageInfo {
                    has_next_page,
                    // Forwards only: the cursor's own checkpoint lies before this page.
                    has_previous_page: from_cursor,
                    start_cursor: edges.first().map(|e| e.cursor.clone()),
                    end_cursor: edges.last().map(|e| e.cursor.clone()),
                },
                edges,
            })
        };
        run.await.map_err(|e| e.extend())
    }

    /// The keys that sign, or signed, checkpoints, oldest first.
    async fn ledger_keys(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<LedgerKey>> {
        let run = async {
            tenant(ctx, Scope::EventsRead)?;
            let keys = ledger_of(ctx).keys().await?;
            Ok::<_, ApiError>(
                keys.into_iter()
                    .map(|k| LedgerKey {
                        verifier_key: k.verifier_key,
                        first_used: DateTime(k.first_used),
                        current: k.current,
                    })
                    .collect(),
            )
        };
        run.await.map_err(|e| e.extend())
    }

    /// The proof that an event is in the tree of `treeSize` events (default: the newest
    /// checkpoint's).
    async fn inclusion_proof(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
        tree_size: Option<u64>,
    ) -> async_graphql::Result<InclusionProof> {
        let run = async {
            let tenant = tenant(ctx, Scope::EventsRead)?;
            let id = Uuid::try_parse(&event_id)
                .map_err(|_| ApiError::bad_input("eventId", "not an event id"))?;
            let proof = ledger_of(ctx)
                .inclusion_proof(&tenant, id, tree_size)
                .await?;
            Ok::<_, ApiError>(InclusionProof {
                event_id: ID(proof.event_id.to_string()),
                ledger_index: proof.index,
                tree_size: proof.tree_size,
                leaf_hash: encode_hash(&proof.leaf_hash),
                root_hash: encode_hash(&proof.root),
                hashes: proof.hashes.iter().map(encode_hash).collect(),
                checkpoint: proof.checkpoint.map(LedgerCheckpoint::from),
            })
        };
        run.await.map_err(|e| e.extend())
    }

    /// The proof that the tree of `fromSize` events is a prefix of the tree of `toSize`
    /// (default: the newest checkpoint's).
    async fn consistency_proof(
        &self,
        ctx: &Context<'_>,
        from_size: u64,
        to_size: Option<u64>,
    ) -> async_graphql::Result<ConsistencyProof> {
        let run = async {
            let tenant = tenant(ctx, Scope::EventsRead)?;
            let proof = ledger_of(ctx)
                .consistency_proof(&tenant, from_size, to_size)
                .await?;
            Ok::<_, ApiError>(ConsistencyProof {
                from_size: proof.from_size,
                to_size: proof.to_size,
                from_root_hash: encode_hash(&proof.from_root),
                to_root_hash: encode_hash(&proof.to_root),
                hashes: proof.hashes.iter().map(encode_hash).collect(),
            })
        };
        run.await.map_err(|e| e.extend())
    }
}

fn ledger_of<'a>(ctx: &Context<'a>) -> &'a Ledger {
    &ctx.data_unchecked::<Arc<Services>>().ledger
}

/// Loads the ledger indices of a request's events in one query per tenant.
pub struct LedgerIndexLoader {
    ledger: Ledger,
}

impl LedgerIndexLoader {
    pub fn new(ledger: Ledger) -> Self {
        Self { ledger }
    }
}

impl Loader<EventKey> for LedgerIndexLoader {
    type Value = u64;
    type Error = Arc<ApiError>;

    async fn load(&self, keys: &[EventKey]) -> Result<HashMap<EventKey, u64>, Self::Error> {
        let mut by_tenant: HashMap<&Tenant, Vec<Uuid>> = HashMap::new();
        for key in keys {
            by_tenant.entry(&key.tenant).or_default().push(key.id);
        }
        let mut found = HashMap::with_capacity(keys.len());
        for (tenant, ids) in by_tenant {
            for (id, index) in self.ledger.indices(tenant, &ids).await.map_err(Arc::new)? {
                let key = EventKey {
                    tenant: tenant.clone(),
                    id,
                };
                found.insert(key, index);
            }
        }
        Ok(found)
    }
}

/// An event's ledger index: null while it is not stored yet (the live feed runs ahead of the
/// commit).
pub(super) async fn index_of(
    ctx: &Context<'_>,
    event: &AuditEvent,
) -> Result<Option<u64>, ApiError> {
    let loader = ctx.data_unchecked::<DataLoader<LedgerIndexLoader>>();
    let key = EventKey {
        tenant: Tenant::stored(&event.tenant),
        id: event.id,
    };
    Ok(loader.load_one(key).await?)
}

/// An event's ledger entry, its index looked up unless `known`: null while it is not stored.
pub(super) async fn entry_of(
    ctx: &Context<'_>,
    event: &AuditEvent,
    known: Option<u64>,
) -> Result<Option<LedgerEntry>, ApiError> {
    let index = match known {
        Some(index) => index,
        None => match index_of(ctx, event).await? {
            Some(index) => index,
            None => return Ok(None),
        },
    };
    Ok(Some(LedgerEntry {
        index,
        event: event.clone(),
    }))
}
