//! The `/graphql` handlers, GraphQL over HTTP: queries and mutations over POST, queries over GET,
//! in the answer type the client accepts. Credentials and scope-free checks (content type, rate
//! limits) come first, then the schema; resolvers check scopes themselves.

use std::sync::Arc;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::GraphQLRequest;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::audit::{client_ip, noted, AuditNote};
use super::credentials::{presented_key, Caller};
use super::negotiate::{self, Answer};
use super::socket;
use super::{coded_error_body, error_response, AppState, GRAPHQL_PATH};
use crate::access::ratelimit::RequestKind;
use crate::app::ApiError;
use crate::graphql::{classify, request_data, Executed};

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
    let Some(answer) = negotiate::answer_for(headers) else {
        return noted(not_acceptable(), unread);
    };
    if !is_json(headers) {
        let response = error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "send the GraphQL request as JSON, with \"Content-Type: application/json\"",
        );
        return noted(response, unread);
    }
    let request = Request::from_parts(parts, body);
    let request = match GraphQLRequest::<GraphQLRejection>::from_request(request, &state).await {
        Ok(request) => request.into_inner(),
        Err(rejection) => {
            let message = format!("unreadable GraphQL request: {}", rejection.0);
            return noted(ApiError::bad_input("body", message).into_response(), unread);
        }
    };
    run(&state, caller, request, Via::Post, answer).await
}

/// How a request came: a GET may be answered "not modified" and never runs a mutation.
enum Via {
    Post,
    Get { if_none_match: Option<HeaderValue> },
}

/// One GraphQL request, however it came: persisted query, classification, event cap, budget,
/// then the schema; every answer carries the note for the audit trail.
async fn run(
    state: &AppState,
    caller: Caller,
    mut request: async_graphql::Request,
    via: Via,
    answer: Answer,
) -> Response {
    let method = match via {
        Via::Post => "POST",
        Via::Get { .. } => "GET",
    };
    let mut note = AuditNote::new(format!("{method} {GRAPHQL_PATH}"), Some(&caller.0));
    let view = caller.0.view.as_ref().map(|v| &v.scope);
    let registration = match state
        .persisted
        .resolve(&caller.0.tenant, view, &mut request)
    {
        Ok(registration) => registration,
        Err(error) => return noted(refusal(&error, answer), note),
    };
    if request.query.is_empty() {
        let error = ApiError::bad_input("query", "the request has no query");
        return noted(error.into_response(), note);
    }
    let document = state.documents.parse(&request.query);
    let operation = classify(
        document.as_ref(),
        request.operation_name.as_deref(),
        &request.variables,
    );
    let parsed = document.is_some();
    if let Some(document) = document {
        request.set_parsed_query(document);
    }
    note.operation.clone_from(&operation.name);
    if matches!(via, Via::Get { .. }) && operation.kind == RequestKind::Write {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_USER_INPUT",
            "mutations are sent with POST; GET runs queries only",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return noted(response, note);
    }
    // Before anything runs: aliases and fields together may record no more than one batch.
    if let Err(error) = operation.check_event_cap() {
        return noted(refusal(&error, answer), note);
    }
    match caller.charge(state, operation.kind, operation.cost()).await {
        Ok(()) => {}
        // A call larger than the caller may ever send is answered as the schema would.
        Err(error @ ApiError::BadInput { .. }) => return noted(refusal(&error, answer), note),
        Err(error) => return noted(error.into_response(), note),
    }
    // Kept only for a charged request whose text parses.
    if let Some(registration) = registration.filter(|_| parsed) {
        state.persisted.keep(registration);
    }
    request.data = request_data(&state.services, caller.0);
    let executed = crate::graphql::execute(&state.schema, request).await;
    note.error_codes = executed
        .response
        .errors
        .iter()
        .map(
            |e| match e.extensions.as_ref().and_then(|x| x.get("code")) {
                Some(async_graphql::Value::String(code)) => code.clone(),
                _ => "INTERNAL".to_owned(),
            },
        )
        .collect();
    noted(graphql_answer(executed, answer, via), note)
}

