//! `search`: full-text search over the caller's events.

use async_graphql::{ErrorExtensions, Object};

use super::error::ApiError;
use super::inputs::AuditEventFilter;
use super::types::SearchConnection;

#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Full-text search over the caller's events.
    async fn search(
        &self,
        query: String,
        filter: Option<AuditEventFilter>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<SearchConnection> {
        let _ = (query, filter, first, after);
        Err(
            ApiError::Unavailable("full-text search is not available in this version".into())
                .extend(),
        )
    }
}
