//! Which events a query or a subscription wants, and in what order.

use chrono::{DateTime, Utc};

use super::event::{AuditEvent, Outcome, Severity};
use super::validate::FieldError;

/// Values one filter list may hold.
pub const MAX_FILTER_VALUES: usize = 100;
/// Totals (of a list or a search) are counted up to this many matching events; beyond, they are
/// an estimate, flagged, so that no page counts a million rows.
pub const EXACT_TOTAL_UP_TO: u64 = 10_000;

/// One entry of `actions`: an exact name, or `prefix.*` for every action under `prefix.`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionPattern {
    Exact(String),
    /// Holds the prefix with its trailing dot, e.g. `invoice.` for `invoice.*`.
    Prefix(String),
}

impl ActionPattern {
    pub fn parse(pattern: &str) -> Self {
        match pattern.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('.') => Self::Prefix(prefix.to_owned()),
            _ => Self::Exact(pattern.to_owned()),
        }
    }

    pub fn matches(&self, action: &str) -> bool {
        match self {
            Self::Exact(name) => name == action,
            Self::Prefix(prefix) => action.starts_with(prefix.as_str()),
        }
    }
}

/// What a viewer token may see: one group's events, and only one actor's if it names one. Set
/// from the credentials, never from what the caller sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewScope {
    pub group_id: String,
    pub actor_id: Option<String>,
}

impl ViewScope {
    pub fn admits(&self, event: &AuditEvent) -> bool {
        event.group.as_ref().is_some_and(|g| g.id == self.group_id)
            && self.actor_id.as_ref().is_none_or(|a| *a == event.actor.id)
    }
}

/// Every list is "any of"; an empty list, like a missing one, does not filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    pub actions: Vec<ActionPattern>,
    pub services: Vec<String>,
    pub actor_ids: Vec<String>,
    pub actor_types: Vec<String>,
    pub target_ids: Vec<String>,
    pub target_types: Vec<String>,
    pub group_ids: Vec<String>,
    pub outcomes: Vec<Outcome>,
    pub min_severity: Option<Severity>,
    /// Inclusive.
    pub occurred_after: Option<DateTime<Utc>>,
    /// Exclusive.
    pub occurred_before: Option<DateTime<Utc>>,
    /// The caller's view, if its credentials are held to one: applies on top of everything else.
    pub view: Option<ViewScope>,
}

impl EventFilter {
    /// Rejects a list longer than [`MAX_FILTER_VALUES`], naming it as clients spell it
    /// (`actions`, `actorIds`, …).
    pub fn check_sizes(&self) -> Result<(), FieldError> {
        let lists = [
            ("actions", self.actions.len()),
            ("services", self.services.len()),
            ("actorIds", self.actor_ids.len()),
            ("actorTypes", self.actor_types.len()),
            ("targetIds", self.target_ids.len()),
            ("targetTypes", self.target_types.len()),
            ("groupIds", self.group_ids.len()),
        ];
        match lists.iter().find(|(_, n)| *n > MAX_FILTER_VALUES) {
            Some((field, _)) => Err(FieldError::new(
                *field,
                format!("at most {MAX_FILTER_VALUES} values"),
            )),
            None => Ok(()),
        }
    }

    /// The exact-match lists, each with the event field it selects on, named as stored (the
    /// PostgreSQL column and the Elasticsearch field alike); each must hold (an empty one holds
    /// for every event). The view comes as one-value lists of its own, so it narrows whatever the
    /// caller asked for.
    pub fn exact_lists(&self) -> impl Iterator<Item = (&'static str, &[String])> {
        let view = self.view.as_ref();
        [
            ("service", self.services.as_slice()),
            ("actor_id", &self.actor_ids),
            ("actor_type", &self.actor_types),
            ("target_id", &self.target_ids),
            ("target_type", &self.target_types),
            ("group_id", &self.group_ids),
        ]
        .into_iter()
        .chain(view.map(|v| ("group_id", std::slice::from_ref(&v.group_id))))
        .chain(
            view.and_then(|v| v.actor_id.as_ref())
                .map(|actor| ("actor_id", std::slice::from_ref(actor))),
        )
    }

