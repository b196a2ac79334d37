//! Parsing raw input into a [`NewEvent`]: every rule of the contract in one place, each failure
//! naming the offending field. The worker runs the same checks on what it consumes, so a message
//! that did not come through the API cannot poison a batch.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use uuid::Uuid;

use super::event::{Actor, AuditEvent, Crud, EventGroup, Outcome, Severity, Target, SERVICE_NAME};
use super::filter::ActionPattern;

pub const MAX_ACTION_LEN: usize = 128;
/// Service names, ids, types, names and keys.
pub const MAX_ID_LEN: usize = 256;
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Links (`actor.href`, `target.href`).
pub const MAX_HREF_LEN: usize = 2048;
/// How far ahead of the server's clock a producer's `occurredAt` may be.
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);
/// Inputs per `recordEvents` call.
pub const MAX_BATCH: usize = 1000;

/// A rejected input: which field (a dotted path relative to the event input) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An event as a producer sent it, not yet trusted.
#[derive(Clone, Debug, Default)]
pub struct EventDraft {
    pub action: String,
    pub service: String,
    pub actor: ActorDraft,
    pub target: Option<TargetDraft>,
    pub outcome: Option<Outcome>,
    pub severity: Option<Severity>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub group: Option<GroupDraft>,
    pub crud: Option<Crud>,
}

#[derive(Clone, Debug, Default)]
pub struct ActorDraft {
    pub id: String,
    pub kind: String,
    pub name: Option<String>,
    pub ip: Option<String>,
    pub href: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct TargetDraft {
    pub id: String,
    pub kind: String,
    pub name: Option<String>,
    pub href: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct GroupDraft {
    pub id: String,
    pub name: Option<String>,
}

/// A validated event that has not been accepted yet (no id, tenant or receive time).
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    occurred_at: Option<DateTime<Utc>>,
    action: String,
    outcome: Outcome,
    severity: Severity,
    service: String,
    actor: Actor,
    target: Option<Target>,
    message: Option<String>,
    metadata: Option<serde_json::Value>,
    idempotency_key: Option<String>,
    request_id: Option<String>,
    trace_id: Option<String>,
    group: Option<EventGroup>,
    crud: Option<Crud>,
}

impl NewEvent {
    /// Applies every input rule; `now` is the server's clock, for the future-skew check.
    pub fn parse(draft: EventDraft, now: DateTime<Utc>) -> Result<Self, FieldError> {
        let event = Self {
            occurred_at: draft.occurred_at.map(|t| t.trunc_subsecs(6)),
            action: draft.action,
            outcome: draft.outcome.unwrap_or(Outcome::Success),
            severity: draft.severity.unwrap_or(Severity::Info),
            service: draft.service,
            actor: Actor {
                id: draft.actor.id,
                kind: draft.actor.kind,
                name: draft.actor.name,
                ip: draft.actor.ip,
                href: draft.actor.href,
            },
            target: draft.target.map(|t| Target {
                id: t.id,
                kind: t.kind,
                name: t.name,
                href: t.href,
            }),
            message: draft.message,
            metadata: draft.metadata,
            idempotency_key: draft.idempotency_key,
            request_id: draft.request_id,
            trace_id: draft.trace_id,
            group: draft.group.map(|g| EventGroup {
                id: g.id,
                name: g.name,
            }),
            crud: draft.crud,
        };
        check_fields(Fields {
            action: &event.action,
            service: &event.service,
            actor: &event.actor,
            target: event.target.as_ref(),
            group: event.group.as_ref(),
            message: event.message.as_deref(),
            metadata: event.metadata.as_ref(),
            keys: [
                ("idempotencyKey", event.idempotency_key.as_deref()),
                ("requestId", event.request_id.as_deref()),
                ("traceId", event.trace_id.as_deref()),
            ],
        })?;
        // New input only: events accepted before this rule still pass the worker's checks.
        if let Some(metadata) = &event.metadata {
            check_exact_numbers(metadata)?;
        }
        if event
            .occurred_at
            .is_some_and(|at| at > now + MAX_FUTURE_SKEW)
        {
            return Err(FieldError::new(
                "occurredAt",
                format!(
                    "must not be more than {} minutes in the future",
                    MAX_FUTURE_SKEW.num_minutes()
                ),
            ));
        }
        Ok(event)
    }

