//! The Elasticsearch backend: one index per month (`<prefix>-YYYY.MM`) behind the alias
//! `<prefix>`, with explicit mappings from an index template; document id = event id, so indexing
//! an event twice changes nothing. Searches ask for ids, scores, sort values and highlights only
//! (the events themselves come from the event store) and page with `search_after`.

use std::time::Duration;

use chrono::{Datelike, SecondsFormat};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Url;
use elasticsearch::indices::IndicesPutIndexTemplateParts;
use elasticsearch::{BulkOperation, BulkParts, Elasticsearch, SearchParts};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    BackendKind, SearchBackend, SearchError, SearchHit, SearchPage, SearchRequest, SearchSettings,
};
use crate::domain::{
    ActionPattern, AuditEvent, EventFilter, FieldTerm, Group, Literal, SearchQuery, Term,
};

/// The text fields a word or phrase is looked for in: the same text PostgreSQL's
/// `search_vector` holds.
const TEXT_FIELDS: [&str; 5] = [
    "message",
    "action_text",
    "actor_text",
    "target_text",
    "metadata_text",
];
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

/// How one `_bulk` went, event by event.
#[derive(Debug, Default)]
pub struct BulkOutcome {
    /// Stored by Elasticsearch.
    pub indexed: Vec<Uuid>,
    /// Refused for good (e.g. a mapping conflict): retrying cannot help.
    pub rejected: Vec<Uuid>,
    /// Refused for now (overloaded, shard unavailable): to send again.
    pub retry: Vec<Uuid>,
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

    /// Creates or updates the index template: mappings and the alias for every monthly index.
    pub async fn ensure_template(&self) -> Result<(), SearchError> {
        let keyword = json!({ "type": "keyword" });
        let text = json!({ "type": "text" });
        let template = json!({
            "index_patterns": [format!("{}-*", self.prefix)],
            "priority": TEMPLATE_PRIORITY,
            "template": {
                "aliases": { self.prefix.as_str(): {} },
                "mappings": {
                    "dynamic": "strict",
                    "properties": {
                        "id": keyword, "tenant": keyword,
                        "occurred_at": { "type": "date_nanos" },
                        "action": keyword, "action_prefixes": keyword, "action_text": text,
                        "service": keyword, "outcome": keyword,
                        "severity": { "type": "short" },
                        "actor_id": keyword, "actor_type": keyword, "actor_name": keyword,
                        "actor_text": text,
                        "target_id": keyword, "target_type": keyword, "target_name": keyword,
                        "target_text": text,
                        "message": text,
                        "metadata_text": text,
                    }
                }
            }
        });
        self.client
            .indices()
            .put_index_template(IndicesPutIndexTemplateParts::Name(&self.prefix))
            .body(template)
            .send()
            .await?
            .error_for_status_code()?;
        Ok(())
    }

    /// Sends the events in one `_bulk` request and says which Elasticsearch took.
    pub async fn index(&self, events: &[AuditEvent]) -> Result<BulkOutcome, SearchError> {
        let mut outcome = BulkOutcome::default();
        if events.is_empty() {
            return Ok(outcome);
        }
        let body: Vec<BulkOperation<Value>> = events
            .iter()
            .map(|e| {
                BulkOperation::index(document(e))
                    .id(e.id.to_string())
                    .index(self.index_for(e))
                    .into()
            })
            .collect();
        let response: Value = self
            .client
            .bulk(BulkParts::None)
            .body(body)
            .send()
            .await?
            .error_for_status_code()?
            .json()
            .await?;
        let items = response["items"]
            .as_array()
            .ok_or_else(|| SearchError::Elastic("a _bulk response without items".into()))?;
        for item in items {
            let item = &item["index"];
            let Some(id) = item["_id"].as_str().and_then(|id| Uuid::try_parse(id).ok()) else {
                continue;
            };
            match item["status"].as_u64().unwrap_or_default() {
                200..=299 => outcome.indexed.push(id),
                429 | 500.. => outcome.retry.push(id),
                _ => {
                    tracing::error!(event = %id, error = %item["error"], "Elasticsearch refused an event");
                    outcome.rejected.push(id);
                }
            }
        }
        Ok(outcome)
    }
}

impl SearchBackend for ElasticSearch {
    const KIND: BackendKind = BackendKind::Elasticsearch;

