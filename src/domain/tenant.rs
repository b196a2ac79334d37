//! Tenant names: the one rule every entrance applies (API keys minted by the CLI, a JWT's tenant
//! claim), so that `" acme"` or `"ACME"` can never silently become a tenant beside `acme`.

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
    }
}
