//! Full-text search behind one trait, with two backends: Elasticsearch (production) and the
//! PostgreSQL full-text column (the default, and the fallback). [`Searcher`] picks the backend
//! for each request: Elasticsearch when configured and its circuit breaker is closed, PostgreSQL
//! otherwise or when Elasticsearch fails. Backends return ids, scores, cursors and highlights;
//! the caller loads the events themselves from the event store.

pub mod elastic;
mod postgres;

use crate::breaker::{Breaker, BreakerState};
use std::future::Future;
use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use uuid::Uuid;

pub use elastic::ElasticSearch;
pub use postgres::PostgresSearch;

use crate::domain::{EventFilter, SearchQuery};
use crate::store::{MatchCount, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("not a cursor this API issued")]
    BadCursor,
    #[error("the search index that issued this cursor is unavailable; start the search again")]
    CursorBackendUnavailable,
    #[error("Elasticsearch: {0}")]
    Elastic(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<elasticsearch::Error> for SearchError {
    fn from(e: elasticsearch::Error) -> Self {
        SearchError::Elastic(e.to_string())
    }
}

/// Which backend answered, as reported to clients in `extensions.searchBackend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Elasticsearch,
    Postgres,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Elasticsearch => "elasticsearch",
            BackendKind::Postgres => "postgres",
        }
    }

    /// The tag that starts this backend's cursors, so a page continues where it began.
    fn cursor_tag(self) -> char {
        match self {
            BackendKind::Elasticsearch => 'e',
            BackendKind::Postgres => 'p',
        }
    }
}

/// What to search for: the caller's tenant, the parsed query, the filter, and the page.
pub struct SearchRequest<'a> {
    pub tenant: &'a str,
    pub query: &'a SearchQuery,
    pub filter: &'a EventFilter,
    /// The page's size.
    pub first: usize,
    /// The backend's own cursor payload (without the backend tag): the page lies after it, or
    /// with `backwards`, before it.
    pub after: Option<&'a str>,
    /// The page before the cursor (Relay's `last`/`before`), in the same order: the hits that
    /// rank just above it.
    pub backwards: bool,
}

pub struct SearchHit {
    pub id: Uuid,
    pub score: Option<f64>,
    /// The backend's own cursor payload; [`Searcher`] makes it opaque.
    pub cursor: String,
    /// Message fragments, HTML-escaped, with the matches wrapped in `<em>…</em>`.
    pub highlights: Vec<String>,
}

pub struct SearchPage {
    /// Best first, whichever way the page was taken.
    pub hits: Vec<SearchHit>,
    /// Whether more hits lie beyond the page the way it was taken (after it, or before it).
    pub has_more: bool,
    /// All the hits, in all pages: exact up to `EXACT_TOTAL_UP_TO`, flagged as an estimate
    /// beyond.
    pub total: MatchCount,
}

/// A search backend: same shape for each, so the searcher can fall back from one to the other.
pub trait SearchBackend {
    fn search(
        &self,
        request: &SearchRequest<'_>,
    ) -> impl Future<Output = Result<SearchPage, SearchError>> + Send;
}