    async fn health(&self) -> Result<(), SearchError> {
        self.client.ping().send().await?.error_for_status_code()?;
        Ok(())
    }

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
            let total = response["hits"]["total"]["value"]
                .as_u64()
                .unwrap_or_default();
            let raw_hits = response["hits"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let exhausted = raw_hits.len() < size;
            let fresh: Vec<Value> = raw_hits
                .into_iter()
                .filter(|hit| after.as_ref().is_none_or(|a| !a.served(hit)))
                .collect();
            if fresh.len() > request.first || exhausted || size >= MAX_RESULT_WINDOW {
                let has_next_page = fresh.len() > request.first;
                let hits = fresh
                    .into_iter()
                    .take(request.first)
                    .map(to_hit)
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(SearchPage {
                    hits,
                    has_next_page,
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
            "sort": sort_json(),
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
            "sort": sort_json(),
            "size": size,
            "track_total_hits": true,
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
            body["search_after"] = after.search_after();
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

/// The search order: relevance, ties by newest, then id so no two hits tie.
fn sort_json() -> Value {
    json!([{ "_score": "desc" }, { "occurred_at": "desc" }, { "id": "desc" }])
}

/// Where a hit stands in the search order: its sort values [score, occurred_at in ns, id].
#[derive(Debug, PartialEq)]
struct SortPosition {
    score: f32,
    occurred_at: i64,
    id: String,
}

impl SortPosition {
    fn of(hit: &Value) -> Option<Self> {
        match hit["sort"].as_array().map(Vec::as_slice) {
            Some([score, at, id]) => Some(Self {
                score: score.as_f64()? as f32,
                occurred_at: at.as_i64()?,
                id: id.as_str()?.to_owned(),
            }),
            _ => None,
        }
    }

    fn decode(payload: &str) -> Result<Self, SearchError> {
        let values: Value = serde_json::from_str(payload).map_err(|_| SearchError::BadCursor)?;
        Self::of(&json!({ "sort": values })).ok_or(SearchError::BadCursor)
    }

    /// Continues from just above this score, so every hit of an equal score comes again and
    /// the tie is broken here, exactly. Handing a score back as the server printed it is not
    /// exact everywhere: a server may rank with more precision than it prints (osmem-server
    /// does), and would then skip or repeat equally relevant hits.
    fn search_after(&self) -> Value {
        let above = f32::from_bits(self.score.to_bits() + 1);
        json!([f64::from(above), self.occurred_at, self.id])
    }

    /// Whether `hit` came at or before this position: same score, and not older.
    fn served(&self, hit: &Value) -> bool {
        SortPosition::of(hit).is_some_and(|p| {
            p.score == self.score
                && (p.occurred_at, p.id.as_str()) >= (self.occurred_at, self.id.as_str())
        })
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

/// What Elasticsearch stores for an event: keywords for every filter, text for searching.
fn document(e: &AuditEvent) -> Value {
    let target = e.target.as_ref();
    json!({
        "id": e.id.to_string(),
        "tenant": e.tenant,
        "occurred_at": e.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "action": e.action,
        "action_prefixes": action_prefixes(&e.action),
        // Split like PostgreSQL's search_vector, so "invoice" finds "invoice.paid".
        "action_text": e.action.replace(['.', '_'], " "),
        "service": e.service,
        "outcome": e.outcome.as_str(),
        "severity": e.severity.rank(),
        "actor_id": e.actor.id,
        "actor_type": e.actor.kind,
        "actor_name": e.actor.name,
        "actor_text": join_present([e.actor.name.as_deref(), Some(e.actor.id.as_str())]),
        "target_id": target.map(|t| &t.id),
        "target_type": target.map(|t| &t.kind),
        "target_name": target.and_then(|t| t.name.as_ref()),
        "target_text": join_present([target.and_then(|t| t.name.as_deref()), target.map(|t| t.id.as_str())]),
        "message": e.message,
        "metadata_text": e.metadata.as_ref().map(metadata_text),
    })
}

/// `invoice.line.add` → `["invoice.", "invoice.line."]`: what `action:invoice.*` looks up.
fn action_prefixes(action: &str) -> Vec<&str> {
    action
        .match_indices('.')
        .map(|(i, _)| &action[..=i])
        .collect()
}

fn join_present<const N: usize>(parts: [Option<&str>; N]) -> String {
    parts.into_iter().flatten().collect::<Vec<_>>().join(" ")
}

/// The metadata's string, number and boolean values, as PostgreSQL's `jsonb_to_tsvector`
/// takes them.
fn metadata_text(metadata: &Value) -> String {
    fn collect(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Bool(b) => out.push(b.to_string()),
            Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            Value::Object(map) => map.values().for_each(|v| collect(v, out)),
            Value::Null => {}
        }
    }
    let mut out = Vec::new();
    collect(metadata, &mut out);
    out.join(" ")
}

/// The tenant (always), the filter, and the query: text groups score, the rest only filter.
fn query_json(tenant: &str, query: &SearchQuery, filter: &EventFilter) -> Value {
    let mut must = Vec::new();
    let mut conditions = vec![json!({ "term": { "tenant": tenant } })];
    conditions.extend(filter_json(filter));
    for group in &query.groups {
        let clause = group_json(group);
        if group.any_of.iter().any(|l| l.term.is_text()) {
            must.push(clause);
        } else {
            conditions.push(clause);
        }
    }
    json!({ "bool": { "must": must, "filter": conditions } })
}

fn group_json(group: &Group) -> Value {
    match group.any_of.as_slice() {
        [only] => literal_json(only),
        many => json!({ "bool": {
            "should": many.iter().map(literal_json).collect::<Vec<_>>(),
            "minimum_should_match": 1,
        } }),
    }
}

fn literal_json(literal: &Literal) -> Value {
    let positive = match &literal.term {
        Term::Word(word) => json!({ "multi_match": {
            "query": word, "type": "cross_fields", "operator": "and", "fields": TEXT_FIELDS,
        } }),
        Term::Phrase(phrase) => json!({ "multi_match": {
            "query": phrase, "type": "phrase", "fields": TEXT_FIELDS,
        } }),
        Term::Field(field) => field_json(field),
    };
    if literal.negated {
        json!({ "bool": { "must_not": [positive] } })
    } else {
        positive
    }
}

fn field_json(field: &FieldTerm) -> Value {
    let either = |a: &str, b: &str, value: &str| {
        json!({ "bool": {
            "should": [{ "term": { a: value } }, { "term": { b: value } }],
            "minimum_should_match": 1,
        } })
    };
    match field {
        FieldTerm::Action(pattern) => action_json(pattern),
        FieldTerm::Actor(who) => either("actor_id", "actor_name", who),
        FieldTerm::Target(what) => either("target_id", "target_name", what),
        FieldTerm::Service(service) => json!({ "term": { "service": service } }),
        FieldTerm::Outcome(outcome) => json!({ "term": { "outcome": outcome.as_str() } }),
        FieldTerm::MinSeverity(min) => json!({ "range": { "severity": { "gte": min.rank() } } }),
    }
}

fn action_json(pattern: &ActionPattern) -> Value {
    match pattern {
        ActionPattern::Exact(name) => json!({ "term": { "action": name } }),
        ActionPattern::Prefix(prefix) => json!({ "term": { "action_prefixes": prefix } }),
    }
}

/// The GraphQL filter, as the same conditions the store applies.
fn filter_json(f: &EventFilter) -> Vec<Value> {
    let mut out = Vec::new();
    if !f.actions.is_empty() {
        out.push(json!({ "bool": {
            "should": f.actions.iter().map(action_json).collect::<Vec<_>>(),
            "minimum_should_match": 1,
        } }));
    }
    for (field, values) in f.exact_lists() {
        if !values.is_empty() {
            out.push(json!({ "terms": { field: values } }));
        }
    }
    if !f.outcomes.is_empty() {
        let outcomes: Vec<&str> = f.outcomes.iter().map(|o| o.as_str()).collect();
        out.push(json!({ "terms": { "outcome": outcomes } }));
    }
    if let Some(min) = f.min_severity {
        out.push(json!({ "range": { "severity": { "gte": min.rank() } } }));
    }
    let mut range = serde_json::Map::new();
    if let Some(after) = f.occurred_after {
        range.insert(
            "gte".into(),
            json!(after.to_rfc3339_opts(SecondsFormat::Micros, true)),
        );
    }
    if let Some(before) = f.occurred_before {
        range.insert(
            "lt".into(),
            json!(before.to_rfc3339_opts(SecondsFormat::Micros, true)),
        );
    }
    if !range.is_empty() {
        out.push(json!({ "range": { "occurred_at": range } }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_prefixes_end_at_each_dot() {
        assert_eq!(
            action_prefixes("invoice.line.add"),
            vec!["invoice.", "invoice.line."]
        );
        assert!(action_prefixes("login").is_empty());
    }

    #[test]
    fn metadata_text_takes_leaf_values() {
        let text = metadata_text(&json!({ "a": "Blue sky", "n": [42, { "b": true, "z": null }] }));
        assert_eq!(text, "Blue sky 42 true");
    }

    #[test]
    fn cursors_must_be_three_sort_values() {
        assert!(SortPosition::decode(r#"[1.5, 1763800000000000000, "x"]"#).is_ok());
        for bad in ["", "[]", r#"["a", 1, "x"]"#, r#"[1, 2, 3]"#, "{}"] {
            assert!(SortPosition::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cursor_continues_inside_a_tie() {
        let at = SortPosition::decode(r#"[0.5, 100, "m"]"#).unwrap();
        let hit = |score: f64, t: i64, id: &str| json!({ "sort": [score, t, id] });
        assert!(at.served(&hit(0.5, 100, "m")));
        assert!(at.served(&hit(0.5, 100, "z")));
        assert!(at.served(&hit(0.5, 200, "a")));
        assert!(!at.served(&hit(0.5, 100, "a")));
        assert!(!at.served(&hit(0.5, 50, "z")));
        assert!(!at.served(&hit(0.25, 300, "z")));
        let after = at.search_after();
        assert!(after[0].as_f64().unwrap() > 0.5);
        assert_eq!(after[1], 100);
    }
}
