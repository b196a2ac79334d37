//! Signed checkpoints: a tree's origin, size and root in the C2SP tlog-checkpoint format, signed
//! as a C2SP signed-note with Ed25519. Keys are in the note formats too: the private key as
//! `PRIVATE+KEY+<name>+<id>+<base64>`, the public (verifier) key as `<name>+<id>+<base64>`, so
//! standard tooling (Go's `note` package, sigsum, litetlog) reads them as they are.

use signed_note::{
    Note, NoteError, Signer, StandardSigner, StandardVerifier, Verifier, VerifierList,
};

use super::Hash;

#[derive(Debug, thiserror::Error)]
pub enum SignerKeyError {
    #[error("not a signing key (PRIVATE+KEY+<name>+<id>+<base64 Ed25519>): {0}")]
    Malformed(String),
    #[error(
        "the ledger name {0:?} cannot name a key: it must be non-empty, without spaces or '+'"
    )]
    BadName(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a verifier key (<name>+<id>+<base64>): {0}")]
    BadVerifierKey(String),
    #[error("not a signed checkpoint: {0}")]
    Malformed(String),
    #[error("the checkpoint is signed by none of the given keys")]
    UnknownKey,
    #[error("the checkpoint's signature by {0} does not verify")]
    BadSignature(String),
}

/// The key checkpoints are signed with.
#[derive(Clone)]
pub struct LedgerSigner {
    signer: StandardSigner,
    verifier_key: String,
}

impl std::fmt::Debug for LedgerSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key, not even in a debug print.
        f.debug_struct("LedgerSigner")
            .field("verifier_key", &self.verifier_key)
            .finish()
    }
}

impl LedgerSigner {
    /// A new random key named `name`; returns it with its private form, to be kept.
    pub fn generate(name: &str) -> Result<(LedgerSigner, String), SignerKeyError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(SignerKeyError::BadName(name.to_owned()));
        }
        let (private, _) = signed_note::generate_key(&mut rand_core_06::OsRng, name);
        Ok((Self::from_private(&private)?, private))
    }

    /// The key from its private form (surrounding whitespace ignored, as a file holds it).
    pub fn from_private(private: &str) -> Result<LedgerSigner, SignerKeyError> {
        let private = private.trim();
        let malformed = || {
            // Only the public part of what was given may reach a log.
            let shown: String = private.split('+').take(4).collect::<Vec<_>>().join("+");
            SignerKeyError::Malformed(format!("{shown}+…"))
        };
        let signer = StandardSigner::new(private).map_err(|_| malformed())?;
        // The base64 part may itself hold '+': it is everything after the fourth.
        let seed = private
            .splitn(5, '+')
            .nth(4)
            .and_then(|b64| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(b64).ok()
            })
            .filter(|key| key.len() == 33)
            .ok_or_else(malformed)?;
        let seed: [u8; 32] = seed[1..].try_into().map_err(|_| malformed())?;
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let verifier_key = signed_note::new_ed25519_verifier_key(signer.name(), &public);
        Ok(Self {
            signer,
            verifier_key,
        })
    }

    /// The public key checkpoints are verified with: `<name>+<id>+<base64>`.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    pub fn name(&self) -> &str {
        self.signer.name()
    }

    /// The signed note of the checkpoint `origin`, `size`, `root`.
    pub fn sign(&self, origin: &str, size: u64, root: &Hash) -> Result<String, SignerKeyError> {
        let body = tlog_tiles::Checkpoint::new(origin, size, tlog_tiles::Hash(*root), "")
            .map_err(|e| SignerKeyError::Signing(e.to_string()))?;
        let mut note =
            Note::new(&body.to_bytes(), &[]).map_err(|e| SignerKeyError::Signing(e.to_string()))?;
        note.add_sigs(&[&self.signer])
            .map_err(|e| SignerKeyError::Signing(e.to_string()))?;
        String::from_utf8(note.to_bytes()).map_err(|e| SignerKeyError::Signing(e.to_string()))
    }
}

/// A tenant's log name in checkpoints: `<ledger name>/<tenant>`.
pub fn checkpoint_origin(ledger_name: &str, tenant: &str) -> String {
    format!("{ledger_name}/{tenant}")
}

