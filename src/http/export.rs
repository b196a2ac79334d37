//! `GET /export`: the caller's events matching a filter, streamed from PostgreSQL as NDJSON or
//! CSV, authenticated like `/graphql`. Every export is itself recorded as an audit event.
//!
//! Query parameters, all optional, named like `auditEvents`' arguments: `format` (`ndjson`, the
//! default, or `csv`), `orderBy` (`OCCURRED_AT_DESC`, the default, or `OCCURRED_AT_ASC`),
//! `minSeverity`, `occurredAfter`, `occurredBefore` (RFC 3339) once each, and the lists
//! `actions`, `services`, `actorIds`, `actorTypes`, `targetIds`, `targetTypes`, `outcomes` by
//! repeating the parameter (`services=a&services=b`). Values are never split on commas: ids and
//! names may contain them. `proofs=true` (NDJSON, no `orderBy`) makes the export verify itself:
//! ledger order, each event's index and leaf hash, gaps as subtree hashes, and the checkpoint
//! it reaches last (`traceledger verify --export`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::{future, stream, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendTimeoutError;

use super::audit::{noted, AuditNote};
use super::credentials::Caller;
use super::AppState;
use crate::access::auth::{Principal, Scope};
use crate::access::ratelimit::{RequestKind, Slot};
use crate::app::export::{self, ExportFormat, ExportOrder};
use crate::app::ApiError;
use crate::domain::{ActionPattern, EventFilter, EventOrder, FieldError, Outcome, Severity};

/// Encoded chunks an export keeps ready for its client.
const BODY_BUFFER_CHUNKS: usize = 1;
/// The `Retry-After` of an export refused because the caller runs its maximum already.
const EXPORT_BUSY_RETRY_SECONDS: u64 = 5;

pub(super) async fn export(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let note = AuditNote::new("GET /export", Some(&caller.0));
    if let Err(error) = caller.require(Scope::EventsRead) {
        return noted(error.into_response(), note);
    }
    if let Err(error) = caller.charge(&state, RequestKind::Read, 1).await {
        return noted(error.into_response(), note);
    }
    let principal = caller.0;
    // Exports are long readers: each caller runs only a few at once.
    let Some(slot) = state.exports.acquire(&principal) else {
        let error = ApiError::RateLimited {
            message: format!(
                "at most {} exports per key at once; retry when one has finished",
                state.exports.max()
            ),
            retry_after_seconds: EXPORT_BUSY_RETRY_SECONDS,
        };
        return noted(error.into_response(), note);
    };
    noted(stream_export(&state, principal, query, slot).await, note)
}

async fn stream_export(
    state: &AppState,
    principal: Principal,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    slot: Slot,
) -> Response {
    let request = match query {
        Ok(Query(params)) => ExportRequest::parse(params),
        Err(rejection) => Err(FieldError::new("query", rejection.body_text())),
    };
    let request = match request {
        Ok(request) => request,
        Err(e) => return ApiError::bad_input(e.field, e.message).into_response(),
    };
    let format = request.format;
    let body = match export::start(
        &state.services,
        &principal,
        format,
        request.filter,
        request.order,
    )
    .await
    {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let disposition = format!(
        "attachment; filename=\"traceledger-export.{}\"",
        format.as_str()
    );
    (
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        paced_body(body, state.export_send_timeout, slot),
    )
        .into_response()
}

/// The response body for `chunks`, which are produced by a task of their own and handed over
/// through a small buffer. A client that takes nothing for `send_timeout` ends the export: the
/// task stops (freeing its database connection and the caller's export slot), and the body ends
/// in an error, so the transfer is broken rather than looking complete.
fn paced_body<S>(chunks: S, send_timeout: Duration, slot: Slot) -> Body
where
    S: Stream<Item = Result<Vec<u8>, export::ExportError>> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(BODY_BUFFER_CHUNKS);
    let finished = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&finished);
    tokio::spawn(async move {
        let _slot = slot;
        futures::pin_mut!(chunks);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(std::io::Error::other);
            match sender.send_timeout(chunk, send_timeout).await {
                Ok(()) => {}
                Err(SendTimeoutError::Timeout(_)) => {
                    tracing::warn!(
                        timeout = ?send_timeout,
                        "export ended: its client took no data"
                    );
                    return;
                }
                Err(SendTimeoutError::Closed(_)) => return,
            }
        }
        done.store(true, Ordering::Release);
    });
    let received = stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let end = stream::once(async move {
        (!finished.load(Ordering::Acquire)).then(|| {
            Err(std::io::Error::other(
                "the export was ended before it finished",
            ))
        })
    })
    .filter_map(future::ready);
    Body::from_stream(received.chain(end))
}

/// What an export asks for, parsed from the query parameters.
#[derive(Debug, PartialEq)]
struct ExportRequest {
    format: ExportFormat,
    filter: EventFilter,
    order: ExportOrder,
}

