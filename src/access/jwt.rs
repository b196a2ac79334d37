//! JWTs for admin frontends: `Authorization: Bearer <JWT>` signed with a configured HS256 secret
//! or RS256 key pair, with expiry, issuer and audience checked; the tenant and the roles come from
//! configurable claims, and roles map to scopes.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::access::principal::{Credential, Principal, RateOverrides, Scope};
use crate::domain::{Tenant, SYSTEM_TENANT};

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

/// How JWTs from admin frontends are verified and read; JWTs are off unless a key is set.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "JWTs")]
pub struct JwtSettings {
    /// HS256 secret that JWTs from admin frontends are signed with (or use an RS256 key).
    #[arg(
        value_name = "HS256_SECRET",
        id = "jwt-hs256-secret",
        long = "jwt-hs256-secret",
        env = "TRACELEDGER_JWT_HS256_SECRET",
        hide_env_values = true
    )]
    pub hs256_secret: Option<String>,

    /// PEM file of the RSA public key that RS256 JWTs are verified with.
    #[arg(
        value_name = "RS256_PUBLIC_KEY_FILE",
        id = "jwt-rs256-public-key-file",
        long = "jwt-rs256-public-key-file",
        env = "TRACELEDGER_JWT_RS256_PUBLIC_KEY_FILE"
    )]
    pub rs256_public_key_file: Option<std::path::PathBuf>,

    /// The `iss` a JWT must carry (required when JWTs are configured).
    #[arg(
        value_name = "ISSUER",
        id = "jwt-issuer",
        long = "jwt-issuer",
        env = "TRACELEDGER_JWT_ISSUER"
    )]
    pub issuer: Option<String>,

    /// The `aud` a JWT must carry (required when JWTs are configured).
    #[arg(
        value_name = "AUDIENCE",
        id = "jwt-audience",
        long = "jwt-audience",
        env = "TRACELEDGER_JWT_AUDIENCE"
    )]
    pub audience: Option<String>,

    /// Clock skew tolerated on a JWT's `exp` and `nbf`, in seconds: a websocket opened with a
    /// token is closed this long after the token expires.
    #[arg(
        value_name = "LEEWAY_SECS",
        id = "jwt-leeway-secs",
        long = "jwt-leeway-secs",
        env = "TRACELEDGER_JWT_LEEWAY_SECS",
        default_value_t = 30
    )]
    pub leeway_secs: u64,

    /// Whether a JWT may name the system tenant `_traceledger` (the service's own trail).
    #[arg(
        value_name = "ALLOW_SYSTEM_TENANT",
        id = "jwt-allow-system-tenant",
        long = "jwt-allow-system-tenant",
        env = "TRACELEDGER_JWT_ALLOW_SYSTEM_TENANT",
        default_value_t = false
    )]
    pub allow_system_tenant: bool,

    /// The JWT claim naming the tenant the caller acts for.
    #[arg(
        value_name = "TENANT_CLAIM",
        id = "jwt-tenant-claim",
        long = "jwt-tenant-claim",
        env = "TRACELEDGER_JWT_TENANT_CLAIM",
        default_value = "tenant"
    )]
    pub tenant_claim: String,

    /// The JWT claim listing the caller's roles (an array, or a space-separated string).
    #[arg(
        value_name = "ROLES_CLAIM",
        id = "jwt-roles-claim",
        long = "jwt-roles-claim",
        env = "TRACELEDGER_JWT_ROLES_CLAIM",
        default_value = "roles"
    )]
    pub roles_claim: String,

    /// What each role may do, as ROLE=SCOPE entries; a role named like a scope always grants it.
    #[arg(
        value_name = "ROLE_SCOPES",
        id = "jwt-role-scopes",
        long = "jwt-role-scopes",
        env = "TRACELEDGER_JWT_ROLE_SCOPES",
        value_delimiter = ',',
        default_value = "admin=admin,admin=events:read,auditor=events:read,writer=events:write"
    )]
    pub role_scopes: Vec<String>,
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
    /// The verifier the settings ask for, or `None` when JWTs are not configured.
    pub fn new(settings: &JwtSettings) -> Result<Option<Self>, JwtConfigError> {
        let (key, algorithm) = match (&settings.hs256_secret, &settings.rs256_public_key_file) {
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
        let (Some(issuer), Some(audience)) = (&settings.issuer, &settings.audience) else {
            return Err(JwtConfigError::MissingIssuerOrAudience);
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = settings.leeway_secs;
        validation.validate_nbf = true;
        let mut role_scopes: HashMap<String, Vec<Scope>> = HashMap::new();
        // A role named like a scope grants that scope.
        for scope in Scope::ALL {
            role_scopes.insert(scope.as_str().to_owned(), vec![scope]);
        }
        for entry in &settings.role_scopes {
            let (role, scope) = entry
                .split_once('=')
                .and_then(|(role, scope)| Some((role, Scope::parse(scope)?)))
                .ok_or_else(|| JwtConfigError::BadRoleMap(entry.clone()))?;
            role_scopes.entry(role.to_owned()).or_default().push(scope);
        }
        Ok(Some(Self {
            key,
            validation,
            tenant_claim: settings.tenant_claim.clone(),
            roles_claim: settings.roles_claim.clone(),
            role_scopes,
            allow_system_tenant: settings.allow_system_tenant,
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
        let tenant = Tenant::parse(tenant).map_err(|e| JwtError::BadTenant(e.message))?;
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
            tenant,
            credential: Credential::Token {
                subject: subject.to_owned(),
            },
            scopes,
            rates: RateOverrides::default(),
            expires_at,
            view: None,
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
