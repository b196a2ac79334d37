//! Viewer tokens: short-lived credentials a tenant's backend mints for one of its own customers'
//! browsers, that read one group's events (one actor's, if the token names one) and nothing
//! else. A token is its claims and an HMAC-SHA256 of them under the tenant's viewer key, so it
//! is verified without a query (the key is remembered like a verified API key); rotating the
//! tenant's key revokes every token minted before.
//!
//! Form: `tlv_<claims, base64url JSON>.<HMAC, base64url>`; the prefix lets secret scanners spot
//! a leaked one, and the MAC covers the prefix and the claims as sent.
//!
//! A ledger index counts every event of the tenant, all groups together, so a viewer never sees
//! one: its stream cursors are sealed (XChaCha20-Poly1305 under a key derived from the tenant's
//! viewer key), which it can hand back but neither read nor forge, so no cursor of its making
//! can probe where the tenant's ledger ends either.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::domain::{Tenant, ViewScope};

pub const VIEWER_TOKEN_PREFIX: &str = "tlv_";
/// What starts a viewer's sealed stream cursor.
const SEALED_CURSOR_PREFIX: &str = "tlc_";
const NONCE_BYTES: usize = 24;
/// The longest a token may live: a leaked one is good for at most a day.
pub const MAX_TTL_SECONDS: i64 = 86_400;
/// Longer presented tokens are refused before any decoding (real ones are a few hundred bytes).
const MAX_TOKEN_BYTES: usize = 4096;
const VERSION: u8 = 1;

/// A tenant's viewer key: 32 random bytes.
pub type ViewerKey = [u8; 32];

pub fn new_viewer_key() -> ViewerKey {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    key
}

/// What a token lets its holder do, as its minter chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewerGrant {
    pub token_id: Uuid,
    pub tenant: Tenant,
    pub scope: ViewScope,
    pub export_allowed: bool,
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    v: u8,
    jti: Uuid,
    ten: String,
    grp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    act: Option<String>,
    exp: i64,
    #[serde(default)]
    xp: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ViewerTokenError {
    #[error("not a viewer token")]
    Malformed,
    #[error("the viewer token's signature does not verify")]
    BadSignature,
    #[error("the viewer token has expired")]
    Expired { token_id: Uuid },
}

/// The token for `grant`, signed with `key`.
pub fn mint(key: &ViewerKey, grant: &ViewerGrant) -> String {
    let claims = Claims {
        v: VERSION,
        jti: grant.token_id,
        ten: grant.tenant.to_string(),
        grp: grant.scope.group_id.clone(),
        act: grant.scope.actor_id.clone(),
        exp: grant.expires_at.timestamp(),
        xp: grant.export_allowed,
    };
    // Serializing plain strings and numbers cannot fail.
    let json = serde_json::to_vec(&claims).unwrap_or_default();
    let signed = format!("{VIEWER_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(json));
    let mac = URL_SAFE_NO_PAD.encode(mac_of(key, &signed).finalize().into_bytes());
    format!("{signed}.{mac}")
}

/// A token whose claims have been read but not yet verified: its tenant says whose key checks
/// it.
pub struct Unverified<'a> {
    signed: &'a str,
    mac: Vec<u8>,
    claims: Claims,
    pub tenant: Tenant,
}

/// Reads a presented token's claims; nothing in them is to be trusted before [`Unverified::verify`].
pub fn read(token: &str) -> Result<Unverified<'_>, ViewerTokenError> {
    use ViewerTokenError::Malformed;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Malformed);
    }
    let (signed, mac) = token.rsplit_once('.').ok_or(Malformed)?;
    let body = signed.strip_prefix(VIEWER_TOKEN_PREFIX).ok_or(Malformed)?;
    let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| Malformed)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| Malformed)?;
    let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| Malformed)?;
    if claims.v != VERSION {
        return Err(Malformed);
    }
    let tenant = Tenant::parse(&claims.ten).map_err(|_| Malformed)?;
    Ok(Unverified {
        signed,
        mac,
        claims,
        tenant,
    })
}

impl Unverified<'_> {
    /// The grant, if `key` signed it and it has not expired at `now`.
    pub fn verify(
        self,
        key: &ViewerKey,
        now: DateTime<Utc>,
    ) -> Result<ViewerGrant, ViewerTokenError> {
        mac_of(key, self.signed)
            .verify_slice(&self.mac)
            .map_err(|_| ViewerTokenError::BadSignature)?;
        let c = self.claims;
        let expires_at = DateTime::from_timestamp(c.exp, 0).ok_or(ViewerTokenError::Malformed)?;
        if now >= expires_at {
            return Err(ViewerTokenError::Expired { token_id: c.jti });
        }
        Ok(ViewerGrant {
            token_id: c.jti,
            tenant: self.tenant,
            scope: ViewScope {
                group_id: c.grp,
                actor_id: c.act,
            },
            export_allowed: c.xp,
            expires_at,
        })
    }
}

