//! Translating a parsed search and a filter into Elasticsearch's query DSL.

use chrono::SecondsFormat;
use serde_json::{json, Value};

use crate::domain::{ActionPattern, EventFilter, FieldTerm, Group, Literal, SearchQuery, Term};

/// The text fields a word or phrase is looked for in: the same text PostgreSQL's
/// `search_vector` holds.
pub(super) const TEXT_FIELDS: [&str; 5] = [
    "message",
    "action_text",
    "actor_text",
    "target_text",
    "metadata_text",
];

/// The tenant (always), the filter, and the query: text groups score, the rest only filter.
pub(super) fn query_json(tenant: &str, query: &SearchQuery, filter: &EventFilter) -> Value {
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
