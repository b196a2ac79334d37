//! Making the service's own notes storable whatever callers sent: text an event may not hold is
//! escaped (and the note says which fields were), and a note the rules still refuse is replaced
//! by one that says so.

use serde_json::{json, Value};

use super::SERVICE;
use crate::domain::{ActorDraft, EventDraft, FieldError, TargetDraft, MAX_ID_LEN};

/// What stands in for a note the rules refused even after `make_storable`: its action, target
/// type and outcome, and why the rest could not be kept.
pub(super) fn unstorable(note: &EventDraft, error: &FieldError) -> EventDraft {
    EventDraft {
        action: note.action.clone(),
        service: SERVICE.to_owned(),
        actor: ActorDraft {
            id: "unknown".to_owned(),
            kind: "unknown".to_owned(),
            name: None,
            ip: None,
            href: None,
        },
        target: note.target.as_ref().map(|t| TargetDraft {
            id: "unknown".to_owned(),
            kind: t.kind.clone(),
            name: None,
            href: None,
        }),
        outcome: note.outcome,
        severity: note.severity,
        message: Some(format!(
            "this note could not be stored as it was ({}); its details are lost",
            escape_control(&error.to_string())
        )),
        metadata: Some(json!({ "unstorable": error.field })),
        ..Default::default()
    }
}

/// Escapes what a note may carry from a caller and an event may not hold: control characters in
/// ids (as `\u{85}`), text past the id length, NUL anywhere in the message or metadata. The
/// metadata's `escaped` lists the fields changed, so a reader knows the text is not verbatim.
pub(super) fn make_storable(draft: &mut EventDraft) {
    let mut escaped = Vec::new();
    if storable_id(&mut draft.actor.id) {
        escaped.push("actor.id");
    }
    if let Some(target) = &mut draft.target {
        if storable_id(&mut target.id) {
            escaped.push("target.id");
        }
    }
    if let Some(message) = &mut draft.message {
        if message.contains('\0') {
            *message = message.replace('\0', "\\u{0}");
            escaped.push("message");
        }
    }
    if let Some(metadata) = &mut draft.metadata {
        if escape_nul(metadata) {
            escaped.push("metadata");
        }
        if !escaped.is_empty() {
            if let Value::Object(fields) = metadata {
                fields.insert("escaped".to_owned(), json!(escaped));
            }
        }
    }
}

/// Makes `id` a valid event id: control characters escaped, cut to length, never blank. Whether
/// it changed.
fn storable_id(id: &mut String) -> bool {
    let original_len = id.len();
    let had_control = id.chars().any(char::is_control);
    if had_control {
        *id = escape_control(id);
    }
    let long = id.len() > MAX_ID_LEN;
    *id = clip(std::mem::take(id));
    let blank = id.trim().is_empty();
    if blank {
        *id = format!("(blank, {original_len} bytes)");
    }
    had_control || long || blank
}

fn escape_control(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Replaces NUL (which PostgreSQL's jsonb refuses) in every key and string; whether any was there.
fn escape_nul(value: &mut Value) -> bool {
    const ESCAPED: &str = "\\u{0}";
    match value {
        Value::String(s) if s.contains('\0') => {
            *s = s.replace('\0', ESCAPED);
            true
        }
        Value::Array(items) => items.iter_mut().fold(false, |any, v| escape_nul(v) | any),
        Value::Object(fields) => {
            let mut any = false;
            if fields.keys().any(|k| k.contains('\0')) {
                let taken = std::mem::take(fields);
                *fields = taken
                    .into_iter()
                    .map(|(k, v)| (k.replace('\0', ESCAPED), v))
                    .collect();
                any = true;
            }
            fields.values_mut().fold(any, |any, v| escape_nul(v) | any)
        }
        _ => false,
    }
}

/// Keeps an id within what an event accepts (cutting on a character boundary).
pub(super) fn clip(mut s: String) -> String {
    if s.len() > MAX_ID_LEN {
        let mut end = MAX_ID_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}
