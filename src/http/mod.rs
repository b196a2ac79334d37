//! The HTTP surface: `/graphql` (queries and mutations over POST; queries, GraphiQL and the
//! websocket subscriptions over GET), the live dashboard at `/dashboard`, `/export`, `/health`, `/ready`
//! and `/metrics`.

mod audit;
mod credentials;
mod export;
mod graphql;
mod health;
mod ledger;
mod negotiate;
mod playground;
mod server;
mod socket;
mod viewer;

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

use crate::access::auth::Authenticator;
use crate::access::ratelimit::{ConcurrencyCap, RateLimiter};
use crate::app::Services;
use crate::graphql::{ApiError, AppSchema, DocumentCache, PersistedQueries};

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
    pub persisted: Arc<PersistedQueries>,
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
}

/// Where the API listens and what its HTTP layer accepts.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "HTTP")]
pub struct HttpSettings {
    /// Address the HTTP API listens on.
    #[arg(
        value_name = "LISTEN",
        id = "listen",
        long = "listen",
        env = "TRACELEDGER_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: std::net::SocketAddr,

    /// How long a client may take to send a request's headers, and so how long a connection may
    /// sit idle between requests, before it is closed.
    #[arg(
        value_name = "HEADER_TIMEOUT_MS",
        id = "http-header-timeout-ms",
        long = "http-header-timeout-ms",
        env = "TRACELEDGER_HTTP_HEADER_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub header_timeout_ms: u64,

    /// The largest request body accepted, in bytes: room for a full `recordEvents` batch.
    #[arg(
        value_name = "MAX_BODY_BYTES",
        id = "max-body-bytes",
        long = "max-body-bytes",
        env = "TRACELEDGER_MAX_BODY_BYTES",
        default_value_t = 32 * 1024 * 1024
    )]
    pub max_body_bytes: usize,

    /// Origins (e.g. https://admin.example.com) whose browser pages may call the API; none by
    /// default, so only same-origin pages can.
    #[arg(
        value_name = "CORS_ORIGINS",
        id = "cors-origins",
        long = "cors-origins",
        env = "TRACELEDGER_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// How long a new websocket may take to send `connection_init` before it is closed (4408).
    #[arg(
        value_name = "SOCKET_INIT_TIMEOUT_MS",
        id = "socket-init-timeout-ms",
        long = "socket-init-timeout-ms",
        env = "TRACELEDGER_SOCKET_INIT_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub socket_init_timeout_ms: u64,

    /// Websockets that have not authenticated yet that one instance holds at once; more are
    /// refused (503) until some authenticate or time out.
    #[arg(
        value_name = "MAX_UNAUTHENTICATED_SOCKETS",
        id = "max-unauthenticated-sockets",
        long = "max-unauthenticated-sockets",
        env = "TRACELEDGER_MAX_UNAUTHENTICATED_SOCKETS",
        default_value_t = 256
    )]
    pub max_unauthenticated_sockets: u32,

    /// An export whose client takes no data for this long is ended, freeing its connection.
    #[arg(
        value_name = "EXPORT_SEND_TIMEOUT_MS",
        id = "export-send-timeout-ms",
        long = "export-send-timeout-ms",
        env = "TRACELEDGER_EXPORT_SEND_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub export_send_timeout_ms: u64,
}

impl HttpSettings {
    pub fn header_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.header_timeout_ms)
    }
}

/// A configured CORS origin that is no header value.
#[derive(Debug, thiserror::Error)]
#[error("CORS origin {0:?} is not a valid header value")]
pub struct BadCorsOrigin(pub String);

pub fn router(state: AppState, settings: &HttpSettings) -> Result<Router, BadCorsOrigin> {
    let cors_origins = settings
        .cors_origins
        .iter()
        .map(|o| HeaderValue::from_str(o).map_err(|_| BadCorsOrigin(o.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let api = Router::new()
        .route(GRAPHQL_PATH, get(graphql::get).post(graphql::execute))
        .route("/export", get(export::export))
        .route("/ledger/checkpoint", get(ledger::checkpoint))
        .route("/ledger/tile/{*path}", get(ledger::tile))
        .layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
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
        .route(viewer::VIEWER_PAGE_PATH, get(viewer::page))
        .route(viewer::VIEWER_MODULE_PATH, get(viewer::module))
        .route("/ledger/key", get(ledger::key))
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
    if cors_origins.is_empty() {
        return Ok(router);
    }
    Ok(router.layer(
        CorsLayer::new()
            .allow_origin(cors_origins)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("x-api-key"),
            ])
            .expose_headers([header::RETRY_AFTER, header::CONTENT_DISPOSITION])
            .max_age(CORS_MAX_AGE),
    ))
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

/// A GraphQL-shaped error body for HTTP's own refusals, which are no use case's (a body that is
/// not JSON, too large, or unreadable).
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    error_body(status, message, json!({ "code": code }))
}

/// The HTTP status that goes with each of the API's error codes: the one table for HTTP.
pub(crate) fn status_of(error: &ApiError) -> StatusCode {
    match error {
        ApiError::BadInput { .. } => StatusCode::BAD_REQUEST,
        ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
        ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        // Only subscriptions end this way; an HTTP answer would not keep up either.
        ApiError::SlowConsumer { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ApiError::PersistedQueryNotFound => StatusCode::BAD_REQUEST,
        ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The API's error as an HTTP answer, for refusals before GraphQL runs or outside it: its status,
/// a GraphQL-shaped body with its code (and field), `Retry-After` where there is one.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = coded_error_body(status_of(&self), &self);
        if let ApiError::RateLimited {
            retry_after_seconds,
            ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        }
        response
    }
}

/// `error` as a GraphQL-shaped body with `status`: its message, its code and (for bad input) its
/// field.
pub(crate) fn coded_error_body(status: StatusCode, error: &ApiError) -> Response {
    let mut extensions = json!({ "code": error.code() });
    if let ApiError::BadInput { field, .. } = error {
        extensions["field"] = json!(field);
    }
    error_body(status, &error.to_string(), extensions)
}

fn error_body(status: StatusCode, message: &str, extensions: serde_json::Value) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": extensions }] });
    (status, Json(body)).into_response()
}
