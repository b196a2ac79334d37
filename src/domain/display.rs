//! Display templates: a tenant's sentence for an action (`{{actor.name}} updated invoice
//! {{target.id}}`), and the event rendered by it. A template is text and `{{field}}`
//! placeholders from a fixed list, nothing more, so it cannot run anything; the rendered sentence
//! is HTML-escaped as a whole (template text and values alike), and a field the event lacks
//! renders empty.

use super::filter::ActionPattern;
use super::validate::FieldError;
use super::AuditEvent;

/// The longest template.
pub const MAX_TEMPLATE_LEN: usize = 1024;

/// The fields a placeholder may name.
const FIELDS: [&str; 15] = [
    "action",
    "service",
    "outcome",
    "severity",
    "crud",
    "message",
    "actor.id",
    "actor.type",
    "actor.name",
    "target.id",
    "target.type",
    "target.name",
    "group.id",
    "group.name",
    "tenant",
];

/// A checked template: its text split into literal text and fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayTemplate {
    parts: Vec<Part>,
    source: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(&'static str),
}

impl DisplayTemplate {
    /// Parses `source`, naming what is wrong with it (field `template`).
    pub fn parse(source: &str) -> Result<Self, FieldError> {
        let bad = |message: String| FieldError::new("template", message);
        if source.trim().is_empty() {
            return Err(bad("must not be empty".into()));
        }
        if source.chars().count() > MAX_TEMPLATE_LEN {
            return Err(bad(format!(
                "must be at most {MAX_TEMPLATE_LEN} characters"
            )));
        }
        if source.chars().any(char::is_control) {
            return Err(bad("must not contain control characters".into()));
        }
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| bad("a \"{{\" is never closed by \"}}\"".into()))?;
            let name = after[..close].trim();
            let field = FIELDS.iter().find(|f| **f == name).ok_or_else(|| {
                bad(format!(
                    "unknown field {name:?}; a placeholder is one of {}",
                    FIELDS.join(", ")
                ))
            })?;
            parts.push(Part::Field(field));
            rest = &after[close + 2..];
        }
        if rest.contains("}}") {
            return Err(bad("a \"}}\" closes nothing".into()));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self {
            parts,
            source: source.to_owned(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// `event` in this template's words, HTML-escaped.
    pub fn render(&self, event: &AuditEvent) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => escape_into(text, &mut out),
                Part::Field(field) => {
                    escape_into(field_value(event, field).unwrap_or(""), &mut out)
                }
            }
        }
        out
    }
}

/// The sentence of an event whose action has no template: "Ann (user) did invoice.update on
/// invoice INV-1", HTML-escaped.
pub fn generic_sentence(event: &AuditEvent) -> String {
    let actor = event.actor.name.as_deref().unwrap_or(&event.actor.id);
    let mut text = format!("{actor} ({}) did {}", event.actor.kind, event.action);
    if let Some(target) = &event.target {
        let name = target.name.as_deref().unwrap_or(&target.id);
        text.push_str(&format!(" on {} {name}", target.kind));
    }
    let mut out = String::new();
    escape_into(&text, &mut out);
    out
}

/// Of a tenant's templates, the one for `action`: its exact name first, else the longest
/// `prefix.*` that covers it.
pub fn template_for<'a>(
    templates: &'a [(ActionPattern, DisplayTemplate)],
    action: &str,
) -> Option<&'a DisplayTemplate> {
    templates
        .iter()
        .filter(|(pattern, _)| pattern.matches(action))
        .max_by_key(|(pattern, _)| match pattern {
            ActionPattern::Exact(_) => usize::MAX,
            ActionPattern::Prefix(prefix) => prefix.len(),
        })
        .map(|(_, template)| template)
}

