//! The audit event as it is accepted, carried on the bus, stored and served.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How the action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Success,
    Failure,
    Unknown,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Success, Outcome::Failure, Outcome::Unknown];

    /// The stored and wire name, e.g. `SUCCESS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "SUCCESS",
            Outcome::Failure => "FAILURE",
            Outcome::Unknown => "UNKNOWN",
        }
    }

    /// Parses a stored or query-language name, case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str().eq_ignore_ascii_case(name))
    }
}

/// How much the event matters, ordered from least to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 6] = [
        Severity::Debug,
        Severity::Info,
        Severity::Notice,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];

    /// The stored rank: 0 for DEBUG up to 5 for CRITICAL, so "at least" is a `>=`.
    pub fn rank(self) -> i16 {
        self as i16
    }

    pub fn from_rank(rank: i16) -> Option<Self> {
        Self::ALL.get(usize::try_from(rank).ok()?).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Notice => "NOTICE",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
            Severity::Critical => "CRITICAL",
        }
    }

    /// Parses a stored or query-language name, case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

/// Who did it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub ip: Option<String>,
    /// A link to the actor in the tenant's product. Fields added after the ledger began are
    /// left out of the serialized event when absent, so the leaves of earlier events stay as
    /// they were hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
}

/// What it was done to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    /// A link to the target in the tenant's product (absent: left out, as [`Actor::href`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
}

/// The tenant's own customer the event belongs to (an organization in the tenant's product):
/// what viewer tokens are scoped to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventGroup {
    pub id: String,
    pub name: Option<String>,
}

/// Which of create, read, update or delete the action was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Crud {
    C,
    R,
    U,
    D,
}

impl Crud {
    pub const ALL: [Crud; 4] = [Crud::C, Crud::R, Crud::U, Crud::D];

    /// The stored and wire name: `C`, `R`, `U` or `D`.
    pub fn as_str(self) -> &'static str {
        match self {
            Crud::C => "C",
            Crud::R => "R",
            Crud::U => "U",
            Crud::D => "D",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// An accepted event: validated, with its id, tenant and time of acceptance. Immutable from here
/// on; the same value travels on the bus, lands in PostgreSQL and the cache, and is served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: Uuid,
    pub tenant: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub action: String,
    pub outcome: Outcome,
    pub severity: Severity,
    pub service: String,
    pub actor: Actor,
    pub target: Option<Target>,
    pub message: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    /// Who recorded it, as the server saw the credentials (never taken from the input); `None`
    /// for events stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<RecordedBy>,
    /// Left out when absent, as [`Actor::href`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<EventGroup>,
    /// Left out when absent, as [`Actor::href`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crud: Option<Crud>,
}

/// The provenance of an event: the credentials it was recorded with, or the service itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedBy {
    /// An API key's id, a JWT's subject, or the service's name.
    pub id: String,
    /// `api_key`, `jwt_subject` or `service`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl RecordedBy {
    /// The service's own events (its trail, export records, operators' actions).
    pub fn service() -> Self {
        Self {
            id: SERVICE_NAME.to_owned(),
            kind: "service".to_owned(),
        }
    }
}

/// The fields added after the ledger began, left out of the serialized event when absent (so
/// that the leaves of earlier events stay as they were hashed); the API shows them as null.
pub(crate) const LATER_FIELDS: [&str; 2] = ["group", "crud"];
/// The same, inside `actor` and `target`.
pub(crate) const LATER_PARTY_FIELDS: [&str; 1] = ["href"];

impl AuditEvent {
    /// The event as the API returns it: every field, null where it has no value.
    pub fn api_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        use serde_json::Value;
        let mut value = serde_json::to_value(self)?;
        if let Value::Object(fields) = &mut value {
            fields.entry("recordedBy").or_insert(Value::Null);
            for name in LATER_FIELDS {
                fields.entry(name).or_insert(Value::Null);
            }
            for party in ["actor", "target"] {
                if let Some(Value::Object(party)) = fields.get_mut(party) {
                    for name in LATER_PARTY_FIELDS {
                        party.entry(name).or_insert(Value::Null);
                    }
                }
            }
        }
        Ok(value)
    }
}

/// The `service` of the events the service records itself; reserved for them.
pub const SERVICE_NAME: &str = "traceledger";