/// The schema's answer in the type the client accepts. An operation that never ran has no
/// `data` entry.
fn graphql_answer(executed: Executed, answer: Answer, via: Via) -> Response {
    let Executed { response, ran } = executed;
    let (status, body) = if ran {
        (StatusCode::OK, serde_json::to_vec(&response))
    } else {
        (
            answer.request_error_status(),
            serde_json::to_vec(&json!({ "errors": response.errors })),
        )
    };
    let body = match body {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "a GraphQL answer did not serialize");
            return ApiError::Internal.into_response();
        }
    };
    let mut headers = response.http_headers;
    headers.insert(header::CONTENT_TYPE, answer.content_type());
    let Via::Get { if_none_match } = via else {
        return (status, headers, body).into_response();
    };
    // The answer depends on who asks and in which type: only the asker's own browser may keep
    // it, and must ask again each time (a 304 saves sending the same answer twice).
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Authorization, X-API-Key"),
    );
    let tag = entity_tag(&body);
    let unchanged = if_none_match
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    if let Ok(value) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, value);
    }
    if unchanged && status == StatusCode::OK {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (status, headers, body).into_response()
}

/// A strong validator of an answer's bytes.
fn entity_tag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// A refusal of a request's content before the schema runs, shaped as the schema's own errors:
/// its code and field, with the status of a request error in the type the client accepts.
fn refusal(error: &ApiError, answer: Answer) -> Response {
    let mut response = coded_error_body(answer.request_error_status(), error);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, answer.content_type());
    response
}

fn not_acceptable() -> Response {
    error_response(
        StatusCode::NOT_ACCEPTABLE,
        "BAD_USER_INPUT",
        "this endpoint answers application/graphql-response+json or application/json",
    )
}

/// `application/json`, with or without parameters such as a charset.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// A GET's parameters, each JSON one as a string (GraphQL over HTTP's URL form).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParameters {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

impl GetParameters {
    fn into_request(self) -> Result<async_graphql::Request, ApiError> {
        let mut request = async_graphql::Request::new(self.query.unwrap_or_default());
        request.operation_name = self.operation_name;
        if let Some(variables) = self.variables {
            request.variables = serde_json::from_str(&variables).map_err(|e| {
                ApiError::bad_input("variables", format!("variables must be a JSON object: {e}"))
            })?;
        }
        if let Some(extensions) = self.extensions {
            request.extensions = serde_json::from_str(&extensions).map_err(|e| {
                ApiError::bad_input(
                    "extensions",
                    format!("extensions must be a JSON object: {e}"),
                )
            })?;
        }
        Ok(request)
    }
}

/// GET with `query` or `extensions` in the URL: a query (never a mutation), unless a browser
/// asks for a page.
async fn execute_get(state: AppState, mut parts: Parts) -> Response {
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        Err(refusal) => return refusal,
    };
    let unread = AuditNote::new(format!("GET {GRAPHQL_PATH}"), Some(&caller.0));
    let Some(answer) = negotiate::answer_for(&parts.headers) else {
        return noted(not_acceptable(), unread);
    };
    let request = Query::<GetParameters>::try_from_uri(&parts.uri)
        .map_err(|e| ApiError::bad_input("query string", e.body_text()))
        .and_then(|Query(parameters)| parameters.into_request());
    let request = match request {
        Ok(request) => request,
        Err(error) => return noted(error.into_response(), unread),
    };
    let if_none_match = parts.headers.get(header::IF_NONE_MATCH).cloned();
    run(&state, caller, request, Via::Get { if_none_match }, answer).await
}

/// Whether a GET carries a GraphQL request rather than asking for GraphiQL.
fn is_graphql_get(parts: &Parts) -> bool {
    let carries_request = parts.uri.query().is_some_and(|q| {
        q.split('&')
            .filter_map(|pair| pair.split('=').next())
            .any(|name| name == "query" || name == "extensions")
    });
    carries_request && !negotiate::wants_html(&parts.headers)
}

/// GET: a websocket upgrade runs subscriptions (graphql-transport-ws), a URL with a query runs
/// it, and anything else gets GraphiQL.
pub(super) async fn get(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    if !parts.headers.contains_key(header::UPGRADE) {
        if is_graphql_get(&parts) {
            return execute_get(state, parts).await;
        }
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
