//! Exports for auditors: a stream of stored events encoded as NDJSON or CSV chunk by chunk, so
//! memory stays constant however many events there are, and the audit event every export leaves.
//! With proofs, the export verifies itself ([`proofs`]).

mod proofs;

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::BoxStream;
use futures::{stream, Stream, StreamExt};
use serde_json::{json, Value};

use super::{Actor, ApiError, Services};
use crate::access::auth::{Credential, Principal};
use crate::domain::{
    ActionPattern, ActorDraft, AuditEvent, ColumnValue, EventDraft, EventFilter, EventOrder,
    RecordedBy, EVENT_COLUMNS, MAX_METADATA_BYTES,
};
use crate::store::StoreError;

/// Events encoded into one chunk of the body at most: whatever the database has already sent,
/// up to this many.
pub(super) const CHUNK_EVENTS: usize = 256;
/// The action and service of the event that records an export.
pub const EXPORT_ACTION: &str = "traceledger.export";
pub const EXPORT_SERVICE: &str = crate::domain::SERVICE_NAME;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line, with the field names of the GraphQL `AuditEvent`.
    Ndjson,
    /// RFC 4180 CSV with a header row: the event's columns ([`EVENT_COLUMNS`]), nested fields as
    /// `actor_*` and `target_*`, metadata as JSON text, absent values as empty fields.
    Csv,
    /// The same CSV for opening in a spreadsheet: a field that starts with `=`, `+`, `-`, `@`, a
    /// tab or a carriage return gets a leading `'`, so no value recorded by anyone runs as a
    /// formula on the reader's machine (OWASP's CSV injection advice).
    SpreadsheetCsv,
}

impl ExportFormat {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ndjson" => Some(Self::Ndjson),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ndjson => "ndjson",
            Self::Csv | Self::SpreadsheetCsv => "csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => "application/x-ndjson",
            Self::Csv | Self::SpreadsheetCsv => "text/csv; charset=utf-8",
        }
    }
}

/// The order of an export: by time, or the ledger's order with the proofs that let it verify
/// itself (NDJSON only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportOrder {
    Time(EventOrder),
    LedgerWithProofs,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot encode CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Encodes `events` in `format`: the header (CSV) first, then chunks of encoded events. A
/// failure ends the stream with an error (logged here), so the client sees a broken transfer
/// rather than a silently short export.
pub fn encode<S>(
    format: ExportFormat,
    events: S,
) -> impl Stream<Item = Result<Vec<u8>, ExportError>> + Send
where
    S: Stream<Item = Result<AuditEvent, StoreError>> + Send,
{
    let header = match format {
        ExportFormat::Ndjson => Ok(Vec::new()),
        ExportFormat::Csv | ExportFormat::SpreadsheetCsv => {
            write_csv([Ok(EVENT_COLUMNS.map(|c| Cow::Borrowed(c.name)))])
        }
    };
    let body = events
        .ready_chunks(CHUNK_EVENTS)
        .map(move |chunk| encode_chunk(format, chunk));
    stream::once(async { header }).chain(body).inspect(|chunk| {
        if let Err(e) = chunk {
            tracing::error!(error = %e, "export aborted");
        }
    })
}

fn encode_chunk(
    format: ExportFormat,
    chunk: Vec<Result<AuditEvent, StoreError>>,
) -> Result<Vec<u8>, ExportError> {
    let events = chunk.into_iter().collect::<Result<Vec<_>, _>>()?;
    match format {
        ExportFormat::Ndjson => {
            let mut out = Vec::new();
            for event in &events {
                serde_json::to_writer(&mut out, &event.api_json()?)?;
                out.push(b'\n');
            }
            Ok(out)
        }
        ExportFormat::Csv => write_csv(events.iter().map(csv_record)),
        ExportFormat::SpreadsheetCsv => write_csv(
            events
                .iter()
                .map(|e| csv_record(e).map(|record| record.map(formula_safe))),
        ),
    }
}

