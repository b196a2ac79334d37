//! The Elasticsearch backend: one index per month (`<prefix>-YYYY.MM`) behind the alias
//! `<prefix>`, with explicit mappings from an index template; document id = event id, so indexing
//! an event twice changes nothing. Searches ask for ids, scores, sort values and highlights only
//! (the events themselves come from the event store) and page with `search_after`.
//!
//! Here: the client and the search itself; `index` writes (template, bulk, documents), `query`
//! translates a search into the query DSL, `cursor` is the position a page continues from.

mod cursor;
mod index;
mod query;

use std::time::Duration;

use chrono::Datelike;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Url;
use elasticsearch::{Elasticsearch, SearchParts};
use serde_json::{json, Value};
use uuid::Uuid;

pub use index::BulkOutcome;

use super::{SearchBackend, SearchError, SearchHit, SearchPage, SearchRequest, SearchSettings};
use crate::domain::{AuditEvent, EXACT_TOTAL_UP_TO};
use crate::store::MatchCount;
use cursor::{sort_json, SortPosition};
use query::query_json;

/// Highlight fragments per hit, and their length in characters.
const HIGHLIGHT_FRAGMENTS: u32 = 3;
const HIGHLIGHT_FRAGMENT_SIZE: u32 = 150;
/// Elasticsearch's default `index.max_result_window`: the most hits one search may reach.
const MAX_RESULT_WINDOW: usize = 10_000;
/// Above the built-in templates' priorities, so ours decides our indices' mappings.
const TEMPLATE_PRIORITY: u32 = 200;

#[derive(Clone)]
pub struct ElasticSearch {
    client: Elasticsearch,
    prefix: String,
}

impl ElasticSearch {
    /// A client for the configured URL, or None when no Elasticsearch is configured. Connects
    /// lazily: an unreachable cluster is found out by the first request.
    pub fn connect(settings: &SearchSettings) -> Result<Option<Self>, SearchError> {
        let Some(url) = settings.elasticsearch_url.as_deref() else {
            return Ok(None);
        };
        let url = Url::parse(url).map_err(|e| SearchError::Elastic(format!("bad URL: {e}")))?;
        let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()
            .map_err(|e| SearchError::Elastic(e.to_string()))?;
        Ok(Some(Self {
            client: Elasticsearch::new(transport),
            prefix: settings.index_prefix.clone(),
        }))
    }

    /// The index an event lives in: the month it occurred.
    fn index_for(&self, event: &AuditEvent) -> String {
        let at = event.occurred_at;
        format!("{}-{:04}.{:02}", self.prefix, at.year(), at.month())
    }
}

impl SearchBackend for ElasticSearch {
    async fn search(&self, request: &SearchRequest<'_>) -> Result<SearchPage, SearchError> {
        let after = match request.after.map(SortPosition::decode).transpose()? {
            Some(cursor) => Some(self.reanchor(request, cursor).await?),
            None => None,
        };
        // Hits of the cursor's score that the previous pages already served come again (see
        // `SortPosition::search_after`) and are skipped here; fetch enough to get past them.
        let mut extra = if after.is_some() {
            request.first + 1
        } else {
            0
        };
        loop {
            let size = request.first + 1 + extra;
            let response = self.search_page(request, after.as_ref(), size).await?;
            // Counted up to the limit (`track_total_hits`); "gte" beyond it.
            let total = MatchCount {
                count: response["hits"]["total"]["value"]
                    .as_u64()
                    .unwrap_or_default(),
                estimate: response["hits"]["total"]["relation"] == "gte",
            };
            let raw_hits = response["hits"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let exhausted = raw_hits.len() < size;
            let fresh: Vec<Value> = raw_hits
                .into_iter()
                .filter(|hit| {
                    after
                        .as_ref()
                        .is_none_or(|a| !a.served(hit, request.backwards))
                })
                .collect();
            if fresh.len() > request.first || exhausted || size >= MAX_RESULT_WINDOW {
                let has_more = fresh.len() > request.first;
                let mut hits = fresh
                    .into_iter()
                    .take(request.first)
                    .map(to_hit)
                    .collect::<Result<Vec<_>, _>>()?;
                if request.backwards {
                    hits.reverse();
                }
                return Ok(SearchPage {
                    hits,
                    has_more,
                    total,
                });
            }
            extra = (extra * 2).min(MAX_RESULT_WINDOW - request.first - 1);
        }
    }
}

impl ElasticSearch {
    /// The cursor's event where it ranks now. Scores are relative to the whole index (BM25's
    /// term and length statistics), so every event indexed since the previous page, any
    /// tenant's, shifts them, and a score kept in the cursor no longer points between the
    /// same two hits. Asking again for the cursor's own event gives its current score; its
    /// time and id never change. If the event is not found (its index was deleted or rebuilt
    /// without it), the cursor is used as it was.
    async fn reanchor(
        &self,
        request: &SearchRequest<'_>,
        cursor: SortPosition,
    ) -> Result<SortPosition, SearchError> {
        let mut query = query_json(request.tenant, request.query, request.filter);
        if let Some(filter) = query["bool"]["filter"].as_array_mut() {
            filter.push(json!({ "term": { "id": cursor.id } }));
        }
        let body = json!({
            "query": query,
            "sort": sort_json(false),
            "size": 1,
            "_source": false,
        });
        let response = self.send_search(body).await?;
        Ok(response["hits"]["hits"]
            .get(0)
            .and_then(SortPosition::of)
            .unwrap_or(cursor))
    }

    async fn search_page(
        &self,
        request: &SearchRequest<'_>,
        after: Option<&SortPosition>,
        size: usize,
    ) -> Result<Value, SearchError> {
        let mut body = json!({
            "query": query_json(request.tenant, request.query, request.filter),
            "sort": sort_json(request.backwards),
            "size": size,
            "track_total_hits": EXACT_TOTAL_UP_TO,
            "_source": false,
            "highlight": {
                "encoder": "html",
                "pre_tags": ["<em>"],
                "post_tags": ["</em>"],
                "fields": { "message": {
                    "number_of_fragments": HIGHLIGHT_FRAGMENTS,
                    "fragment_size": HIGHLIGHT_FRAGMENT_SIZE,
                } }
            }
        });
        if let Some(after) = after {
            body["search_after"] = after.search_after(request.backwards);
        }
        self.send_search(body).await
    }

    async fn send_search(&self, body: Value) -> Result<Value, SearchError> {
        let indices = [self.prefix.as_str()];
        Ok(self
            .client
            .search(SearchParts::Index(&indices))
            // Before the first event is indexed the alias does not exist: no hits, not an error.
            .ignore_unavailable(true)
            .allow_no_indices(true)
            .body(body)
            .send()
            .await?
            .error_for_status_code()?
            .json()
            .await?)
    }
}

fn to_hit(hit: Value) -> Result<SearchHit, SearchError> {
    let malformed = || SearchError::Elastic(format!("unexpected hit: {hit}"));
    let id = hit["_id"]
        .as_str()
        .and_then(|id| Uuid::try_parse(id).ok())
        .ok_or_else(malformed)?;
    let sort = hit
        .get("sort")
        .filter(|s| s.is_array())
        .ok_or_else(malformed)?;
    let highlights = hit["highlight"]["message"]
        .as_array()
        .map(|fragments| {
            fragments
                .iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(SearchHit {
        id,
        score: hit["_score"].as_f64().or_else(|| sort[0].as_f64()),
        cursor: sort.to_string(),
        highlights,
    })
}
