//! Writing to Elasticsearch: the index template (mappings and alias), `_bulk` indexing, and the
//! document each event becomes.

use chrono::SecondsFormat;
use elasticsearch::indices::IndicesPutIndexTemplateParts;
use elasticsearch::{BulkOperation, BulkParts};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{ElasticSearch, TEMPLATE_PRIORITY};
use crate::domain::{AuditEvent, ColumnValue, Indexed, EVENT_COLUMNS};
use crate::search::SearchError;

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
    /// Creates or updates the index template: mappings and the alias for every monthly index.
    pub async fn ensure_template(&self) -> Result<(), SearchError> {
        let template = json!({
            "index_patterns": [format!("{}-*", self.prefix)],
            "priority": TEMPLATE_PRIORITY,
            "template": {
                "aliases": { self.prefix.as_str(): {} },
                "mappings": { "dynamic": "strict", "properties": mapping() }
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

/// The fields a search document has: the indexed columns, and the text fields derived from
/// them (split like PostgreSQL's `search_vector`).
fn mapping() -> Map<String, Value> {
    let mut properties: Map<String, Value> = EVENT_COLUMNS
        .iter()
        .filter_map(|column| {
            let kind = match column.indexed {
                Indexed::No => return None,
                Indexed::Keyword => "keyword",
                Indexed::Text => "text",
                Indexed::Time => "date_nanos",
                Indexed::Short => "short",
            };
            Some((column.name.to_owned(), json!({ "type": kind })))
        })
        .collect();
    properties.insert("action_prefixes".into(), json!({ "type": "keyword" }));
    for derived in DERIVED_TEXT {
        properties.insert(derived.into(), json!({ "type": "text" }));
    }
    properties
}

/// Text fields made from several columns, for full-text search.
const DERIVED_TEXT: [&str; 4] = ["action_text", "actor_text", "target_text", "metadata_text"];

/// What Elasticsearch stores for an event: its indexed columns, and text for searching.
fn document(e: &AuditEvent) -> Value {
    let mut document: Map<String, Value> = EVENT_COLUMNS
        .iter()
        .zip(e.column_values())
        .filter(|(column, _)| column.indexed != Indexed::No)
        .map(|(column, value)| {
            let value = match value {
                ColumnValue::Uuid(id) => json!(id.to_string()),
                ColumnValue::Text(text) => json!(text),
                ColumnValue::Time(at) => json!(at.to_rfc3339_opts(SecondsFormat::Micros, true)),
                ColumnValue::Severity(severity) => json!(severity.rank()),
                ColumnValue::Json(json) => json!(json),
            };
            (column.name.to_owned(), value)
        })
        .collect();
    let target = e.target.as_ref();
    let derived = [
        ("action_prefixes", json!(action_prefixes(&e.action))),
        // So "invoice" finds "invoice.paid".
        ("action_text", json!(e.action.replace(['.', '_'], " "))),
        (
            "actor_text",
            json!(join_present([
                e.actor.name.as_deref(),
                Some(e.actor.id.as_str())
            ])),
        ),
        (
            "target_text",
            json!(join_present([
                target.and_then(|t| t.name.as_deref()),
                target.map(|t| t.id.as_str())
            ])),
        ),
        (
            "metadata_text",
            json!(e.metadata.as_ref().map(metadata_text)),
        ),
    ];
    for (name, value) in derived {
        document.insert(name.to_owned(), value);
    }
    Value::Object(document)
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
    fn a_document_has_exactly_the_mapped_fields() {
        // `dynamic: strict`: a field the mapping lacks would make Elasticsearch refuse the event.
        let event: AuditEvent = serde_json::from_value(json!({
            "id": "0190b2b4-8d4e-7c3a-9b1e-1c2d3e4f5a6b", "tenant": "acme",
            "occurredAt": "2026-01-02T03:04:05Z", "receivedAt": "2026-01-02T03:04:06Z",
            "action": "invoice.paid", "outcome": "SUCCESS", "severity": "INFO", "service": "billing",
            "actor": { "id": "u1", "type": "user", "name": "Ann", "ip": null },
            "target": { "id": "i1", "type": "invoice", "name": null },
            "message": "paid", "metadata": { "a": 1 },
            "idempotencyKey": null, "requestId": null, "traceId": null
        }))
        .unwrap();
        let document = document(&event);
        let fields: Vec<&String> = document.as_object().unwrap().keys().collect();
        let mapped: Vec<String> = mapping().keys().cloned().collect();
        let mut fields: Vec<String> = fields.into_iter().cloned().collect();
        let mut mapped = mapped;
        fields.sort();
        mapped.sort();
        assert_eq!(fields, mapped);
        assert_eq!(document["severity"], json!(event.severity.rank()));
        assert_eq!(document["occurred_at"], "2026-01-02T03:04:05.000000Z");
    }

    #[test]
    fn metadata_text_takes_leaf_values() {
        let text = metadata_text(&json!({ "a": "Blue sky", "n": [42, { "b": true, "z": null }] }));
        assert_eq!(text, "Blue sky 42 true");
    }
}
