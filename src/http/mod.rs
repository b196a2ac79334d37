//! The HTTP surface: `/graphql` (queries and mutations over POST; GraphiQL and the websocket
//! subscriptions over GET), the live dashboard at `/dashboard`, and `/health`.

mod graphql;
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
use crate::graphql::{AppSchema, Services};

pub use playground::DASHBOARD_PATH;

pub const GRAPHQL_PATH: &str = "/graphql";
/// Room for a full `recordEvents` batch: 1000 events with their largest message and metadata.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub schema: AppSchema,
    pub services: Arc<Services>,
    pub auth: Arc<Authenticator>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            GRAPHQL_PATH,
            get(graphql::playground_or_websocket).post(graphql::execute),
        )
        .route(DASHBOARD_PATH, get(playground::dashboard))
        .route(playground::ASSETS_ROUTE, get(playground::asset))
        .route("/health", get(health))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// A GraphQL-shaped error body for failures before GraphQL runs (credentials, unreadable body).
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, Json(body)).into_response()
}