impl ExportRequest {
    /// Errors name the offending parameter.
    fn parse(params: Vec<(String, String)>) -> Result<Self, FieldError> {
        let mut format = None;
        let mut order = None;
        let mut proofs = None;
        let mut spreadsheet_safe = None;
        let mut f = EventFilter::default();
        for (name, value) in params {
            if value.contains('\0') {
                return Err(FieldError::new(name, "must not contain NUL"));
            }
            let invalid = |expected: &str| FieldError::new(name.as_str(), expected);
            match name.as_str() {
                "format" => {
                    let parsed = ExportFormat::parse(&value)
                        .ok_or_else(|| invalid("must be ndjson or csv"))?;
                    set_once(&mut format, &name, parsed)?;
                }
                "orderBy" => {
                    let parsed = EventOrder::parse(&value)
                        .ok_or_else(|| invalid("must be OCCURRED_AT_DESC or OCCURRED_AT_ASC"))?;
                    set_once(&mut order, &name, parsed)?;
                }
                "proofs" | "spreadsheetSafe" => {
                    let parsed = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(invalid("must be true or false")),
                    };
                    let slot = if name == "proofs" {
                        &mut proofs
                    } else {
                        &mut spreadsheet_safe
                    };
                    set_once(slot, &name, parsed)?;
                }
                "actions" => f.actions.push(ActionPattern::parse(&value)),
                "services" => f.services.push(value),
                "actorIds" => f.actor_ids.push(value),
                "actorTypes" => f.actor_types.push(value),
                "targetIds" => f.target_ids.push(value),
                "targetTypes" => f.target_types.push(value),
                "groupIds" => f.group_ids.push(value),
                "outcomes" => f.outcomes.push(
                    Outcome::parse(&value)
                        .ok_or_else(|| invalid("must be SUCCESS, FAILURE or UNKNOWN"))?,
                ),
                "minSeverity" => {
                    let parsed = Severity::parse(&value).ok_or_else(|| {
                        invalid("must be DEBUG, INFO, NOTICE, WARNING, ERROR or CRITICAL")
                    })?;
                    set_once(&mut f.min_severity, &name, parsed)?;
                }
                "occurredAfter" | "occurredBefore" => {
                    let parsed = DateTime::parse_from_rfc3339(&value)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|_| {
                            invalid("must be an RFC 3339 date-time, e.g. 2026-11-22T14:03:00.123Z")
                        })?;
                    let slot = if name == "occurredAfter" {
                        &mut f.occurred_after
                    } else {
                        &mut f.occurred_before
                    };
                    set_once(slot, &name, parsed)?;
                }
                _ => return Err(invalid("unknown parameter")),
            }
        }
        f.check_sizes()?;
        let format =
            match (format.unwrap_or(ExportFormat::Ndjson), spreadsheet_safe) {
                (format, None | Some(false)) => format,
                (ExportFormat::Csv, Some(true)) => ExportFormat::SpreadsheetCsv,
                (_, Some(true)) => return Err(FieldError::new(
                    "spreadsheetSafe",
                    "goes with format=csv: it keeps spreadsheets from running fields as formulas",
                )),
            };
        let order = match (proofs.unwrap_or(false), order) {
            (false, order) => ExportOrder::Time(order.unwrap_or_default()),
            (true, Some(_)) => {
                return Err(FieldError::new(
                    "orderBy",
                    "an export with proofs is in ledger order; leave orderBy out",
                ))
            }
            (true, None) if format != ExportFormat::Ndjson => {
                return Err(FieldError::new(
                    "proofs",
                    "needs format=ndjson: the gap and checkpoint lines are JSON",
                ))
            }
            (true, None) => ExportOrder::LedgerWithProofs,
        };
        Ok(Self {
            format,
            filter: f,
            order,
        })
    }
}

/// Fills a parameter that may be given once.
fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), FieldError> {
    if slot.replace(value).is_some() {
        return Err(FieldError::new(name, "may be given once"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &[(&str, &str)]) -> Result<ExportRequest, FieldError> {
        ExportRequest::parse(
            query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_and_repeated_lists() {
        let request = parse(&[]).unwrap();
        assert_eq!(request.format, ExportFormat::Ndjson);
        assert_eq!(request.order, ExportOrder::Time(EventOrder::OccurredAtDesc));
        assert_eq!(request.filter, EventFilter::default());

        let request = parse(&[
            ("format", "csv"),
            ("services", "a,b"),
            ("services", "c"),
            ("actions", "invoice.*"),
            ("outcomes", "failure"),
            ("minSeverity", "WARNING"),
            ("occurredAfter", "2026-11-01T10:00:00+02:00"),
            ("orderBy", "OCCURRED_AT_ASC"),
        ])
        .unwrap();
        assert_eq!(request.format, ExportFormat::Csv);
        assert_eq!(request.order, ExportOrder::Time(EventOrder::OccurredAtAsc));
        assert_eq!(request.filter.services, ["a,b", "c"]);
        assert_eq!(
            request.filter.actions,
            [ActionPattern::Prefix("invoice.".into())]
        );
        assert_eq!(request.filter.outcomes, [Outcome::Failure]);
        assert_eq!(request.filter.min_severity, Some(Severity::Warning));
        assert_eq!(
            request.filter.occurred_after.unwrap().to_rfc3339(),
            "2026-11-01T08:00:00+00:00"
        );
    }

    #[test]
    fn errors_name_the_parameter() {
        for (query, field) in [
            (vec![("format", "xml")], "format"),
            (vec![("format", "csv"), ("format", "csv")], "format"),
            (vec![("orderBy", "NEWEST")], "orderBy"),
            (vec![("outcomes", "MAYBE")], "outcomes"),
            (vec![("minSeverity", "LOUD")], "minSeverity"),
            (vec![("occurredBefore", "yesterday")], "occurredBefore"),
            (vec![("service", "billing")], "service"),
            (vec![("actorIds", "a\0b")], "actorIds"),
        ] {
            assert_eq!(parse(&query).unwrap_err().field, field, "{query:?}");
        }
        let many: Vec<(&str, &str)> = vec![("targetIds", "t"); 101];
        assert_eq!(parse(&many).unwrap_err().field, "targetIds");
    }
}