    /// Accepts the event for `tenant`: `occurredAt` defaults to the time it was received.
    pub fn accept(self, tenant: &str, id: Uuid, received_at: DateTime<Utc>) -> AuditEvent {
        let received_at = received_at.trunc_subsecs(6);
        AuditEvent {
            id,
            tenant: tenant.to_owned(),
            occurred_at: self.occurred_at.unwrap_or(received_at),
            received_at,
            action: self.action,
            outcome: self.outcome,
            severity: self.severity,
            service: self.service,
            actor: self.actor,
            target: self.target,
            message: self.message,
            metadata: self.metadata,
            idempotency_key: self.idempotency_key,
            request_id: self.request_id,
            trace_id: self.trace_id,
            recorded_by: None,
            group: self.group,
            crud: self.crud,
        }
    }
}

/// Refuses what would pass an event off as the service's own: the action namespace
/// `traceledger.*` and the service `traceledger` are the service's alone (its trail, its export
/// records). Applied to what producers send, not to the service's own events.
pub fn check_not_reserved(draft: &EventDraft) -> Result<(), FieldError> {
    let reserved_action = draft.action == SERVICE_NAME
        || draft
            .action
            .strip_prefix(SERVICE_NAME)
            .is_some_and(|rest| rest.starts_with('.'));
    if reserved_action {
        return Err(FieldError::new(
            "action",
            format!("the {SERVICE_NAME}.* actions are reserved for the service's own events"),
        ));
    }
    if draft.service.trim() == SERVICE_NAME {
        return Err(FieldError::new(
            "service",
            format!("the service {SERVICE_NAME:?} is reserved for the service's own events"),
        ));
    }
    Ok(())
}

impl AuditEvent {
    /// Checks an event that arrives from outside the API (the bus) against the same rules as
    /// input, except the clock-dependent one: it was accepted in the past.
    pub fn check(&self) -> Result<(), FieldError> {
        check_text("tenant", &self.tenant, MAX_ID_LEN)?;
        if let Some(by) = &self.recorded_by {
            check_text("recordedBy.id", &by.id, MAX_ID_LEN)?;
            check_text("recordedBy.type", &by.kind, MAX_ID_LEN)?;
        }
        check_fields(Fields {
            action: &self.action,
            service: &self.service,
            actor: &self.actor,
            target: self.target.as_ref(),
            group: self.group.as_ref(),
            message: self.message.as_deref(),
            metadata: self.metadata.as_ref(),
            keys: [
                ("idempotencyKey", self.idempotency_key.as_deref()),
                ("requestId", self.request_id.as_deref()),
                ("traceId", self.trace_id.as_deref()),
            ],
        })
    }
}

/// The checked fields, borrowed from either a new or an accepted event.
struct Fields<'a> {
    action: &'a str,
    service: &'a str,
    actor: &'a Actor,
    target: Option<&'a Target>,
    group: Option<&'a EventGroup>,
    message: Option<&'a str>,
    metadata: Option<&'a serde_json::Value>,
    keys: [(&'static str, Option<&'a str>); 3],
}

fn check_fields(f: Fields<'_>) -> Result<(), FieldError> {
    check_action(f.action)?;
    check_text("service", f.service, MAX_ID_LEN)?;
    check_text("actor.id", &f.actor.id, MAX_ID_LEN)?;
    check_text("actor.type", &f.actor.kind, MAX_ID_LEN)?;
    check_optional("actor.name", f.actor.name.as_deref(), MAX_ID_LEN)?;
    if let Some(ip) = &f.actor.ip {
        check_ip(ip)?;
    }
    check_href("actor.href", f.actor.href.as_deref())?;
    if let Some(target) = f.target {
        check_text("target.id", &target.id, MAX_ID_LEN)?;
        check_text("target.type", &target.kind, MAX_ID_LEN)?;
        check_optional("target.name", target.name.as_deref(), MAX_ID_LEN)?;
        check_href("target.href", target.href.as_deref())?;
    }
    if let Some(group) = f.group {
        check_text("group.id", &group.id, MAX_ID_LEN)?;
        check_optional("group.name", group.name.as_deref(), MAX_ID_LEN)?;
    }
    if let Some(message) = f.message {
        check_message(message)?;
    }
    if let Some(metadata) = f.metadata {
        check_metadata(metadata)?;
    }
    for (field, value) in f.keys {
        check_optional(field, value, MAX_ID_LEN)?;
    }
    Ok(())
}

