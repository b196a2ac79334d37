//! JWTs for admin frontends: `Authorization: Bearer <JWT>` signed with a configured HS256 secret
//! or RS256 key pair, with expiry, issuer and audience checked; the tenant and the roles come from
//! configurable claims, and roles map to scopes.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::auth::{Credential, Principal, RateOverrides, Scope};
use crate::config::Config;
use crate::domain::{check_tenant, SYSTEM_TENANT};

#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("configure either an HS256 secret or an RS256 public key for JWTs, not both")]
    BothKeys,
    #[error("JWTs need an issuer and an audience to check (--jwt-issuer, --jwt-audience)")]
    MissingIssuerOrAudience,
    #[error("cannot read the RS256 public key: {0}")]
    ReadKey(#[from] std::io::Error),
    #[error("the RS256 public key is not a PEM RSA public key: {0}")]
    BadKey(jsonwebtoken::errors::Error),
    #[error("--jwt-role-scopes entry {0:?} is not ROLE=SCOPE with a known scope")]
    BadRoleMap(String),
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's issuer is not accepted")]
    Issuer,
    #[error("the token's audience is not accepted")]
    Audience,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token names no tenant in claim {0:?}")]
    NoTenant(String),
    #[error("the token's tenant is not a tenant name: {0}")]
    BadTenant(String),
    #[error("tokens may not act in the system tenant")]
    SystemTenant,
    #[error("the token has no subject")]
    NoSubject,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
}

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    tenant_claim: String,
    roles_claim: String,
    role_scopes: HashMap<String, Vec<Scope>>,
    /// Whether a token may act in the system tenant (read the service's own trail).
    allow_system_tenant: bool,
}

impl JwtVerifier {
    /// The verifier the configuration asks for, or `None` when JWTs are not configured.
    pub fn from_config(config: &Config) -> Result<Option<Self>, JwtConfigError> {
        let (key, algorithm) = match (&config.jwt_hs256_secret, &config.jwt_rs256_public_key_file) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => return Err(JwtConfigError::BothKeys),
            (Some(secret), None) => (
                DecodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            ),
            (None, Some(path)) => {
                let pem = std::fs::read(path)?;
                let key = DecodingKey::from_rsa_pem(&pem).map_err(JwtConfigError::BadKey)?;
                (key, Algorithm::RS256)
            }
        };
        let (Some(issuer), Some(audience)) = (&config.jwt_issuer, &config.jwt_audience) else {
            return Err(JwtConfigError::MissingIssuerOrAudience);
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = config.jwt_leeway_secs;
        validation.validate_nbf = true;
        let mut role_scopes: HashMap<String, Vec<Scope>> = HashMap::new();
        // A role named like a scope grants that scope.
        for scope in Scope::ALL {
            role_scopes.insert(scope.as_str().to_owned(), vec![scope]);
        }
        for entry in &config.jwt_role_scopes {
            let (role, scope) = entry
                .split_once('=')
                .and_then(|(role, scope)| Some((role, Scope::parse(scope)?)))
                .ok_or_else(|| JwtConfigError::BadRoleMap(entry.clone()))?;
            role_scopes.entry(role.to_owned()).or_default().push(scope);
        }
        Ok(Some(Self {
            key,
            validation,
            tenant_claim: config.jwt_tenant_claim.clone(),
            roles_claim: config.jwt_roles_claim.clone(),
            role_scopes,
            allow_system_tenant: config.jwt_allow_system_tenant,
        }))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, JwtError> {
        // The header is checked first so a token of another algorithm says so plainly. What
        // the library says of a bad token stays in the log: it is no business of the caller's.
        let header = decode_header(token).map_err(|e| {
            tracing::debug!(error = %e, "unreadable token header");
            match e.kind() {
                // An algorithm name the library does not know, such as "none".
                ErrorKind::Json(_) => JwtError::Algorithm,
                _ => JwtError::Malformed,
            }
        })?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(JwtError::Algorithm);
        }
        let claims = decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => JwtError::Expired,
                ErrorKind::ImmatureSignature => JwtError::NotYetValid,
                ErrorKind::InvalidIssuer => JwtError::Issuer,
                ErrorKind::InvalidAudience => JwtError::Audience,
                ErrorKind::InvalidSignature => JwtError::Signature,
                ErrorKind::MissingRequiredClaim(claim) if claim == "sub" => JwtError::NoSubject,
                _ => {
                    tracing::debug!(error = %e, "token refused");
                    JwtError::Malformed
                }
            })?
            .claims;
        // When the token stops being accepted (its `exp`, which is required, plus the leeway):
        // a websocket opened with it closes then.
        let expires_at = claims.get("exp").and_then(Value::as_u64).map(|exp| {
            UNIX_EPOCH + Duration::from_secs(exp.saturating_add(self.validation.leeway))
        });
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(JwtError::NoSubject)?;
        let tenant = claims
            .get(&self.tenant_claim)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| JwtError::NoTenant(self.tenant_claim.clone()))?;
        check_tenant(tenant).map_err(|e| JwtError::BadTenant(e.message))?;
        if tenant == SYSTEM_TENANT && !self.allow_system_tenant {
            return Err(JwtError::SystemTenant);
        }
        let mut scopes: Vec<Scope> = roles(claims.get(&self.roles_claim))
            .filter_map(|role| self.role_scopes.get(role))
            .flatten()
            .copied()
            .collect();
        scopes.sort_by_key(|s| s.as_str());
        scopes.dedup();
        Ok(Principal {
            tenant: tenant.to_owned(),
            credential: Credential::Token {
                subject: subject.to_owned(),
            },
            scopes,
            rates: RateOverrides::default(),
            expires_at,
        })
    }
}

impl JwtVerifier {
    /// The subject of a token that verifies in every way but its expiry, for the audit trail of
    /// the refusal.
    pub fn expired_subject(&self, token: &str) -> Option<String> {
        let mut validation = self.validation.clone();
        validation.validate_exp = false;
        let claims = decode::<Map<String, Value>>(token, &self.key, &validation)
            .ok()?
            .claims;
        claims.get("sub").and_then(Value::as_str).map(str::to_owned)
    }
}

/// Roles as a JSON array of strings or one space-separated string (as OAuth's `scope` is).
fn roles(claim: Option<&Value>) -> Box<dyn Iterator<Item = &str> + '_> {
    match claim {
        Some(Value::Array(items)) => Box::new(items.iter().filter_map(Value::as_str)),
        Some(Value::String(s)) => Box::new(s.split_whitespace()),
        _ => Box::new(std::iter::empty()),
    }
}
