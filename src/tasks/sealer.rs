//! The sealer: hashes newly committed events into each tenant's Merkle tree (tiles in
//! PostgreSQL) and signs a checkpoint over it, at most once per checkpoint interval per tenant.
//! It runs beside the worker. Each round of a tenant is one transaction holding the tenant's
//! tree row, so concurrent sealers (several workers) take turns and a sealer killed mid-round
//! leaves the tree as the last commit left it: nothing half-hashed, no checkpoint skipped or
//! signed twice.
//!
//! The order it hashes in is the ledger index the worker's batch commit assigned; the sealer
//! decides nothing about order. An index range with a gap or a double (a tampered table) is
//! refused, loudly, and never sealed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff::sleep_unless_shutdown;
use crate::domain::ledger::{
    checkpoint_origin, edge_tiles, leaf_bytes, leaf_hash, tree_hash, LedgerSigner, SignerKeyError,
};
use crate::store::{Sealing, Store, StoreError, StoredCheckpoint};

/// Leaves hashed per transaction while catching up on a long backlog.
const SEAL_CHUNK: u64 = 20_000;

/// The ledger: its name in checkpoints, its signing key, how often it checkpoints.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Ledger")]
pub struct LedgerSettings {
    /// The ledger's name: checkpoints of tenant T are for the log `<name>/T`, signed by the key
    /// `<name>`. Choose a name that says whose ledger it is (a domain name is usual).
    #[arg(
        value_name = "NAME",
        id = "ledger-name",
        long = "ledger-name",
        env = "TRACELEDGER_LEDGER_NAME",
        default_value = "traceledger"
    )]
    pub name: String,

    /// The checkpoint signing key itself (`PRIVATE+KEY+…`, as the key file holds it). Takes
    /// precedence over the key file.
    #[arg(
        value_name = "KEY",
        id = "ledger-key",
        long = "ledger-key",
        env = "TRACELEDGER_LEDGER_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,

    /// Where the checkpoint signing key is kept; created there (mode 0600) when missing.
    #[arg(
        value_name = "PATH",
        id = "ledger-key-file",
        long = "ledger-key-file",
        env = "TRACELEDGER_LEDGER_KEY_FILE",
        default_value = "traceledger-ledger.key"
    )]
    pub key_file: PathBuf,

    /// A tenant with new events gets a signed checkpoint at most this often.
    #[arg(
        value_name = "MS",
        id = "checkpoint-interval-ms",
        long = "checkpoint-interval-ms",
        env = "TRACELEDGER_CHECKPOINT_INTERVAL_MS",
        default_value_t = 1000
    )]
    pub checkpoint_interval_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] SignerKeyError),
    #[error("cannot read or write the ledger key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tenant {tenant}: expected the event at ledger index {expected}, found {found}")]
    Broken {
        tenant: String,
        expected: u64,
        found: String,
    },
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// Where the signing key came from, for the start-up message.
#[derive(Debug, PartialEq, Eq)]
pub enum KeySource {
    Setting,
    File(PathBuf),
    Created(PathBuf),
}