fn field_value<'a>(event: &'a AuditEvent, field: &str) -> Option<&'a str> {
    let target = event.target.as_ref();
    let group = event.group.as_ref();
    match field {
        "action" => Some(&event.action),
        "service" => Some(&event.service),
        "outcome" => Some(event.outcome.as_str()),
        "severity" => Some(event.severity.as_str()),
        "crud" => event.crud.map(|c| c.as_str()),
        "message" => event.message.as_deref(),
        "actor.id" => Some(&event.actor.id),
        "actor.type" => Some(&event.actor.kind),
        "actor.name" => event.actor.name.as_deref(),
        "target.id" => target.map(|t| t.id.as_str()),
        "target.type" => target.map(|t| t.kind.as_str()),
        "target.name" => target.and_then(|t| t.name.as_deref()),
        "group.id" => group.map(|g| g.id.as_str()),
        "group.name" => group.and_then(|g| g.name.as_deref()),
        "tenant" => Some(&event.tenant),
        _ => None,
    }
}

/// HTML's five special characters as entities. Not search's `escape_html`, which also escapes
/// `/` to match Elasticsearch's highlight encoder: the domain depends on no search code, and a
/// sentence needs no more than this.
fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AuditEvent {
        serde_json::from_value(serde_json::json!({
            "id": "0190b2b4-8d4e-7c3a-9b1e-1c2d3e4f5a6b", "tenant": "acme",
            "occurredAt": "2026-01-02T03:04:05Z", "receivedAt": "2026-01-02T03:04:05Z",
            "action": "invoice.update", "outcome": "SUCCESS", "severity": "INFO",
            "service": "billing",
            "actor": { "id": "u1", "type": "user", "name": "<b>Ann</b> & \"co\"", "ip": null },
            "target": { "id": "INV-1", "type": "invoice", "name": null },
            "message": null, "metadata": null, "idempotencyKey": null, "requestId": null,
            "traceId": null
        }))
        .unwrap()
    }

    #[test]
    fn fields_render_escaped_and_missing_ones_empty() {
        let template =
            DisplayTemplate::parse("{{actor.name}} updated invoice {{ target.id }}{{group.name}}")
                .unwrap();
        assert_eq!(
            template.render(&event()),
            "&lt;b&gt;Ann&lt;/b&gt; &amp; &quot;co&quot; updated invoice INV-1"
        );
        // The template's own text is escaped too: it cannot add markup.
        let markup = DisplayTemplate::parse("<img src=x onerror=alert(1)> {{action}}").unwrap();
        assert_eq!(
            markup.render(&event()),
            "&lt;img src=x onerror=alert(1)&gt; invoice.update"
        );
    }

    #[test]
    fn unknown_fields_and_broken_braces_are_refused() {
        for bad in [
            "{{actor.password}}",
            "{{metadata}}",
            "hello {{actor.id",
            "hello }} there",
            "",
            "   ",
        ] {
            let error = DisplayTemplate::parse(bad).unwrap_err();
            assert_eq!(error.field, "template", "{bad:?}");
        }
        assert!(DisplayTemplate::parse(&"x".repeat(MAX_TEMPLATE_LEN + 1)).is_err());
    }

    #[test]
    fn the_exact_action_wins_then_the_longest_prefix() {
        let templates = vec![
            (
                ActionPattern::parse("invoice.*"),
                DisplayTemplate::parse("any invoice").unwrap(),
            ),
            (
                ActionPattern::parse("invoice.line.*"),
                DisplayTemplate::parse("a line").unwrap(),
            ),
            (
                ActionPattern::parse("invoice.update"),
                DisplayTemplate::parse("updated").unwrap(),
            ),
        ];
        let chosen = |action: &str| template_for(&templates, action).map(|t| t.source().to_owned());
        assert_eq!(chosen("invoice.update").as_deref(), Some("updated"));
        assert_eq!(chosen("invoice.line.add").as_deref(), Some("a line"));
        assert_eq!(chosen("invoice.create").as_deref(), Some("any invoice"));
        assert_eq!(chosen("user.login"), None);
        assert_eq!(
            generic_sentence(&event()),
            "&lt;b&gt;Ann&lt;/b&gt; &amp; &quot;co&quot; (user) did invoice.update on invoice INV-1"
        );
    }
}
