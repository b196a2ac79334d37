//! The `/graphql` handlers: credentials, scope-free checks (content type, rate limits) first,
//! then the schema. Resolvers check scopes themselves.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::audit::{client_ip, noted, AuditNote};
use super::credentials::{authenticate, presented_key, rate_limit};
use super::{error_response, graphql_error_response, AppState, GRAPHQL_PATH};
use crate::auth::{AuthError, Principal};
use crate::graphql::{classify, request_data, ApiError, SocketCharge};
use crate::ratelimit::RequestKind;
use crate::self_audit::{RequestNote, Transport};

/// What a websocket's audit event names as its operation.
const WEBSOCKET_OPERATION: &str = "websocket /graphql";
/// Each socket's read buffer, allocated up front (tungstenite's default is 128 KiB, which made
/// 1000 subscribers cost 125 MiB). Clients send only small protocol messages; a larger one
/// still arrives whole, read in several chunks.
const WEBSOCKET_READ_BUFFER_BYTES: usize = 8 * 1024;

pub(super) async fn execute(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Result<GraphQLRequest, async_graphql_axum::rejection::GraphQLRejection>,
) -> Response {
    let principal = match authenticate(&state, &headers).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let unread = AuditNote::new(format!("POST {GRAPHQL_PATH}"), Some(&principal));
    if !is_json(&headers) {
        let response = error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "send the GraphQL request as JSON, with \"Content-Type: application/json\"",
        );
        return noted(response, unread);
    }
    let mut request = match request {
        Ok(request) => request.into_inner(),
        Err(rejection) => {
            let message = format!("unreadable GraphQL request: {}", rejection.0);
            let response = error_response(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", &message);
            return noted(response, unread);
        }
    };
    let document = state.documents.parse(&request.query);
    let operation = classify(
        document.as_ref(),
        request.operation_name.as_deref(),
        &request.variables,
    );
    if let Some(document) = document {
        request.set_parsed_query(document);
    }
    let mut note = AuditNote::new(operation.name.clone(), Some(&principal));
    // Before anything runs: aliases and fields together may record no more than one batch.
    if let Err(error) = operation.check_event_cap() {
        return noted(graphql_error_response(&error), note);
    }
    if let Err(response) = rate_limit(&state, &principal, operation.kind, operation.cost()).await {
        return noted(response, note);
    }
    request.data = request_data(&state.services, principal);
    let response = state.schema.execute(request).await;
    note.error_codes = response
        .errors
        .iter()
        .map(
            |e| match e.extensions.as_ref().and_then(|x| x.get("code")) {
                Some(async_graphql::Value::String(code)) => code.clone(),
                _ => "INTERNAL".to_owned(),
            },
        )
        .collect();
    noted(GraphQLResponse::from(response).into_response(), note)
}

/// `application/json`, with or without parameters such as a charset.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// How a websocket's connection_init went, for its audit event.
#[derive(Default)]
struct SocketOutcome {
    status: Option<u16>,
    principal: Option<Principal>,
}

/// GET: a websocket upgrade runs subscriptions (graphql-transport-ws); anything else gets
/// GraphiQL.
pub(super) async fn playground_or_websocket(
    State(state): State<AppState>,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    if !parts.headers.contains_key(header::UPGRADE) {
        return super::playground::graphiql();
    }
    let (upgrade, protocol) = match (
        WebSocketUpgrade::from_request_parts(&mut parts, &state).await,
        GraphQLProtocol::from_request_parts(&mut parts, &state).await,
    ) {
        (Ok(upgrade), Ok(protocol)) => (upgrade, protocol),
        (Err(rejection), _) => return rejection.into_response(),
        (_, Err(status)) => return status.into_response(),
    };
    let client_ip = client_ip(&parts.extensions);
    // Credentials may come with the upgrade request or, as browsers must, in connection_init.
    let header_key = presented_key(&parts.headers).map(str::to_owned);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(WEBSOCKET_READ_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let started = Instant::now();
            let outcome = Arc::new(Mutex::new(SocketOutcome::default()));
            let schema = state.schema.clone();
            let init_state = state.clone();
            let init_outcome = Arc::clone(&outcome);
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let key = connection_init_key(&payload).or(header_key);
                    let admitted = admit(&init_state, key.as_deref().unwrap_or_default()).await;
                    let mut outcome = init_outcome.lock().unwrap_or_else(|p| p.into_inner());
                    match admitted {
                        Ok((principal, data)) => {
                            outcome.status = Some(StatusCode::SWITCHING_PROTOCOLS.as_u16());
                            outcome.principal = Some(principal);
                            Ok(data)
                        }
                        Err((status, message)) => {
                            outcome.status = Some(status.as_u16());
                            // The protocol's close code is fixed (1002 here); the reason
                            // starts with the same code a GraphQL error would carry.
                            Err(async_graphql::Error::new(format!(
                                "{}: {message}",
                                socket_refusal_code(status)
                            )))
                        }
                    }
                })
                .serve()
                .await;
            let outcome = std::mem::take(&mut *outcome.lock().unwrap_or_else(|p| p.into_inner()));
            state.services.audit.request(RequestNote {
                transport: Transport::Websocket,
                operation: WEBSOCKET_OPERATION.to_owned(),
                // A socket closed before connection_init never authenticated.
                status: outcome.status.unwrap_or(StatusCode::UNAUTHORIZED.as_u16()),
                duration: started.elapsed(),
                caller: outcome.principal.map(|p| (p.tenant, p.credential)),
                error_codes: Vec::new(),
                client_ip,
            });
        })
}

/// Verifies a websocket's credentials, charges the connection to the caller's read budget and
/// takes one of its socket slots (held in the connection's data until it closes).
async fn admit(
    state: &AppState,
    key: &str,
) -> Result<(Principal, async_graphql::Data), (StatusCode, String)> {
    let principal = state.auth.verify(key).await.map_err(|e| match e {
        // The client learns what it can act on; store details stay in the log.
        AuthError::Store(store) => {
            tracing::warn!(error = %store, "cannot verify websocket credentials");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "credentials cannot be verified right now".to_owned(),
            )
        }
        other => (StatusCode::UNAUTHORIZED, other.to_string()),
    })?;
    if let Err(limited) = state.limiter.check(&principal, RequestKind::Read, 1).await {
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            ApiError::from(limited).to_string(),
        ));
    }
    let slot = state.sockets.acquire(&principal).ok_or_else(|| {
        (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "at most {} websocket connections per key at once",
                state.sockets.max()
            ),
        )
    })?;
    let mut data = request_data(&state.services, principal.clone());
    data.insert(slot);
    data.insert(SocketCharge {
        principal: principal.clone(),
        limiter: Arc::clone(&state.limiter),
    });
    Ok((principal, data))
}

/// The error code for a websocket refused with `status`, as `extensions.code` would say it.
fn socket_refusal_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
        StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
        _ => "UNAVAILABLE",
    }
}

/// `{"apiKey": "<key>"}` or `{"Authorization": "Bearer <key>"}` in connection_init.
fn connection_init_key(payload: &serde_json::Value) -> Option<String> {
    if let Some(key) = payload.get("apiKey").and_then(|v| v.as_str()) {
        return Some(key.to_owned());
    }
    payload
        .get("Authorization")
        .or_else(|| payload.get("authorization"))
        .and_then(|v| v.as_str())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| k.trim().to_owned())
}
