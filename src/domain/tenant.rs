//! Tenant names: the one rule every entrance applies (API keys minted by the CLI, a JWT's tenant
//! claim), so that `" acme"` or `"ACME"` can never silently become a tenant beside `acme`; and
//! [`Tenant`], the type a checked name travels as.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use super::validate::FieldError;

/// The tenant the service records its own activity in; no other tenant may start with `_`.
pub const SYSTEM_TENANT: &str = "_traceledger";
pub const MAX_TENANT_LEN: usize = 64;

/// `[a-z0-9][a-z0-9._-]*`, at most 64 characters, or the system tenant.
pub fn check_tenant(name: &str) -> Result<(), FieldError> {
    const FIELD: &str = "tenant";
    if name == SYSTEM_TENANT {
        return Ok(());
    }
    if name.is_empty() || name.len() > MAX_TENANT_LEN {
        return Err(FieldError::new(
            FIELD,
            format!("must be 1 to {MAX_TENANT_LEN} characters"),
        ));
    }
    let well_formed = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if !well_formed {
        return Err(FieldError::new(
            FIELD,
            "must be lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        ));
    }
    Ok(())
}

/// A tenant every read and write of a request is scoped to: checked by [`check_tenant`] where it
/// enters (a key minted, a JWT's claim), or read back from our own store, which only ever took
/// checked names. Cheap to clone; reads as a `&str`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(Arc<str>);

impl Tenant {
    /// `name` if it is one: the rule of [`check_tenant`].
    pub fn parse(name: &str) -> Result<Self, FieldError> {
        check_tenant(name)?;
        Ok(Self(name.into()))
    }

    /// A tenant name as our store keeps it (checked when it was written).
    pub fn stored(name: &str) -> Self {
        Self(name.into())
    }

    /// The service's own tenant.
    pub fn system() -> Self {
        Self(SYSTEM_TENANT.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Tenant {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Tenant {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Tenant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl PartialEq<str> for Tenant {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Tenant {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Tenant {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_tenant() {
        for good in ["acme", "default", "globex-2", "eu.acme_prod", SYSTEM_TENANT] {
            assert!(check_tenant(good).is_ok(), "{good}");
        }
        for bad in [
            "", " acme", "acme ", "ACME", "Acme", "_other", "-acme", "ac me", "a\0b", "é",
        ] {
            assert!(check_tenant(bad).is_err(), "{bad:?}");
        }
        assert!(check_tenant(&"a".repeat(MAX_TENANT_LEN)).is_ok());
        assert!(check_tenant(&"a".repeat(MAX_TENANT_LEN + 1)).is_err());
        assert_eq!(Tenant::parse("acme").unwrap(), "acme");
        assert!(Tenant::parse("ACME").is_err());
    }
}
