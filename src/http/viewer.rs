//! The embeddable viewer: `<traceledger-viewer>`, one versioned JavaScript module that a
//! tenant's page loads from here (built from `web-playground/src/viewer/`), and `/viewer`, a
//! page of its own that shows it with the token in the URL's fragment (`/viewer#token=tlv_…`;
//! a fragment never reaches a server or a log).

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::playground::built;

pub const VIEWER_PAGE_PATH: &str = "/viewer";
/// The module's address: its major version is in the path, so a host page pins it.
pub const VIEWER_MODULE_PATH: &str = "/viewer/v1/traceledger-viewer.js";
const MODULE_FILE: &str = "viewer/traceledger-viewer.js";
/// Fixes reach host pages within minutes; the path changes only with a breaking version.
const MODULE_CACHE: &str = "public, max-age=300";
/// The page runs the module from this origin and talks to this origin only.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Audit log · traceledger</title>
<script type="module" src="/viewer/v1/traceledger-viewer.js"></script>
</head>
<body>
<main><traceledger-viewer token-from="fragment"></traceledger-viewer></main>
</body>
</html>
"#;

/// The module, for any page: it is public code, fetched in CORS mode by `<script type=module>`
/// on other origins; what it reads needs a viewer token and `--cors-origins`.
pub(super) async fn module() -> Response {
    match built(MODULE_FILE) {
        Some(module) => (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, MODULE_CACHE),
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            ],
            module,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "this build has no viewer: run `npm --prefix web-playground run build` and rebuild",
        )
            .into_response(),
    }
}

pub(super) async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        ],
        Html(PAGE),
    )
        .into_response()
}
