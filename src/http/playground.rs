//! The browser pages, GraphiQL and the live dashboard, built from `web-playground/` and embedded
//! in the binary at compile time: they work offline and `traceledger serve` needs no npm.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use rust_embed::Embed;

/// `npm --prefix web-playground run build` writes here; the output is committed.
#[derive(Embed)]
#[folder = "web-playground/dist/"]
struct Built;

pub const DASHBOARD_PATH: &str = "/dashboard";
/// Must match `base` in web-playground/vite.config.js, which the built pages link to.
pub const ASSETS_ROUTE: &str = "/playground/assets/{*file}";

const GRAPHIQL_PAGE: &str = "graphiql.html";
const DASHBOARD_PAGE: &str = "dashboard.html";
/// Asset names carry a hash of their content, so a browser may keep them for good.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Pages name the current assets, so a browser must check for a new build each time.
const REVALIDATE: &str = "no-cache";
/// What the pages may load and do: only this origin's scripts, styles (GraphiQL's editor sets
/// inline styles), images and fonts (some inlined as data:), calls back to this origin
/// (websockets included), and never inside another site's frame.
const PAGE_POLICY: &str =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What `GET /` tells a client that does not follow the redirect to GraphiQL.
const SITE_MAP: &str = "traceledger\n\
/graphql    GraphQL: POST queries and mutations; websocket subscriptions; GraphiQL in a browser\n\
/dashboard  the live dashboard\n\
/viewer     the embeddable audit-log viewer (module at /viewer/v1/traceledger-viewer.js)\n\
/export     events as NDJSON or CSV\n\
/health     liveness; /ready readiness of each dependency; /metrics Prometheus\n";

/// `GET /`: browsers go on to GraphiQL; the body says what is where for anyone else.
pub(super) async fn root() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, super::GRAPHQL_PATH),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        SITE_MAP,
    )
        .into_response()
}

/// GraphiQL, served at the GraphQL path to browsers (requests without a websocket upgrade).
pub(super) fn graphiql() -> Response {
    page(GRAPHIQL_PAGE)
}

pub(super) async fn dashboard() -> Response {
    page(DASHBOARD_PAGE)
}

/// A built file's bytes, if this binary has it.
pub(super) fn built(name: &str) -> Option<std::borrow::Cow<'static, [u8]>> {
    Built::get(name).map(|file| file.data)
}

pub(super) async fn asset(Path(file): Path<String>) -> Response {
    match Built::get(&format!("assets/{file}")) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.metadata.mimetype()),
                (header::CACHE_CONTROL, IMMUTABLE),
            ],
            asset.data,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn page(name: &str) -> Response {
    match Built::get(name) {
        Some(page) => (
            [
                (header::CACHE_CONTROL, REVALIDATE),
                (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
            ],
            Html(page.data),
        )
            .into_response(),
        None => {
            // Only a binary built from a tree without web-playground/dist gets here.
            tracing::error!(
                page = name,
                "the web playground was not built into this binary"
            );
            (
                StatusCode::NOT_FOUND,
                "this build has no web playground: run `npm --prefix web-playground run build` and rebuild",
            )
                .into_response()
        }
    }
}