    /// The same predicate the store evaluates in SQL, for events that never touch it (live feed).
    pub fn matches(&self, event: &AuditEvent) -> bool {
        fn any_of(list: &[String], value: Option<&str>) -> bool {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
        }
        let target = event.target.as_ref();
        (self.actions.is_empty() || self.actions.iter().any(|p| p.matches(&event.action)))
            && any_of(&self.services, Some(&event.service))
            && any_of(&self.actor_ids, Some(&event.actor.id))
            && any_of(&self.actor_types, Some(&event.actor.kind))
            && any_of(&self.target_ids, target.map(|t| t.id.as_str()))
            && any_of(&self.target_types, target.map(|t| t.kind.as_str()))
            && any_of(&self.group_ids, event.group.as_ref().map(|g| g.id.as_str()))
            && (self.outcomes.is_empty() || self.outcomes.contains(&event.outcome))
            && self.min_severity.is_none_or(|min| event.severity >= min)
            && self.occurred_after.is_none_or(|t| event.occurred_at >= t)
            && self.occurred_before.is_none_or(|t| event.occurred_at < t)
            && self.view.as_ref().is_none_or(|v| v.admits(event))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EventOrder {
    #[default]
    OccurredAtDesc,
    OccurredAtAsc,
}

impl EventOrder {
    pub const ALL: [EventOrder; 2] = [EventOrder::OccurredAtDesc, EventOrder::OccurredAtAsc];

    /// The name clients use, e.g. `OCCURRED_AT_DESC`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventOrder::OccurredAtDesc => "OCCURRED_AT_DESC",
            EventOrder::OccurredAtAsc => "OCCURRED_AT_ASC",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The other way round: a page backwards is a page forwards in this order, reversed.
    pub fn reversed(self) -> Self {
        match self {
            EventOrder::OccurredAtDesc => EventOrder::OccurredAtAsc,
            EventOrder::OccurredAtAsc => EventOrder::OccurredAtDesc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_filter_matches_only_events_of_those_groups() {
        let event = |group: Option<&str>| {
            let mut event: AuditEvent = serde_json::from_value(serde_json::json!({
                "id": "0190b2b4-8d4e-7c3a-9b1e-1c2d3e4f5a6b", "tenant": "acme",
                "occurredAt": "2026-01-02T03:04:05Z", "receivedAt": "2026-01-02T03:04:05Z",
                "action": "a", "outcome": "SUCCESS", "severity": "INFO", "service": "s",
                "actor": { "id": "u", "type": "user", "name": null, "ip": null },
                "target": null, "message": null, "metadata": null, "idempotencyKey": null,
                "requestId": null, "traceId": null
            }))
            .expect("an event");
            event.group = group.map(|id| crate::domain::EventGroup {
                id: id.to_owned(),
                name: None,
            });
            event
        };
        let filter = EventFilter {
            group_ids: vec!["org-1".into()],
            ..Default::default()
        };
        assert!(filter.matches(&event(Some("org-1"))));
        assert!(!filter.matches(&event(Some("org-2"))));
        assert!(!filter.matches(&event(None)));
        assert!(EventFilter::default().matches(&event(None)));

        // A view narrows what the caller asked for, and never sees events without a group.
        let viewed = EventFilter {
            group_ids: vec!["org-1".into(), "org-2".into()],
            view: Some(ViewScope {
                group_id: "org-2".into(),
                actor_id: None,
            }),
            ..Default::default()
        };
        assert!(viewed.matches(&event(Some("org-2"))));
        assert!(!viewed.matches(&event(Some("org-1"))));
        assert!(!viewed.matches(&event(None)));
        let lists: Vec<_> = viewed
            .exact_lists()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        assert_eq!(
            lists,
            vec![
                ("group_id", &["org-1".to_owned(), "org-2".to_owned()][..]),
                ("group_id", &["org-2".to_owned()][..]),
            ]
        );
    }

    #[test]
    fn action_patterns() {
        let prefix = ActionPattern::parse("invoice.*");
        assert!(prefix.matches("invoice.update"));
        assert!(prefix.matches("invoice.line.add"));
        assert!(!prefix.matches("invoice"));
        assert!(!prefix.matches("invoices.update"));
        let exact = ActionPattern::parse("user.login");
        assert!(exact.matches("user.login"));
        assert!(!exact.matches("user.login.failed"));
    }
}
