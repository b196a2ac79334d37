//! The event's fields as flat outputs see them, declared once: the columns of `audit_events`
//! (and the statement that inserts them), the CSV export's columns, and the fields of the search
//! document all come from [`EVENT_COLUMNS`] and [`AuditEvent::column_values`]. A new field of the
//! event is added here and nowhere else in those outputs; a test fails until it is.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{AuditEvent, Crud, Severity};

/// What kind of value a column holds, and so how each output stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    Uuid,
    Text,
    Time,
    Severity,
    Json,
}

/// How the search index keeps a column, if it keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indexed {
    /// Not in the search document.
    No,
    /// Exact values, for filters.
    Keyword,
    /// Analysed text, for full-text search.
    Text,
    /// A point in time, for ranges and sorting.
    Time,
    /// A small number (the severity's rank), for ranges.
    Short,
}

/// One flat field of an event.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// The storage name (`actor_id`): the PostgreSQL column, the CSV header, the index field.
    pub name: &'static str,
    /// The field as the API names it (`actor.id`).
    pub path: &'static str,
    pub kind: ColumnKind,
    pub indexed: Indexed,
}

const fn column(
    name: &'static str,
    path: &'static str,
    kind: ColumnKind,
    indexed: Indexed,
) -> Column {
    Column {
        name,
        path,
        kind,
        indexed,
    }
}

/// Every flat field of an event, in the order each output lists them.
pub const EVENT_COLUMNS: [Column; 27] = {
    use ColumnKind as K;
    use Indexed as I;
    [
        column("id", "id", K::Uuid, I::Keyword),
        column("tenant", "tenant", K::Text, I::Keyword),
        column("occurred_at", "occurredAt", K::Time, I::Time),
        column("received_at", "receivedAt", K::Time, I::No),
        column("action", "action", K::Text, I::Keyword),
        column("outcome", "outcome", K::Text, I::Keyword),
        column("severity", "severity", K::Severity, I::Short),
        column("service", "service", K::Text, I::Keyword),
        column("actor_id", "actor.id", K::Text, I::Keyword),
        column("actor_type", "actor.type", K::Text, I::Keyword),
        column("actor_name", "actor.name", K::Text, I::Keyword),
        column("actor_ip", "actor.ip", K::Text, I::No),
        column("target_id", "target.id", K::Text, I::Keyword),
        column("target_type", "target.type", K::Text, I::Keyword),
        column("target_name", "target.name", K::Text, I::Keyword),
        column("message", "message", K::Text, I::Text),
        column("metadata", "metadata", K::Json, I::No),
        column("idempotency_key", "idempotencyKey", K::Text, I::No),
        column("request_id", "requestId", K::Text, I::No),
        column("trace_id", "traceId", K::Text, I::No),
        column("recorded_by_id", "recordedBy.id", K::Text, I::No),
        column("recorded_by_type", "recordedBy.type", K::Text, I::No),
        column("group_id", "group.id", K::Text, I::Keyword),
        column("group_name", "group.name", K::Text, I::Keyword),
        column("actor_href", "actor.href", K::Text, I::No),
        column("target_href", "target.href", K::Text, I::No),
        column("crud", "crud", K::Text, I::Keyword),
    ]
};