/// CSV rows, quoted where a field holds a comma, quote or line break.
fn write_csv<'a>(
    records: impl IntoIterator<Item = Result<CsvRecord<'a>, ExportError>>,
) -> Result<Vec<u8>, ExportError> {
    let mut out = Vec::new();
    let mut csv = csv::Writer::from_writer(&mut out);
    for record in records {
        csv.write_record(record?.iter().map(|field| field.as_bytes()))?;
    }
    csv.flush().map_err(csv::Error::from)?;
    drop(csv);
    Ok(out)
}

type CsvRecord<'a> = [Cow<'a, str>; EVENT_COLUMNS.len()];

/// A field a spreadsheet would take for a formula, made text.
fn formula_safe(field: Cow<'_, str>) -> Cow<'_, str> {
    if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{field}"))
    } else {
        field
    }
}

fn csv_record(e: &AuditEvent) -> Result<CsvRecord<'_>, ExportError> {
    let mut failed = None;
    let record = e.column_values().map(|value| match value {
        ColumnValue::Uuid(id) => Cow::Owned(id.to_string()),
        ColumnValue::Text(text) => Cow::Borrowed(text.unwrap_or_default()),
        ColumnValue::Time(at) => Cow::Owned(timestamp(at)),
        ColumnValue::Severity(severity) => Cow::Borrowed(severity.as_str()),
        ColumnValue::Json(None) => Cow::Borrowed(""),
        ColumnValue::Json(Some(json)) => match serde_json::to_string(json) {
            Ok(text) => Cow::Owned(text),
            Err(e) => {
                failed = Some(e);
                Cow::Borrowed("")
            }
        },
    });
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(record),
    }
}

/// RFC 3339 in UTC with a `Z`, as the API answers.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Starts `principal`'s export of its events matching `filter`: waits for the store's first row
/// (so a store that cannot answer is an error, not a broken body), records the export in the
/// tenant's own log and the service's trail, and returns the encoded body.
pub async fn start(
    services: &Arc<Services>,
    principal: &Principal,
    format: ExportFormat,
    filter: EventFilter,
    order: ExportOrder,
) -> Result<BoxStream<'static, Result<Vec<u8>, ExportError>>, ApiError> {
    // A viewer token exports its group's events, and only if its minter allowed it; the ledger's
    // proofs cover the whole tenant, so they are not its to take.
    if let Some(view) = &principal.view {
        if !view.export_allowed {
            return Err(ApiError::Forbidden(
                "this viewer token was minted without export".into(),
            ));
        }
        if matches!(order, ExportOrder::LedgerWithProofs) {
            return Err(ApiError::Forbidden(
                "a viewer token cannot export proofs, which cover the whole tenant".into(),
            ));
        }
    }
    let filter = principal.held_to_view(filter);
    let order = match order {
        ExportOrder::Time(order) => order,
        ExportOrder::LedgerWithProofs => {
            let checkpoint = services
                .ledger
                .latest_checkpoint(&principal.tenant)
                .await?
                .ok_or_else(|| {
                    ApiError::NotFound(
                        "the ledger has no checkpoint yet: retry in a second (proofs=true)".into(),
                    )
                })?;
            record(services, principal, format, &filter, None).await;
            let store = services.store.clone();
            return Ok(
                proofs::lines(store, principal.tenant.to_string(), filter, checkpoint).boxed(),
            );
        }
    };
    let mut events = Box::pin(services.store.stream_events(
        principal.tenant.to_string(),
        filter.clone(),
        order,
    ));
    let first = events.next().await;
    if let Some(Err(e)) = first {
        return Err(e.into());
    }
    // Recorded once the export is really under way, not for one the store refused.
    record(services, principal, format, &filter, Some(order)).await;
    Ok(encode(format, stream::iter(first).chain(events)).boxed())
}

