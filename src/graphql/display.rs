//! Display templates for admins: `displayTemplates` and `setDisplayTemplate`. What they make,
//! `AuditEvent.displayText`, is on the event.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Object, SimpleObject};

use super::error::ApiError;
use super::guard::principal;
use super::scalars::DateTime;
use super::Services;
use crate::access::auth::Scope;
use crate::store::StoredTemplate;

/// A tenant's sentence for an action.
#[derive(SimpleObject)]
pub struct DisplayTemplate {
    /// An action name, or `prefix.*` for every action under the prefix (an exact name wins, then
    /// the longest prefix).
    action: String,
    /// Text and `{{field}}` placeholders: action, service, outcome, severity, crud, message,
    /// tenant, actor.id, actor.type, actor.name, target.id, target.type, target.name, group.id,
    /// group.name.
    template: String,
    updated_at: DateTime,
}

impl From<StoredTemplate> for DisplayTemplate {
    fn from(t: StoredTemplate) -> Self {
        Self {
            action: t.action,
            template: t.template,
            updated_at: DateTime(t.updated_at),
        }
    }
}

#[derive(Default)]
pub struct DisplayQuery;

#[Object]
impl DisplayQuery {
    /// The caller's tenant's display templates, by action (admin scope).
    async fn display_templates(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<DisplayTemplate>> {
        let run = async {
            let caller = principal(ctx, Scope::Admin)?;
            let services = ctx.data_unchecked::<Arc<Services>>();
            let templates = services.display.list(&caller.tenant).await?;
            Ok::<_, ApiError>(templates.into_iter().map(Into::into).collect())
        };
        run.await.map_err(|e| e.extend())
    }
}

#[derive(Default)]
pub struct DisplayMutation;

#[Object]
impl DisplayMutation {
    /// Sets the sentence `AuditEvent.displayText` gives events of `action` (a name, or
    /// `prefix.*`) in the caller's tenant (admin scope); a null `template` removes it. The
    /// sentence is HTML-escaped and a field the event lacks renders empty; other instances use
    /// the change within 5 seconds.
    async fn set_display_template(
        &self,
        ctx: &Context<'_>,
        action: String,
        template: Option<String>,
    ) -> async_graphql::Result<Option<DisplayTemplate>> {
        let run = async {
            let caller = principal(ctx, Scope::Admin)?;
            let services = ctx.data_unchecked::<Arc<Services>>();
            let stored = services
                .display
                .set(caller, &action, template.as_deref())
                .await?;
            Ok::<_, ApiError>(stored.map(Into::into))
        };
        run.await.map_err(|e| e.extend())
    }
}
