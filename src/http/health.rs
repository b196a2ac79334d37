//! `/health` (the process is alive), `/ready` (each dependency, and a verdict a load balancer can
//! use) and `/metrics` (Prometheus text format).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;
use crate::app::readiness::{readiness, refresh_gauges, Status};
use crate::telemetry;

pub(super) async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 while the service can do its job (`up` or `degraded`), 503 when it cannot (`down`).
pub(super) async fn ready(State(state): State<AppState>) -> Response {
    let report = readiness(&state.services).await;
    let status = match report.status {
        Status::Up | Status::Degraded => StatusCode::OK,
        Status::Down => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(report)).into_response()
}

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    refresh_gauges(&state.services).await;
    let body = telemetry::metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