/// Elasticsearch, if any, and how search and the indexer treat it.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Elasticsearch")]
pub struct SearchSettings {
    /// Elasticsearch (8+) for search. Unset: PostgreSQL full-text search answers alone.
    #[arg(
        value_name = "ELASTICSEARCH_URL",
        id = "elasticsearch-url",
        long = "elasticsearch-url",
        env = "TRACELEDGER_ELASTICSEARCH_URL"
    )]
    pub elasticsearch_url: Option<String>,

    /// Names the alias searched, the index template, and the monthly indices (`<prefix>-YYYY.MM`).
    #[arg(
        value_name = "INDEX_PREFIX",
        id = "elasticsearch-index-prefix",
        long = "elasticsearch-index-prefix",
        env = "TRACELEDGER_ELASTICSEARCH_INDEX_PREFIX",
        default_value = "traceledger-events"
    )]
    pub index_prefix: String,

    /// How long one Elasticsearch request may take before it counts as a failure.
    #[arg(
        value_name = "TIMEOUT_MS",
        id = "elasticsearch-timeout-ms",
        long = "elasticsearch-timeout-ms",
        env = "TRACELEDGER_ELASTICSEARCH_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub timeout_ms: u64,

    /// Consecutive Elasticsearch failures after which search stops asking it…
    #[arg(
        value_name = "BREAKER_FAILURES",
        id = "search-breaker-failures",
        long = "search-breaker-failures",
        env = "TRACELEDGER_SEARCH_BREAKER_FAILURES",
        default_value_t = 3
    )]
    pub breaker_failures: u32,

    /// …and answers from PostgreSQL this long before one request probes Elasticsearch again.
    #[arg(
        value_name = "BREAKER_COOLDOWN_MS",
        id = "search-breaker-cooldown-ms",
        long = "search-breaker-cooldown-ms",
        env = "TRACELEDGER_SEARCH_BREAKER_COOLDOWN_MS",
        default_value_t = 30_000
    )]
    pub breaker_cooldown_ms: u64,

    /// Events the indexer sends to Elasticsearch in one `_bulk` request.
    #[arg(
        value_name = "INDEX_BATCH_SIZE",
        id = "index-batch-size",
        long = "index-batch-size",
        env = "TRACELEDGER_INDEX_BATCH_SIZE",
        default_value_t = 500
    )]
    pub index_batch_size: usize,

    /// How often the indexer looks for newly stored events when it has caught up.
    #[arg(
        value_name = "INDEX_POLL_MS",
        id = "index-poll-ms",
        long = "index-poll-ms",
        env = "TRACELEDGER_INDEX_POLL_MS",
        default_value_t = 200
    )]
    pub index_poll_ms: u64,
}

impl SearchSettings {
    /// Whether stored events must be queued for the indexer: only when there is one to drain
    /// the queue.
    pub fn backlog(&self) -> crate::store::SearchBacklog {
        if self.elasticsearch_url.is_some() {
            crate::store::SearchBacklog::Queue
        } else {
            crate::store::SearchBacklog::Skip
        }
    }
}

/// Routes each search to Elasticsearch or PostgreSQL, and tells which answered.
pub struct Searcher {
    postgres: PostgresSearch,
    elastic: Option<(ElasticSearch, Breaker)>,
}

impl Searcher {
    /// PostgreSQL always; Elasticsearch too when the settings name one.
    pub fn new(settings: &SearchSettings, store: Store) -> Result<Self, SearchError> {
        let elastic = ElasticSearch::connect(settings)?.map(|es| {
            let breaker = Breaker::new(
                settings.breaker_failures,
                Duration::from_millis(settings.breaker_cooldown_ms),
            );
            (es, breaker)
        });
        Ok(Self {
            postgres: PostgresSearch::new(store),
            elastic,
        })
    }

    /// How search sees Elasticsearch: its breaker's state, or `None` when none is configured.
    pub fn elastic_breaker_state(&self) -> Option<BreakerState> {
        self.elastic.as_ref().map(|(_, breaker)| breaker.state())
    }

