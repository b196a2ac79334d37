//! `search`: full-text search over the caller's events.

use async_graphql::{Context, ErrorExtensions, Object};

use super::error::ApiError;
use super::guard::tenant;
use super::inputs::AuditEventFilter;
use super::types::SearchConnection;
use crate::auth::Scope;

#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Full-text search over the caller's events.
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        filter: Option<AuditEventFilter>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<SearchConnection> {
        tenant(ctx, Scope::EventsRead).map_err(|e| e.extend())?;
        let _ = (query, filter, first, after);
        Err(
            ApiError::Unavailable("full-text search is not available in this version".into())
                .extend(),
        )
    }
}