/// Records the export: a note in the service's trail, and an event in the tenant's own log,
/// through the normal pipeline in the background (a failure is logged; the export goes on).
async fn record(
    services: &Arc<Services>,
    principal: &Principal,
    format: ExportFormat,
    filter: &EventFilter,
    order: Option<EventOrder>,
) {
    let noted = services.trail.action(
        Actor::Caller(principal),
        "events.export",
        None,
        format!("export of tenant {}'s events", principal.tenant),
        json!({ "format": format.as_str(), "proofs": order.is_none() }),
    );
    if let Err(e) = noted.await {
        tracing::error!(error = %e, "the export's note was not kept");
    }
    let draft = export_event(&principal.credential, format, filter, order);
    let services = Arc::clone(services);
    let tenant = principal.tenant.clone();
    tokio::spawn(async move {
        let recorded = services
            .recorder
            .record(&tenant, &RecordedBy::service(), vec![draft])
            .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, tenant = %tenant, "could not record an export");
        }
    });
}

/// The event that records an export, made by `caller`: its metadata says which
/// format, filter and order were asked for.
/// The names of a filter's fields and the SHA-256 of the whole, for a viewer's export record.
fn viewer_filter_json(filter: &EventFilter) -> Value {
    let full = filter_json(filter);
    let fields: Vec<&String> = full
        .as_object()
        .map(|f| f.keys().collect())
        .unwrap_or_default();
    json!({
        "fields": fields,
        "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(full.to_string().as_bytes())),
    })
}

pub fn export_event(
    caller: &Credential,
    format: ExportFormat,
    filter: &EventFilter,
    order: Option<EventOrder>,
) -> EventDraft {
    // A viewer token's holder is the tenant's customer: what it writes into the tenant's
    // permanent trail is only which filters it used and a digest of their values, never text of
    // its choosing.
    let filter = match caller.group() {
        Some(_) => viewer_filter_json(filter),
        None => filter_json(filter),
    };
    // No order: an export with proofs, in ledger order.
    let mut metadata = json!({
        "format": format.as_str(),
        "orderBy": order.map_or("LEDGER", EventOrder::as_str),
        "proofs": order.is_none(),
        "filter": filter,
    });
    // A filter of many long values can outgrow the metadata limit; the export is still recorded.
    if metadata.to_string().len() > MAX_METADATA_BYTES {
        metadata["filter"] = json!({ "omitted": "larger than the metadata limit" });
    }
    EventDraft {
        action: EXPORT_ACTION.to_owned(),
        service: EXPORT_SERVICE.to_owned(),
        actor: ActorDraft {
            id: caller.id(),
            kind: caller.kind().to_owned(),
            name: None,
            ip: None,
            href: None,
        },
        message: Some(format!("export of audit events as {}", format.as_str())),
        metadata: Some(metadata),
        group: crate::app::own_trail::group_draft(caller),
        ..Default::default()
    }
}