/// An action name, or `prefix.*` for every action under a prefix (display templates' keys).
pub fn check_action_pattern(pattern: &str) -> Result<ActionPattern, FieldError> {
    check_action(pattern.strip_suffix(".*").unwrap_or(pattern))?;
    Ok(ActionPattern::parse(pattern))
}

/// `^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$`, at most 128 characters.
fn check_action(action: &str) -> Result<(), FieldError> {
    const FIELD: &str = "action";
    if action.len() > MAX_ACTION_LEN {
        return Err(FieldError::new(
            FIELD,
            format!("must be at most {MAX_ACTION_LEN} characters"),
        ));
    }
    let well_formed = action.starts_with(|c: char| c.is_ascii_lowercase())
        && action.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
    if !well_formed {
        return Err(FieldError::new(
            FIELD,
            "must be dotted lowercase words, e.g. \"invoice.update\" (letters, digits, '_')",
        ));
    }
    Ok(())
}

/// An identifier given outside an event (a viewer token's group or actor): the rule of an event's
/// ids, non-blank, at most [`MAX_ID_LEN`] characters, no control characters.
pub fn check_identifier(field: &str, value: &str) -> Result<(), FieldError> {
    check_text(field, value, MAX_ID_LEN)
}

/// A required, non-blank string of at most `max` characters.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    check_optional(field, Some(value), max)
}

fn check_optional(field: &str, value: Option<&str>, max: usize) -> Result<(), FieldError> {
    let Some(value) = value else { return Ok(()) };
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A link a viewer may put in a page as it is: an absolute `https:`/`http:` URL or a path on the
/// host page (`/…`, not `//…`, which would be another host). Anything else (`javascript:`,
/// `data:`) could run in the viewer's page, and whitespace or quotes could break out of it.
fn check_href(field: &str, href: Option<&str>) -> Result<(), FieldError> {
    let Some(href) = href else { return Ok(()) };
    check_text(field, href, MAX_HREF_LEN)?;
    let lower = href.to_ascii_lowercase();
    let allowed_start = lower.starts_with("https://")
        || lower.starts_with("http://")
        || (href.starts_with('/') && !href.starts_with("//") && !href.starts_with("/\\"));
    let plain = href
        .chars()
        .all(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '<' | '>' | '`' | '\\'));
    if !allowed_start || !plain {
        return Err(FieldError::new(
            field,
            "must be an http(s) URL or a path starting with \"/\", without spaces or quotes",
        ));
    }
    Ok(())
}

fn check_ip(ip: &str) -> Result<(), FieldError> {
    ip.parse::<std::net::IpAddr>()
        .map(|_| ())
        .map_err(|_| FieldError::new("actor.ip", "must be an IPv4 or IPv6 address"))
}

fn check_message(message: &str) -> Result<(), FieldError> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(FieldError::new(
            "message",
            format!("must be at most {} KiB", MAX_MESSAGE_BYTES / 1024),
        ));
    }
    // PostgreSQL text cannot hold NUL; other control characters (newlines, tabs) are fine here.
    if message.contains('\0') {
        return Err(FieldError::new(
            "message",
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

fn check_metadata(metadata: &serde_json::Value) -> Result<(), FieldError> {
    const FIELD: &str = "metadata";
    if !metadata.is_object() {
        return Err(FieldError::new(FIELD, "must be a JSON object"));
    }
    let size = serde_json::to_vec(metadata)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(FieldError::new(
            FIELD,
            format!(
                "must be at most {} KiB serialized",
                MAX_METADATA_BYTES / 1024
            ),
        ));
    }
    if contains_nul(metadata) {
        return Err(FieldError::new(
            FIELD,
            "must not contain NUL characters (\\u0000)",
        ));
    }
    Ok(())
}

/// The largest integer every IEEE double holds exactly.
const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// Numbers in metadata must survive the ledger's canonical form (RFC 8785 writes every number as
/// the IEEE double it is): an integer beyond 2^53 would be committed as a different number than
/// the one sent, so it is refused rather than silently changed.
fn check_exact_numbers(value: &serde_json::Value) -> Result<(), FieldError> {
    fn exact(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u <= MAX_EXACT_INTEGER,
                (None, Some(i)) => i.unsigned_abs() <= MAX_EXACT_INTEGER,
                // A float is a double already.
                (None, None) => true,
            },
            serde_json::Value::Array(items) => items.iter().all(exact),
            serde_json::Value::Object(map) => map.values().all(exact),
            _ => true,
        }
    }
    if exact(value) {
        Ok(())
    } else {
        Err(FieldError::new(
            "metadata",
            "integers must be at most 2^53 (9007199254740992) in magnitude, which a double holds \
             exactly: send larger ones as strings",
        ))
    }
}