/// The signing key of the settings: the key itself, else the key file, else a new key written
/// to the key file.
pub fn load_signer(settings: &LedgerSettings) -> Result<(LedgerSigner, KeySource), SealError> {
    // A blank variable (an empty `TRACELEDGER_LEDGER_KEY=` in a compose file) means unset.
    if let Some(key) = settings.key.as_deref().filter(|k| !k.trim().is_empty()) {
        return Ok((LedgerSigner::from_private(key)?, KeySource::Setting));
    }
    let path = &settings.key_file;
    let file_error = |source| SealError::KeyFile {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((
            LedgerSigner::from_private(&text)?,
            KeySource::File(path.clone()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (signer, private) = LedgerSigner::generate(&settings.name)?;
            write_new_key(path, &private).map_err(file_error)?;
            Ok((signer, KeySource::Created(path.clone())))
        }
        Err(e) => Err(file_error(e)),
    }
}

/// Writes a new key file only the owner can read; never replaces one (two starts racing keep
/// the first key).
fn write_new_key(path: &Path, private: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{private}")?;
    file.sync_all()
}

/// Says which key signs, and where it came from (the verifier key is public).
pub fn announce(signer: &LedgerSigner, source: &KeySource) {
    let verifier = signer.verifier_key();
    match source {
        KeySource::Created(path) => tracing::warn!(
            path = %path.display(),
            verifier_key = verifier,
            "no ledger signing key existed, so one was created; keep the file secret and back \
             it up (or set TRACELEDGER_LEDGER_KEY): checkpoints are verified with its verifier key"
        ),
        KeySource::File(path) => {
            tracing::info!(path = %path.display(), verifier_key = verifier, "ledger signing key")
        }
        KeySource::Setting => tracing::info!(verifier_key = verifier, "ledger signing key"),
    }
}

/// Starts the sealer: a round every checkpoint interval until `shutdown`.
pub fn spawn(
    settings: &LedgerSettings,
    signer: LedgerSigner,
    store: Store,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let interval = Duration::from_millis(settings.checkpoint_interval_ms.max(1));
    let name = settings.name.clone();
    tokio::spawn(async move {
        while sleep_unless_shutdown(interval, &shutdown).await {
            if let Err(e) = seal_all(&store, &signer, &name).await {
                tracing::warn!(error = %e, "sealing the ledger failed; will retry");
            }
        }
    })
}

/// One round: every tenant with unsealed events is sealed up to its head and checkpointed.
/// A tenant whose events cannot be sealed is reported and skipped, never the others.
pub async fn seal_all(store: &Store, signer: &LedgerSigner, name: &str) -> Result<(), SealError> {
    for tenant in store.unsealed_tenants().await? {
        match seal(store, signer, name, &tenant).await {
            Ok(_) => {}
            Err(e @ SealError::Broken { .. }) => {
                metrics::counter!("traceledger_ledger_seal_refused_total").increment(1);
                tracing::error!(error = %e, "the ledger cannot be sealed: events were changed \
                    outside the service; run `traceledger verify --online`");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Seals the tenant's tree up to its head; returns the signed size, or `None` when there was
/// nothing to seal or another sealer holds the tenant.
pub async fn seal(
    store: &Store,
    signer: &LedgerSigner,
    name: &str,
    tenant: &str,
) -> Result<Option<u64>, SealError> {
    loop {
        let Some(sealing) = store.begin_sealing(tenant).await? else {
            return Ok(None);
        };
        if sealing.sealed >= sealing.head {
            return Ok(None);
        }
        let to = sealing.head.min(sealing.sealed + SEAL_CHUNK);
        let last = to == sealing.head;
        // A long backlog is hashed in chunks, one transaction each; only the last is signed.
        seal_chunk(sealing, to, last.then_some(signer), name).await?;
        if last {
            return Ok(Some(to));
        }
    }
}

/// Hashes the leaves `[sealed, to)` into the tiles and, given a signer, signs a checkpoint of
/// size `to`.
async fn seal_chunk(
    mut sealing: Sealing,
    to: u64,
    signer: Option<&LedgerSigner>,
    name: &str,
) -> Result<(), SealError> {
    let from = sealing.sealed;
    let events = sealing.events(to).await?;
    for (expected, (index, event)) in (from..to).zip(events.iter()) {
        if *index != expected {
            return Err(SealError::Broken {
                tenant: sealing.tenant().to_owned(),
                expected,
                found: format!("index {index} (event {})", event.id),
            });
        }
    }
    if (events.len() as u64) != to - from {
        return Err(SealError::Broken {
            tenant: sealing.tenant().to_owned(),
            expected: from + events.len() as u64,
            found: format!("{} events for {} indices", events.len(), to - from),
        });
    }
    let mut tiles = sealing.tiles(&edge_tiles(from)).await?;
    // Canonical JSON and SHA-256 of thousands of events: off the async threads.
    let mut tiles = tokio::task::spawn_blocking(move || {
        let leaves = events
            .iter()
            .map(|(_, event)| leaf_bytes(event).map(|bytes| leaf_hash(&bytes)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SealError::Hashing(e.to_string()))?;
        tiles.append(from, &leaves).ok_or_else(|| {
            SealError::Hashing("the tree's edge tiles are missing or cut short".into())
        })?;
        Ok::<_, SealError>(tiles)
    })
    .await
    .map_err(|e| SealError::Hashing(e.to_string()))??;
    let checkpoint = match signer {
        Some(signer) => {
            let root = tree_hash(&tiles, to)
                .ok_or_else(|| SealError::Hashing("the tree's edge tiles are incomplete".into()))?;
            let origin = checkpoint_origin(name, sealing.tenant());
            Some(StoredCheckpoint {
                size: to,
                root,
                note: signer.sign(&origin, to, &root)?,
                verifier_key: signer.verifier_key().to_owned(),
                signed_at: Utc::now(),
            })
        }
        None => None,
    };
    sealing
        .commit(&tiles.take_changed(), to, checkpoint.as_ref())
        .await?;
    metrics::counter!("traceledger_ledger_leaves_sealed_total").increment(to - from);
    Ok(())
}