/// The filter as the client would write it, leaving out what it does not set.
fn filter_json(f: &EventFilter) -> Value {
    let mut out = serde_json::Map::new();
    let actions: Vec<Cow<'_, str>> = f
        .actions
        .iter()
        .map(|a| match a {
            ActionPattern::Exact(name) => Cow::Borrowed(name.as_str()),
            ActionPattern::Prefix(prefix) => Cow::Owned(format!("{prefix}*")),
        })
        .collect();
    let outcomes: Vec<&str> = f.outcomes.iter().map(|o| o.as_str()).collect();
    let lists: [(&str, Vec<&str>); 8] = [
        ("actions", actions.iter().map(|a| a.as_ref()).collect()),
        ("services", f.services.iter().map(String::as_str).collect()),
        ("actorIds", f.actor_ids.iter().map(String::as_str).collect()),
        (
            "actorTypes",
            f.actor_types.iter().map(String::as_str).collect(),
        ),
        (
            "targetIds",
            f.target_ids.iter().map(String::as_str).collect(),
        ),
        (
            "targetTypes",
            f.target_types.iter().map(String::as_str).collect(),
        ),
        ("groupIds", f.group_ids.iter().map(String::as_str).collect()),
        ("outcomes", outcomes),
    ];
    for (name, values) in lists {
        if !values.is_empty() {
            out.insert(name.to_owned(), json!(values));
        }
    }
    if let Some(min) = f.min_severity {
        out.insert("minSeverity".into(), json!(min.as_str()));
    }
    if let Some(t) = f.occurred_after {
        out.insert("occurredAfter".into(), json!(timestamp(t)));
    }
    if let Some(t) = f.occurred_before {
        out.insert("occurredBefore".into(), json!(timestamp(t)));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Actor, Outcome, Severity, Target};
    use uuid::Uuid;

    fn event(message: &str) -> AuditEvent {
        let now = Utc::now();
        AuditEvent {
            id: Uuid::now_v7(),
            tenant: "acme".into(),
            occurred_at: now,
            received_at: now,
            action: "invoice.update".into(),
            outcome: Outcome::Failure,
            severity: Severity::Warning,
            service: "billing".into(),
            actor: Actor {
                id: "alice".into(),
                kind: "user".into(),
                name: None,
                ip: None,
                href: None,
            },
            target: Some(Target {
                id: "T-1".into(),
                kind: "invoice".into(),
                name: Some("Q3, \"final\"".into()),
                href: None,
            }),
            message: Some(message.into()),
            metadata: Some(json!({ "k": "v" })),
            idempotency_key: None,
            request_id: None,
            trace_id: None,
            recorded_by: None,
            group: None,
            crud: None,
        }
    }

    async fn encoded(format: ExportFormat, events: Vec<AuditEvent>) -> String {
        let chunks: Vec<_> = encode(format, stream::iter(events.into_iter().map(Ok)))
            .collect()
            .await;
        let bytes: Vec<u8> = chunks.into_iter().flat_map(|c| c.unwrap()).collect();
        String::from_utf8(bytes).unwrap()
    }

    #[tokio::test]
    async fn csv_has_a_header_even_when_empty_and_quotes_what_needs_it() {
        assert_eq!(
            encoded(ExportFormat::Csv, vec![]).await,
            format!(
                "{}\n",
                crate::domain::column_names().collect::<Vec<_>>().join(",")
            )
        );
        let csv = encoded(ExportFormat::Csv, vec![event("a,b\n\"c\"")]).await;
        assert!(csv.contains(r#","Q3, ""final""","#), "{csv}");
        assert!(csv.contains("\"a,b\n\"\"c\"\"\""), "{csv}");
        assert!(csv.contains(r#","{""k"":""v""}","#), "{csv}");
    }

    #[tokio::test]
    async fn spreadsheet_csv_makes_would_be_formulas_text() {
        let csv = encoded(
            ExportFormat::SpreadsheetCsv,
            vec![
                event("=HYPERLINK(\"http://evil\")"),
                event("@SUM(A1)"),
                event("plain"),
            ],
        )
        .await;
        assert!(
            csv.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""),
            "{csv}"
        );
        assert!(csv.contains(",'@SUM(A1),"), "{csv}");
        assert!(csv.contains(",plain,"), "{csv}");
        let exact = encoded(ExportFormat::Csv, vec![event("=1+1")]).await;
        assert!(exact.contains(",=1+1,"), "{exact}");
    }

    #[tokio::test]
    async fn ndjson_is_one_event_per_line() {
        let events = vec![event("one\ntwo"), event("three")];
        let ndjson = encoded(ExportFormat::Ndjson, events.clone()).await;
        let parsed: Vec<AuditEvent> = ndjson
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed, events);
    }

    #[test]
    fn an_oversized_filter_is_left_out_of_the_export_event() {
        let filter = EventFilter {
            services: vec!["s".repeat(250); 100],
            ..Default::default()
        };
        let draft = export_event(
            &Credential::ApiKey(Uuid::now_v7()),
            ExportFormat::Csv,
            &filter,
            Some(EventOrder::default()),
        );
        let metadata = draft.metadata.unwrap();
        assert_eq!(
            metadata["filter"]["omitted"],
            "larger than the metadata limit"
        );
        assert_eq!(metadata["format"], "csv");
    }
}