    /// Searches, from Elasticsearch when it can answer, else from PostgreSQL. A cursor continues
    /// on the backend that issued it, so pages never mix two rankings.
    pub async fn search(
        &self,
        request: SearchRequest<'_>,
    ) -> Result<(SearchPage, BackendKind), SearchError> {
        let after = request.after.map(decode_cursor).transpose()?;
        let payload = after.as_ref().map(|(_, payload)| payload.as_str());
        let request = SearchRequest {
            after: payload,
            ..request
        };
        let kind = match after {
            Some((BackendKind::Postgres, _)) => BackendKind::Postgres,
            Some((BackendKind::Elasticsearch, _)) => match self.try_elastic(&request).await {
                Some(page) => {
                    return Ok((
                        wrap(page?, BackendKind::Elasticsearch),
                        BackendKind::Elasticsearch,
                    ))
                }
                None => return Err(SearchError::CursorBackendUnavailable),
            },
            None => match self.try_elastic(&request).await {
                Some(Ok(page)) => {
                    return Ok((
                        wrap(page, BackendKind::Elasticsearch),
                        BackendKind::Elasticsearch,
                    ))
                }
                Some(Err(e)) => return Err(e),
                None => BackendKind::Postgres,
            },
        };
        let page = self.postgres.search(&request).await?;
        Ok((wrap(page, kind), kind))
    }

    /// Elasticsearch's answer, or None when it is not configured, its breaker is open, or it
    /// failed (which the breaker counts). Only a bad cursor is an error worth returning.
    async fn try_elastic(
        &self,
        request: &SearchRequest<'_>,
    ) -> Option<Result<SearchPage, SearchError>> {
        let (elastic, breaker) = self.elastic.as_ref()?;
        if !breaker.allow() {
            return None;
        }
        match elastic.search(request).await {
            Ok(page) => {
                breaker.record_success();
                Some(Ok(page))
            }
            // Decided before any request was sent: says nothing about Elasticsearch's health.
            Err(SearchError::BadCursor) => Some(Err(SearchError::BadCursor)),
            Err(e) => {
                breaker.record_failure();
                tracing::warn!(error = %e, "Elasticsearch failed; searching PostgreSQL instead");
                None
            }
        }
    }
}

/// Tags each hit's cursor with its backend and makes it opaque.
fn wrap(mut page: SearchPage, kind: BackendKind) -> SearchPage {
    for hit in &mut page.hits {
        let raw = format!("{}:{}", kind.cursor_tag(), hit.cursor);
        hit.cursor = URL_SAFE_NO_PAD.encode(raw);
    }
    page
}

fn decode_cursor(cursor: &str) -> Result<(BackendKind, String), SearchError> {
    let raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| SearchError::BadCursor)?;
    let raw = String::from_utf8(raw).map_err(|_| SearchError::BadCursor)?;
    let (tag, payload) = raw.split_once(':').ok_or(SearchError::BadCursor)?;
    let kind = [BackendKind::Elasticsearch, BackendKind::Postgres]
        .into_iter()
        .find(|k| tag.len() == 1 && tag.starts_with(k.cursor_tag()))
        .ok_or(SearchError::BadCursor)?;
    Ok((kind, payload.to_owned()))
}

/// Escapes text for HTML the way Elasticsearch's `html` highlight encoder does, so both
/// backends' highlights are safe to render and look the same.
pub(crate) fn escape_html(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '/' => out.push_str("&#x2F;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_carry_their_backend() {
        let page = wrap(
            SearchPage {
                hits: vec![SearchHit {
                    id: Uuid::nil(),
                    score: None,
                    cursor: "payload:with:colons".into(),
                    highlights: vec![],
                }],
                has_more: false,
                total: MatchCount {
                    count: 1,
                    estimate: false,
                },
            },
            BackendKind::Postgres,
        );
        let (kind, payload) = decode_cursor(&page.hits[0].cursor).unwrap();
        assert_eq!(kind, BackendKind::Postgres);
        assert_eq!(payload, "payload:with:colons");
        for bad in [
            "",
            "%%",
            &URL_SAFE_NO_PAD.encode("x:1"),
            &URL_SAFE_NO_PAD.encode("p"),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn escapes_like_the_elasticsearch_html_encoder() {
        let mut out = String::new();
        escape_html(r#"<b>"a" & 'b'</b>"#, &mut out);
        assert_eq!(
            out,
            "&lt;b&gt;&quot;a&quot; &amp; &#x27;b&#x27;&lt;&#x2F;b&gt;"
        );
    }
}