/// One event's value in one column.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ColumnValue<'a> {
    Uuid(Uuid),
    Text(Option<&'a str>),
    Time(DateTime<Utc>),
    Severity(Severity),
    Json(Option<&'a Value>),
}

impl AuditEvent {
    /// The event's value in each of [`EVENT_COLUMNS`], in the same order.
    pub fn column_values(&self) -> [ColumnValue<'_>; EVENT_COLUMNS.len()] {
        use ColumnValue as V;
        let target = self.target.as_ref();
        let recorded_by = self.recorded_by.as_ref();
        let group = self.group.as_ref();
        [
            V::Uuid(self.id),
            V::Text(Some(&self.tenant)),
            V::Time(self.occurred_at),
            V::Time(self.received_at),
            V::Text(Some(&self.action)),
            V::Text(Some(self.outcome.as_str())),
            V::Severity(self.severity),
            V::Text(Some(&self.service)),
            V::Text(Some(&self.actor.id)),
            V::Text(Some(&self.actor.kind)),
            V::Text(self.actor.name.as_deref()),
            V::Text(self.actor.ip.as_deref()),
            V::Text(target.map(|t| t.id.as_str())),
            V::Text(target.map(|t| t.kind.as_str())),
            V::Text(target.and_then(|t| t.name.as_deref())),
            V::Text(self.message.as_deref()),
            V::Json(self.metadata.as_ref()),
            V::Text(self.idempotency_key.as_deref()),
            V::Text(self.request_id.as_deref()),
            V::Text(self.trace_id.as_deref()),
            V::Text(recorded_by.map(|by| by.id.as_str())),
            V::Text(recorded_by.map(|by| by.kind.as_str())),
            V::Text(group.map(|g| g.id.as_str())),
            V::Text(group.and_then(|g| g.name.as_deref())),
            V::Text(self.actor.href.as_deref()),
            V::Text(target.and_then(|t| t.href.as_deref())),
            V::Text(self.crud.map(Crud::as_str)),
        ]
    }
}

/// The column names, in `EVENT_COLUMNS` order.
pub fn column_names() -> impl Iterator<Item = &'static str> {
    EVENT_COLUMNS.iter().map(|c| c.name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::domain::{Actor, EventGroup, Outcome, RecordedBy, Target};

    /// An event with every optional field present.
    fn full_event() -> AuditEvent {
        AuditEvent {
            id: Uuid::now_v7(),
            tenant: "acme".into(),
            occurred_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            received_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 6).unwrap(),
            action: "invoice.paid".into(),
            outcome: Outcome::Success,
            severity: Severity::Warning,
            service: "billing".into(),
            actor: Actor {
                id: "u1".into(),
                kind: "user".into(),
                name: Some("Ann".into()),
                ip: Some("10.0.0.1".into()),
                href: Some("https://app.example.com/users/u1".into()),
            },
            target: Some(Target {
                id: "inv-1".into(),
                kind: "invoice".into(),
                name: Some("January".into()),
                href: Some("/invoices/inv-1".into()),
            }),
            message: Some("paid".into()),
            metadata: Some(json!({ "amount": 10 })),
            idempotency_key: Some("k".into()),
            request_id: Some("r".into()),
            trace_id: Some("t".into()),
            recorded_by: Some(RecordedBy {
                id: "key-1".into(),
                kind: "api_key".into(),
            }),
            group: Some(EventGroup {
                id: "org_1".into(),
                name: Some("Initech".into()),
            }),
            crud: Some(Crud::U),
        }
    }

    /// The leaf fields of the event as the API serializes it (`actor.id`, …; metadata whole).
    fn api_fields(event: &AuditEvent) -> BTreeSet<String> {
        fn walk(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
            match value {
                Value::Object(map) if prefix != "metadata" => {
                    for (key, inner) in map {
                        let path = if prefix.is_empty() {
                            key.clone()
                        } else {
                            format!("{prefix}.{key}")
                        };
                        walk(&path, inner, out);
                    }
                }
                _ => {
                    out.insert(prefix.to_owned());
                }
            }
        }
        let mut out = BTreeSet::new();
        walk("", &serde_json::to_value(event).unwrap(), &mut out);
        out
    }

    #[test]
    fn every_field_of_the_event_has_a_column_and_a_value() {
        let event = full_event();
        let columns: BTreeSet<String> = EVENT_COLUMNS.iter().map(|c| c.path.to_owned()).collect();
        assert_eq!(
            columns,
            api_fields(&event),
            "EVENT_COLUMNS must list every field of AuditEvent"
        );
        // Every column carries the event's value: nothing is left empty for a full event.
        for (column, value) in EVENT_COLUMNS.iter().zip(event.column_values()) {
            let present = match value {
                ColumnValue::Text(text) => text.is_some(),
                ColumnValue::Json(json) => json.is_some(),
                ColumnValue::Uuid(_) | ColumnValue::Time(_) | ColumnValue::Severity(_) => true,
            };
            assert!(present, "{} has no value", column.name);
            let kind_matches = matches!(
                (column.kind, value),
                (ColumnKind::Uuid, ColumnValue::Uuid(_))
                    | (ColumnKind::Text, ColumnValue::Text(_))
                    | (ColumnKind::Time, ColumnValue::Time(_))
                    | (ColumnKind::Severity, ColumnValue::Severity(_))
                    | (ColumnKind::Json, ColumnValue::Json(_))
            );
            assert!(kind_matches, "{} holds another kind of value", column.name);
        }
    }
}
