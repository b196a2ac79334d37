//! The HTTP surface: `/graphql` (queries and mutations over POST; GraphiQL and the websocket
//! subscriptions over GET), the live dashboard at `/dashboard`, `/export`, `/health`, `/ready`
//! and `/metrics`.

mod audit;
mod credentials;
mod export;
mod graphql;
mod health;
mod playground;
mod server;
mod socket;

use std::sync::Arc;

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde_json::json;
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::auth::Authenticator;
use crate::bus::Topology;
use crate::graphql::{ApiError, AppSchema, DocumentCache};
use crate::ratelimit::{ConcurrencyCap, RateLimiter};
use crate::services::Services;

pub use playground::DASHBOARD_PATH;
pub use server::serve;

pub const GRAPHQL_PATH: &str = "/graphql";
/// The content security policy of everything but the pages: nothing may load or run from it.
const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";
/// How long a browser may remember a CORS preflight's answer.
const CORS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Clone)]
pub struct AppState {
    pub schema: AppSchema,
    pub documents: Arc<DocumentCache>,
    pub services: Arc<Services>,
    pub auth: Arc<Authenticator>,
    pub limiter: Arc<RateLimiter>,
    /// Websocket connections each caller may hold open.
    pub sockets: ConcurrencyCap,
    /// Websockets that have not authenticated yet, on this instance.
    pub unauthenticated_sockets: Arc<tokio::sync::Semaphore>,
    /// How long a websocket may take to authenticate.
    pub socket_init_timeout: std::time::Duration,
    /// Exports each caller may run at once.
    pub exports: ConcurrencyCap,
    /// How long an export waits for its client to take more data before it is ended.
    pub export_send_timeout: std::time::Duration,
    /// For the queue-depth gauges (shared: the state is cloned for every request).
    pub amqp_url: Arc<str>,
    pub topology: Arc<Topology>,
}

/// What the HTTP layer itself accepts.
#[derive(Clone, Debug, Default)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    /// Origins allowed to call from browser pages; empty: same-origin only.
    pub cors_origins: Vec<HeaderValue>,
}

pub fn router(state: AppState, limits: HttpLimits) -> Router {
    let api = Router::new()
        .route(
            GRAPHQL_PATH,
            get(graphql::playground_or_websocket).post(graphql::execute),
        )
        .route("/export", get(export::export))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(middleware::map_response(coded_body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit::record_requests,
        ));
    let router = Router::new()
        .merge(api)
        .route("/", get(playground::root))
        .route(DASHBOARD_PATH, get(playground::dashboard))
        .route(playground::ASSETS_ROUTE, get(playground::asset))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .layer(TraceLayer::new_for_http())
        // Every answer: no content sniffing, no referrer leaking the API's URLs, never framed,
        // and a policy that lets nothing load or run from an answer that is not a page (the
        // pages set their own).
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_POLICY),
        ))
        .with_state(state);
    if limits.cors_origins.is_empty() {
        return router;
    }
    router.layer(
        CorsLayer::new()
            .allow_origin(limits.cors_origins)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("x-api-key"),
            ])
            .expose_headers([header::RETRY_AFTER, header::CONTENT_DISPOSITION])
            .max_age(CORS_MAX_AGE),
    )
}

/// The body limit answers 413 in plain text; clients get the API's coded error instead.
async fn coded_body_limit(response: Response) -> Response {
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "BAD_USER_INPUT",
        "the request body is larger than this server accepts",
    )
}

/// A GraphQL-shaped error body for failures before GraphQL runs (credentials, unreadable body).
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    error_body(status, message, json!({ "code": code }))
}

/// The API's error as an HTTP answer, for refusals before GraphQL runs or outside it: the status
/// that goes with its code, `Retry-After` where there is one.
pub(crate) fn api_error_response(error: &ApiError) -> Response {
    let status = match error {
        ApiError::BadInput { field, message } => return bad_input_response(field, message),
        ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
        ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
        ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = error_response(status, error.code(), &error.to_string());
    if let ApiError::RateLimited {
        retry_after_seconds,
        ..
    } = error
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
    }
    response
}

/// A refusal of a GraphQL request's content before the schema runs, answered as the schema would
/// answer it: HTTP 200 with the error, its code and field.
pub(crate) fn graphql_error_response(error: &ApiError) -> Response {
    let mut extensions = json!({ "code": error.code() });
    if let ApiError::BadInput { field, .. } = error {
        extensions["field"] = json!(field);
    }
    error_body(StatusCode::OK, &error.to_string(), extensions)
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
