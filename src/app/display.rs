//! Display templates: a tenant's admin sets a sentence per action (or `prefix.*`); every event
//! read renders by the tenant's templates, remembered briefly on each instance so a page of
//! events costs no query for them. A change is recorded in tenant `_traceledger`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::own_trail::{Actor, OwnTrail};
use super::ApiError;
use crate::access::auth::Principal;
use crate::domain::{
    check_action_pattern, generic_sentence, template_for, ActionPattern, AuditEvent,
    DisplayTemplate, Tenant,
};
use crate::store::{Store, StoredTemplate};

/// How long an instance uses the templates it read before reading them again: how long a change
/// made on another instance takes to show.
const TEMPLATES_FRESH_FOR: Duration = Duration::from_secs(5);
/// Tenants whose templates one instance remembers.
const MAX_CACHED_TENANTS: usize = 10_000;
/// Templates one tenant may set.
pub const MAX_TEMPLATES: usize = 1000;

type Templates = Arc<Vec<(ActionPattern, DisplayTemplate)>>;

#[derive(Clone)]
pub struct DisplayTemplates {
    store: Store,
    trail: OwnTrail,
    cached: Arc<quick_cache::sync::Cache<Tenant, (Templates, Instant)>>,
}

impl DisplayTemplates {
    pub fn new(store: Store, trail: OwnTrail) -> Self {
        Self {
            store,
            trail,
            cached: Arc::new(quick_cache::sync::Cache::new(MAX_CACHED_TENANTS)),
        }
    }

    /// `event` as a sentence: by its tenant's template for its action, else a generic one (also
    /// while the templates cannot be read: a sentence is never worth a failed read).
    pub async fn render(&self, event: &AuditEvent) -> String {
        let tenant = Tenant::stored(&event.tenant);
        match self.templates(&tenant).await {
            Ok(templates) => match template_for(&templates, &event.action) {
                Some(template) => template.render(event),
                None => generic_sentence(event),
            },
            Err(error) => {
                tracing::warn!(%error, "display templates unreadable; generic sentence used");
                generic_sentence(event)
            }
        }
    }

    /// The caller's tenant's templates, by action pattern.
    pub async fn list(&self, tenant: &Tenant) -> Result<Vec<StoredTemplate>, ApiError> {
        Ok(self.store.display_templates(tenant).await?)
    }

    /// Sets (or, with `None`, removes) the template of `action` for the caller's tenant.
    pub async fn set(
        &self,
        caller: &Principal,
        action: &str,
        template: Option<&str>,
    ) -> Result<Option<StoredTemplate>, ApiError> {
        check_action_pattern(action).map_err(|e| ApiError::bad_input("action", e.message))?;
        if let Some(template) = template {
            DisplayTemplate::parse(template)
                .map_err(|e| ApiError::bad_input(e.field, e.message))?;
            let existing = self.store.display_templates(&caller.tenant).await?;
            if existing.len() >= MAX_TEMPLATES && !existing.iter().any(|t| t.action == action) {
                return Err(ApiError::bad_input(
                    "action",
                    format!("a tenant has at most {MAX_TEMPLATES} templates"),
                ));
            }
        }
        let stored = self
            .store
            .set_display_template(&caller.tenant, action, template)
            .await?;
        self.cached.remove(&caller.tenant);
        self.trail
            .action(
                Actor::Caller(caller),
                "display_template.set",
                Some(("display_template", action)),
                match template {
                    Some(_) => format!("display template of {action} set"),
                    None => format!("display template of {action} removed"),
                },
                json!({ "tenant": caller.tenant, "action": action, "template": template }),
            )
            .await?;
        Ok(stored)
    }

    async fn templates(&self, tenant: &Tenant) -> Result<Templates, ApiError> {
        if let Some((templates, at)) = self.cached.get(tenant) {
            if at.elapsed() < TEMPLATES_FRESH_FOR {
                return Ok(templates);
            }
        }
        let stored = self.store.display_templates(tenant).await?;
        // Stored templates were checked when set; one that no longer parses is skipped.
        let templates: Templates = Arc::new(
            stored
                .iter()
                .filter_map(|t| {
                    Some((
                        ActionPattern::parse(&t.action),
                        DisplayTemplate::parse(&t.template).ok()?,
                    ))
                })
                .collect(),
        );
        self.cached
            .insert(tenant.clone(), (Arc::clone(&templates), Instant::now()));
        Ok(templates)
    }
}