/// What a verified checkpoint says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// The verifier keys among those given whose signatures verified.
    pub signed_by: Vec<String>,
}

impl Checkpoint {
    /// Whether it is the checkpoint of `tenant`'s log (see [`checkpoint_origin`]).
    pub fn is_of(&self, tenant: &str) -> bool {
        self.origin.rsplit_once('/').map(|(_, t)| t) == Some(tenant)
    }
}

/// Verifies a signed checkpoint against `verifier_keys` (any one signature by one of them is
/// enough) and reads it.
pub fn open_checkpoint(
    note: &str,
    verifier_keys: &[String],
) -> Result<Checkpoint, CheckpointError> {
    let mut verifiers: Vec<Box<dyn Verifier>> = Vec::new();
    let mut by_id = Vec::new();
    for key in verifier_keys {
        let verifier = StandardVerifier::new(key.trim())
            .map_err(|_| CheckpointError::BadVerifierKey(key.clone()))?;
        by_id.push((
            (verifier.name().to_owned(), verifier.key_id()),
            key.trim().to_owned(),
        ));
        verifiers.push(Box::new(verifier));
    }
    let parsed =
        Note::from_bytes(note.as_bytes()).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    let (verified, _) = match parsed.verify(&VerifierList::new(verifiers)) {
        Ok(sigs) => sigs,
        Err(NoteError::UnverifiedNote) => return Err(CheckpointError::UnknownKey),
        Err(NoteError::InvalidSignature { name, id }) => {
            return Err(CheckpointError::BadSignature(format!("{name}+{id:08x}")))
        }
        Err(e) => return Err(CheckpointError::Malformed(e.to_string())),
    };
    let body = tlog_tiles::Checkpoint::from_bytes(parsed.text())
        .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    let signed_by = verified
        .iter()
        .filter_map(|sig| {
            by_id
                .iter()
                .find(|((name, id), _)| name == sig.name() && *id == sig.id())
                .map(|(_, key)| key.clone())
        })
        .collect();
    Ok(Checkpoint {
        origin: body.origin().to_owned(),
        size: body.size(),
        root: body.hash().0,
        signed_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_generated_key_reads_back() {
        // Base64 holds '+' often enough that a few dozen keys always meet one.
        for _ in 0..64 {
            let (signer, private) = LedgerSigner::generate("ledger.example").unwrap();
            let again = LedgerSigner::from_private(&private).unwrap();
            assert_eq!(again.verifier_key(), signer.verifier_key());
        }
    }

    #[test]
    fn a_checkpoint_verifies_with_its_key_only() {
        let (signer, private) = LedgerSigner::generate("ledger.example").unwrap();
        let again = LedgerSigner::from_private(&format!("{private}\n")).unwrap();
        assert_eq!(again.verifier_key(), signer.verifier_key());
        let note = signer.sign("ledger.example/acme", 3, &[7; 32]).unwrap();
        // The C2SP checkpoint body, then a blank line and one signature line.
        let mut lines = note.lines();
        assert_eq!(lines.next(), Some("ledger.example/acme"));
        assert_eq!(lines.next(), Some("3"));
        assert!(lines.nth(2).unwrap().starts_with("— ledger.example "));

        let opened = open_checkpoint(&note, &[signer.verifier_key().to_owned()]).unwrap();
        assert_eq!((opened.size, opened.root), (3, [7; 32]));
        assert_eq!(opened.signed_by, vec![signer.verifier_key().to_owned()]);

        let (other, _) = LedgerSigner::generate("ledger.example").unwrap();
        assert_eq!(
            open_checkpoint(&note, &[other.verifier_key().to_owned()]),
            Err(CheckpointError::UnknownKey)
        );
        let forged = note.replacen("\n3\n", "\n4\n", 1);
        assert!(matches!(
            open_checkpoint(&forged, &[signer.verifier_key().to_owned()]),
            Err(CheckpointError::BadSignature(_))
        ));
        let error = LedgerSigner::from_private("PRIVATE+KEY+x+00000000+c2VjcmV0").unwrap_err();
        assert!(!error.to_string().contains("c2VjcmV0"), "{error}");
    }
}
