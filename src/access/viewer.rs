//! Viewer tokens: short-lived credentials a tenant's backend mints for one of its own customers'
//! browsers, that read one group's events (one actor's, if the token names one) and nothing
//! else. A token is its claims and an HMAC-SHA256 of them under the tenant's viewer key, so it
//! is verified without a query (the key is remembered like a verified API key); rotating the
//! tenant's key revokes every token minted before.
//!
//! Form: `tlv_<claims, base64url JSON>.<HMAC, base64url>`; the prefix lets secret scanners spot
//! a leaked one, and the MAC covers the prefix and the claims as sent.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::domain::{Tenant, ViewScope};

pub const VIEWER_TOKEN_PREFIX: &str = "tlv_";
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
