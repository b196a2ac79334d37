//! The `/graphql` handlers: credentials first, then the schema.

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::credentials::{authenticate, presented_key};
use super::{error_response, AppState};
use crate::auth::AuthError;
use crate::graphql::request_data;

pub(super) async fn execute(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Result<GraphQLRequest, async_graphql_axum::rejection::GraphQLRejection>,
) -> Response {
    let principal = match authenticate(&state, &headers).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let request = match request {
        Ok(request) => request.into_inner(),
        Err(rejection) => {
            let message = format!("unreadable GraphQL request: {}", rejection.0);
            return error_response(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", &message);
        }
    };
    let mut request = request;
    request.data = request_data(&state.services, principal);
    GraphQLResponse::from(state.schema.execute(request).await).into_response()
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
    // Credentials may come with the upgrade request or, as browsers must, in connection_init.
    let header_key = presented_key(&parts.headers).map(str::to_owned);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let schema = state.schema.clone();
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let key = connection_init_key(&payload).or(header_key);
                    let principal = state
                        .auth
                        .verify(key.as_deref().unwrap_or_default())
                        .await
                        .map_err(|e| {
                            // The client learns what it can act on; store details stay in the log.
                            if let AuthError::Store(store) = &e {
                                tracing::warn!(error = %store, "cannot verify websocket credentials");
                                return async_graphql::Error::new("credentials cannot be verified right now");
                            }
                            async_graphql::Error::new(e.to_string())
                        })?;
                    Ok(request_data(&state.services, principal))
                })
                .serve()
        })
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
