//! The HTTP surface: `/graphql` (queries and mutations over POST; GraphiQL and the websocket
//! subscriptions over GET), the live dashboard at `/dashboard`, `/export`, `/health`, `/ready`
//! and `/metrics`.

mod credentials;
mod export;
mod graphql;
mod health;
mod playground;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::auth::Authenticator;
use crate::bus::Topology;
use crate::graphql::AppSchema;
use crate::services::Services;

pub use playground::DASHBOARD_PATH;

pub const GRAPHQL_PATH: &str = "/graphql";
/// Room for a full `recordEvents` batch: 1000 events with their largest message and metadata.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub schema: AppSchema,
    pub services: Arc<Services>,
    pub auth: Arc<Authenticator>,
    /// For the queue-depth gauges.
    pub amqp_url: String,
    pub topology: Topology,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            GRAPHQL_PATH,
            get(graphql::playground_or_websocket).post(graphql::execute),
        )
        .route(DASHBOARD_PATH, get(playground::dashboard))
        .route(playground::ASSETS_ROUTE, get(playground::asset))
        .route("/export", get(export::export))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A GraphQL-shaped error body for failures before GraphQL runs (credentials, unreadable body).
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    error_body(status, message, json!({ "code": code }))
}

/// `BAD_USER_INPUT` naming the offending input, as the API reports it, for routes besides GraphQL.
pub(crate) fn bad_input_response(field: &str, message: &str) -> Response {
    let extensions = json!({ "code": "BAD_USER_INPUT", "field": field });
    error_body(StatusCode::BAD_REQUEST, message, extensions)
}

fn error_body(status: StatusCode, message: &str, extensions: serde_json::Value) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": extensions }] });
    (status, Json(body)).into_response()
}
