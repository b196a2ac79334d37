//! The `/graphql` handlers: credentials, scope-free checks (content type, rate limits) first,
//! then the schema. Resolvers check scopes themselves.

use std::sync::Arc;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{FromRequest, FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::audit::{client_ip, noted, AuditNote};
use super::credentials::{presented_key, Caller};
use super::socket;
use super::{error_response, graphql_error_response, AppState, GRAPHQL_PATH};
use crate::app::ApiError;
use crate::graphql::{classify, request_data};

/// Each socket's read buffer, allocated up front (tungstenite's default, 128 KiB, would make
/// 1000 subscribers cost 125 MiB). Clients send only small protocol messages; a larger one
/// still arrives whole, read in several chunks.
const WEBSOCKET_READ_BUFFER_BYTES: usize = 8 * 1024;

/// POST: the credentials in the headers are checked before the body is read, so a caller
/// without a key can make the server neither buffer a body nor send `100 Continue`.
pub(super) async fn execute(
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let unread = AuditNote::new(format!("POST {GRAPHQL_PATH}"), Some(&caller.0));
    if !is_json(headers) {
        let response = error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "send the GraphQL request as JSON, with \"Content-Type: application/json\"",
        );
        return noted(response, unread);
    }
    let request = Request::from_parts(parts, body);
    let mut request = match GraphQLRequest::<GraphQLRejection>::from_request(request, &state).await
    {
        Ok(request) => request.into_inner(),
        Err(rejection) => {
            let message = format!("unreadable GraphQL request: {}", rejection.0);
            return noted(ApiError::bad_input("body", message).into_response(), unread);
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
    let mut note = AuditNote::new(operation.name.clone(), Some(&caller.0));
    // Before anything runs: aliases and fields together may record no more than one batch.
    if let Err(error) = operation.check_event_cap() {
        return noted(graphql_error_response(&error), note);
    }
    match caller
        .charge(&state, operation.kind, operation.cost())
        .await
    {
        Ok(()) => {}
        // A call larger than the caller may ever send is answered as the schema would.
        Err(error @ ApiError::BadInput { .. }) => {
            return noted(graphql_error_response(&error), note)
        }
        Err(error) => return noted(error.into_response(), note),
    }
    request.data = request_data(&state.services, caller.0);
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
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(protocol) = socket::requested_protocol(&parts.headers) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    // Until it authenticates, a socket takes one of the instance's few unauthenticated slots.
    let Ok(unauthenticated) = Arc::clone(&state.unauthenticated_sockets).try_acquire_owned() else {
        return ApiError::Unavailable(
            "too many websockets are waiting to authenticate; retry shortly".into(),
        )
        .into_response();
    };
    let admission = socket::Admission {
        client_ip: client_ip(&parts.extensions),
        // Credentials may come with the upgrade request or, as browsers must, in connection_init.
        header_key: presented_key(&parts.headers).map(str::to_owned),
        protocol,
        unauthenticated,
        init_timeout: state.socket_init_timeout,
        state,
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(WEBSOCKET_READ_BUFFER_BYTES)
        .on_upgrade(move |ws| socket::serve(ws, admission))
}