/// The key a tenant's viewers' stream cursors are sealed with, derived from its viewer key (so
/// rotating that key also retires the cursors). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct CursorKey([u8; 32]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(…)")
    }
}

impl CursorKey {
    pub fn derive(viewer_key: &ViewerKey) -> Self {
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 8160.
        Hkdf::<Sha256>::new(None, viewer_key)
            .expand(b"traceledger viewer stream cursor v1", &mut key)
            .expect("32 bytes is a valid HKDF output length");
        Self(key)
    }

    /// A ledger index as a cursor only this key opens.
    pub fn seal(&self, index: u64) -> String {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encrypting 8 bytes in memory cannot fail.
        let sealed = cipher
            .encrypt(&nonce, index.to_be_bytes().as_slice())
            .unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{SEALED_CURSOR_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The index a cursor of [`seal`](Self::seal) holds; `None` for anything else.
    pub fn open(&self, cursor: &str) -> Option<u64> {
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor.strip_prefix(SEALED_CURSOR_PREFIX)?)
            .ok()?;
        if bytes.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let plain = cipher.decrypt(XNonce::from_slice(nonce), sealed).ok()?;
        Some(u64::from_be_bytes(plain.try_into().ok()?))
    }
}

fn mac_of(key: &ViewerKey, signed: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(signed.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires_in: i64) -> ViewerGrant {
        ViewerGrant {
            token_id: Uuid::now_v7(),
            tenant: Tenant::parse("acme").unwrap(),
            scope: ViewScope {
                group_id: "org_1".into(),
                actor_id: Some("alice".into()),
            },
            export_allowed: true,
            expires_at: DateTime::from_timestamp(Utc::now().timestamp() + expires_in, 0).unwrap(),
        }
    }

    #[test]
    fn a_minted_token_verifies_with_its_key_only() {
        let key = new_viewer_key();
        let grant = grant(60);
        let token = mint(&key, &grant);
        assert!(token.starts_with(VIEWER_TOKEN_PREFIX));
        let read = read(&token).unwrap();
        assert_eq!(read.tenant.as_str(), "acme");
        assert_eq!(read.verify(&key, Utc::now()).unwrap(), grant);
        assert_eq!(
            super::read(&token)
                .unwrap()
                .verify(&new_viewer_key(), Utc::now())
                .unwrap_err(),
            ViewerTokenError::BadSignature
        );
    }

    #[test]
    fn sealed_cursors_open_with_their_key_only_and_tell_nothing() {
        let key = CursorKey::derive(&new_viewer_key());
        let first = key.seal(41);
        let again = key.seal(41);
        assert_ne!(
            first, again,
            "a fresh nonce each time: equal indices look unrelated"
        );
        assert_eq!(key.open(&first), Some(41));
        assert_eq!(CursorKey::derive(&new_viewer_key()).open(&first), None);
        let mut tampered = first.clone();
        tampered.pop();
        tampered.push(if first.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(key.open(&tampered), None);
        for junk in ["", "tlc_", "tlc_AAAA", "bGVkZ2VyOjQx"] {
            assert_eq!(key.open(junk), None, "{junk}");
        }
    }

    #[test]
    fn tampered_and_expired_tokens_are_refused() {
        let key = new_viewer_key();
        let token = mint(&key, &grant(60));
        // Another group in the claims, the signature kept.
        let (signed, mac) = token.rsplit_once('.').unwrap();
        let body = signed.strip_prefix(VIEWER_TOKEN_PREFIX).unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        let forged_json = json.replace("org_1", "org_2");
        let forged = format!(
            "{VIEWER_TOKEN_PREFIX}{}.{mac}",
            URL_SAFE_NO_PAD.encode(forged_json)
        );
        assert_eq!(
            read(&forged).unwrap().verify(&key, Utc::now()).unwrap_err(),
            ViewerTokenError::BadSignature
        );
        let expired = grant(-1);
        let token = mint(&key, &expired);
        assert_eq!(
            read(&token).unwrap().verify(&key, Utc::now()).unwrap_err(),
            ViewerTokenError::Expired {
                token_id: expired.token_id
            }
        );
        for junk in ["tlv_", "tlv_x.y", "tlv_e30.AAAA", &"tlv_a".repeat(2000)] {
            assert!(read(junk).is_err(), "{junk}");
        }
    }
}
