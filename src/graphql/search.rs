//! `search`: full-text search over the caller's events. The search backend finds ids, scores
//! and highlights; the events come through the same loader as `auditEvents`, so every hit is the
//! canonical stored event. The backend that answered is reported in
//! `extensions.searchBackend` ("elasticsearch" or "postgres").

use std::sync::{Arc, Mutex};

use async_graphql::dataloader::DataLoader;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest,
};
use async_graphql::{Context, ErrorExtensions, Object, Request, Response, ServerResult, Value};

use super::error::ApiError;
use super::guard::reader;
use super::inputs::AuditEventFilter;
use super::loader::EventLoader;
use super::query::parse_filter;
use super::types::{AuditEvent, PageInfo, SearchConnection, SearchHit};
use super::Services;
use crate::app::reads::{self, PageRequest};
use crate::search::BackendKind;

/// The response extension naming the backend that answered.
const BACKEND_EXTENSION: &str = "searchBackend";

#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Full-text search over the caller's events, best first. Pages go forwards (`first` after
    /// the cursor `after`) or backwards (`last` before the cursor `before`; `first` is then not
    /// used), in the same order either way.
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        filter: Option<AuditEventFilter>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<SearchConnection> {
        let request = PageRequest {
            first,
            after: after.as_deref(),
            last,
            before: before.as_deref(),
        };
        search(ctx, &query, filter, request)
            .await
            .map_err(|e| e.extend())
    }
}

async fn search(
    ctx: &Context<'_>,
    query: &str,
    filter: Option<AuditEventFilter>,
    request: PageRequest<'_>,
) -> Result<SearchConnection, ApiError> {
    let (tenant, filter) = reader(ctx, parse_filter(filter))?;
    let services = ctx.data_unchecked::<Arc<Services>>();
    let loader = ctx.data_unchecked::<DataLoader<EventLoader>>();
    let found = reads::search(services, loader, &tenant, query, filter, request).await?;
    if let Some(answered) = ctx.data_opt::<AnsweredBy>() {
        answered.set(found.backend);
    }
    Ok(SearchConnection {
        hits: found
            .hits
            .into_iter()
            .map(|hit| SearchHit {
                cursor: hit.cursor,
                score: hit.score,
                event: AuditEvent::from(hit.event),
                highlights: hit.highlights,
            })
            .collect(),
        page_info: PageInfo {
            has_next_page: found.has_next_page,
            has_previous_page: found.has_previous_page,
            start_cursor: found.start_cursor,
            end_cursor: found.end_cursor,
        },
        total: i32::try_from(found.total.count).unwrap_or(i32::MAX),
        total_count: found.total.count,
        total_count_is_estimate: found.total.estimate,
    })
}

#[derive(Clone, Default)]
struct AnsweredBy(Arc<Mutex<Option<BackendKind>>>);

impl AnsweredBy {
    fn set(&self, backend: BackendKind) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(backend);
    }

    fn get(&self) -> Option<BackendKind> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Adds `extensions.searchBackend` to responses whose request searched.
pub struct SearchBackendReport;

impl ExtensionFactory for SearchBackendReport {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(BackendReport::default())
    }
}

#[derive(Default)]
struct BackendReport {
    answered: AnsweredBy,
}

#[async_graphql::async_trait::async_trait]
impl Extension for BackendReport {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        next.run(ctx, request.data(self.answered.clone())).await
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        if let Some(backend) = self.answered.get() {
            response
                .extensions
                .insert(BACKEND_EXTENSION.to_owned(), Value::from(backend.as_str()));
        }
        response
    }
}
