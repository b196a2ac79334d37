//! Self-audit of HTTP requests: a middleware times each API request and, once answered, queues
//! it for the audit trail of tenant `_traceledger` with what the handler noted about it (its
//! operation and caller). Websocket connections are recorded by their handler when they close.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::access::auth::{Credential, Principal};
use crate::app::own_trail::{RequestNote, Transport};
use crate::domain::Tenant;

/// What a handler knows about a request that the middleware does not: the operation it ran and
/// who called. Handlers put it in the response's extensions.
#[derive(Clone, Debug)]
pub(super) struct AuditNote {
    pub operation: String,
    pub caller: Option<(Tenant, Credential)>,
    /// The codes of the errors a GraphQL answer carried (its HTTP status is 200 regardless).
    pub error_codes: Vec<String>,
}

impl AuditNote {
    pub fn new(operation: impl Into<String>, principal: Option<&Principal>) -> Self {
        Self {
            operation: operation.into(),
            caller: principal.map(|p| (p.tenant.clone(), p.credential.clone())),
            error_codes: Vec::new(),
        }
    }
}

/// Who presented a credential that was refused (a revoked key's id, an expired token's subject,
/// or a fingerprint), put in the refusal's extensions for the audit trail.
#[derive(Clone, Debug)]
pub(super) struct RefusedCaller {
    pub id: String,
    pub kind: &'static str,
}

/// Attaches `note` to `response`.
pub(super) fn noted(mut response: Response, note: AuditNote) -> Response {
    response.extensions_mut().insert(note);
    response
}

pub(super) fn client_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

pub(super) async fn record_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let client_ip = client_ip(request.extensions());
    let fallback_operation = format!("{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    let note = response.extensions().get::<AuditNote>().cloned();
    let refused = response
        .extensions()
        .get::<RefusedCaller>()
        .map(|r| (r.id.clone(), r.kind));
    // Pages and assets are not API requests; a websocket is recorded when it closes.
    if status == StatusCode::SWITCHING_PROTOCOLS || (note.is_none() && status.as_u16() < 400) {
        return response;
    }
    let note = note.unwrap_or_else(|| AuditNote::new(fallback_operation, None));
    state.services.trail.request(RequestNote {
        transport: Transport::Http,
        operation: note.operation,
        status: status.as_u16(),
        duration: started.elapsed(),
        caller: note.caller,
        refused_caller: refused,
        error_codes: note.error_codes,
        client_ip,
    });
    response
}