/// PostgreSQL's jsonb rejects `\u0000` in keys and strings.
fn contains_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(contains_nul),
        serde_json::Value::Object(map) => {
            map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn draft() -> EventDraft {
        EventDraft {
            action: "invoice.update".into(),
            service: "billing".into(),
            actor: ActorDraft {
                id: "alice".into(),
                kind: "user".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn field_of(d: EventDraft) -> String {
        NewEvent::parse(d, Utc::now()).unwrap_err().field
    }

    #[test]
    fn accepts_a_minimal_event_with_defaults() {
        let now = Utc::now();
        let event = NewEvent::parse(draft(), now)
            .unwrap()
            .accept("acme", Uuid::now_v7(), now);
        assert_eq!(event.outcome, Outcome::Success);
        assert_eq!(event.severity, Severity::Info);
        assert_eq!(event.occurred_at, event.received_at);
        assert_eq!(event.tenant, "acme");
    }

    #[test]
    fn action_grammar() {
        for ok in ["user.login", "a", "invoice_v2.update_all", "x.1"] {
            let mut d = draft();
            d.action = ok.into();
            assert!(NewEvent::parse(d, Utc::now()).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "User.login",
            "1abc",
            "a..b",
            "a.",
            ".a",
            "a-b",
            "a b",
            "é",
        ] {
            let mut d = draft();
            d.action = bad.into();
            assert_eq!(field_of(d), "action", "{bad:?}");
        }
        let mut d = draft();
        d.action = "a".repeat(129);
        assert_eq!(field_of(d), "action");
    }

    #[test]
    fn links_are_http_urls_or_paths_and_groups_need_an_id() {
        for ok in [
            "https://app.example.com/users/42",
            "HTTP://example.com",
            "/orgs/7/invoices/9?tab=lines#top",
        ] {
            let mut d = draft();
            d.actor.href = Some(ok.into());
            d.target = Some(TargetDraft {
                id: "t".into(),
                kind: "doc".into(),
                href: Some(ok.into()),
                ..Default::default()
            });
            assert!(NewEvent::parse(d, Utc::now()).is_ok(), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>",
            "//evil.example.com/x",
            "/\\evil.example.com",
            "https://a.example/\" onmouseover=\"x",
            "https://a.example/ x",
            "relative/path",
            "",
        ] {
            let mut d = draft();
            d.actor.href = Some(bad.into());
            assert_eq!(field_of(d), "actor.href", "{bad:?}");
        }
        let mut d = draft();
        d.actor.href = Some(format!("https://a.example/{}", "x".repeat(MAX_HREF_LEN)));
        assert_eq!(field_of(d), "actor.href");

        let mut d = draft();
        d.group = Some(GroupDraft {
            id: " ".into(),
            name: None,
        });
        assert_eq!(field_of(d), "group.id");
        let mut d = draft();
        d.group = Some(GroupDraft {
            id: "org_1".into(),
            name: Some("n".repeat(MAX_ID_LEN + 1)),
        });
        assert_eq!(field_of(d), "group.name");
    }

    #[test]
    fn lengths_and_shapes_name_their_field() {
        let mut d = draft();
        d.service = "s".repeat(257);
        assert_eq!(field_of(d), "service");
        let mut d = draft();
        d.actor.id = " ".into();
        assert_eq!(field_of(d), "actor.id");
        let mut d = draft();
        d.actor.ip = Some("not-an-ip".into());
        assert_eq!(field_of(d), "actor.ip");
        let mut d = draft();
        d.target = Some(TargetDraft {
            id: "t".into(),
            kind: String::new(),
            ..Default::default()
        });
        assert_eq!(field_of(d), "target.type");
        let mut d = draft();
        d.message = Some("m".repeat(MAX_MESSAGE_BYTES + 1));
        assert_eq!(field_of(d), "message");
        let mut d = draft();
        d.metadata = Some(json!([1, 2]));
        assert_eq!(field_of(d), "metadata");
        let mut d = draft();
        d.metadata = Some(json!({ "big": "x".repeat(MAX_METADATA_BYTES) }));
        assert_eq!(field_of(d), "metadata");
        let mut d = draft();
        d.metadata = Some(json!({ "k": "a\u{0}b" }));
        assert_eq!(field_of(d), "metadata");
        let mut d = draft();
        d.metadata = Some(json!({ "nested": [{ "n": 9_007_199_254_740_993_u64 }] }));
        assert_eq!(field_of(d), "metadata");
        let mut d = draft();
        d.metadata = Some(json!({ "n": -9_007_199_254_740_993_i64 }));
        assert_eq!(field_of(d), "metadata");
        // At the limit, and any float, are kept as sent.
        let mut d = draft();
        d.metadata = Some(
            json!({ "max": 9_007_199_254_740_992_u64, "min": -9_007_199_254_740_992_i64, "f": 1e300 }),
        );
        assert!(NewEvent::parse(d, Utc::now()).is_ok());
        let mut d = draft();
        d.idempotency_key = Some("k".repeat(257));
        assert_eq!(field_of(d), "idempotencyKey");
    }

    #[test]
    fn occurred_at_may_not_be_far_in_the_future() {
        let now = Utc::now();
        let mut d = draft();
        d.occurred_at = Some(now + Duration::minutes(4));
        assert!(NewEvent::parse(d, now).is_ok());
        let mut d = draft();
        d.occurred_at = Some(now + Duration::minutes(6));
        assert_eq!(NewEvent::parse(d, now).unwrap_err().field, "occurredAt");
    }

    #[test]
    fn check_rejects_what_parse_rejects() {
        let now = Utc::now();
        let mut event = NewEvent::parse(draft(), now)
            .unwrap()
            .accept("acme", Uuid::now_v7(), now);
        assert!(event.check().is_ok());
        event.message = Some("nul\0".into());
        assert_eq!(event.check().unwrap_err().field, "message");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Any text, biased towards the edges the rules care about.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9_]{0,10}(\\.[a-z0-9_]{1,8}){0,3}",
            ".{0,300}",
            "[\\x00-\\x1f]{1,3}",
            Just(String::new()),
            Just("x".repeat(257)),
        ]
    }

    fn draft() -> impl Strategy<Value = EventDraft> {
        (
            text(),
            text(),
            text(),
            text(),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of("\\PC{0,9000}"),
            proptest::option::of(text()),
        )
            .prop_map(
                |(action, service, actor_id, actor_kind, ip, target, message, key)| EventDraft {
                    action,
                    service,
                    actor: ActorDraft {
                        id: actor_id,
                        kind: actor_kind,
                        ip,
                        ..Default::default()
                    },
                    target: target.map(|id| TargetDraft {
                        id,
                        kind: "doc".into(),
                        ..Default::default()
                    }),
                    message,
                    idempotency_key: key,
                    ..Default::default()
                },
            )
    }

    const FIELDS: &[&str] = &[
        "action",
        "service",
        "actor.id",
        "actor.type",
        "actor.ip",
        "target.id",
        "message",
        "idempotencyKey",
    ];

    proptest! {
        /// Parsing never panics; what it accepts also passes the worker's check, and what it
        /// rejects names one of the input's fields.
        #[test]
        fn parse_accepts_only_what_the_worker_accepts(draft in draft()) {
            let now = Utc::now();
            match NewEvent::parse(draft, now) {
                Ok(new) => {
                    let event = new.accept("acme", Uuid::now_v7(), now);
                    prop_assert!(event.check().is_ok());
                    prop_assert!(!event.action.is_empty() && event.action.len() <= MAX_ACTION_LEN);
                    prop_assert!(!event.service.chars().any(char::is_control));
                }
                Err(error) => prop_assert!(FIELDS.contains(&error.field.as_str()), "{}", error.field),
            }
        }

        /// Metadata is accepted exactly when it is an object within the size limit without NUL.
        #[test]
        fn metadata_rule(keys in proptest::collection::vec(("\\PC{0,20}", "\\PC{0,2000}"), 0..12)) {
            let object: serde_json::Map<String, serde_json::Value> =
                keys.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
            let metadata = serde_json::Value::Object(object);
            let size = serde_json::to_vec(&metadata).unwrap().len();
            let mut draft = EventDraft {
                action: "a.b".into(),
                service: "s".into(),
                actor: ActorDraft { id: "x".into(), kind: "user".into(), ..Default::default() },
                ..Default::default()
            };
            draft.metadata = Some(metadata.clone());
            let accepted = NewEvent::parse(draft, Utc::now()).is_ok();
            prop_assert_eq!(accepted, size <= MAX_METADATA_BYTES && !contains_nul(&metadata));
        }
    }
}
