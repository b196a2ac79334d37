//! The browser pages as served: GraphiQL at /graphql, the dashboard at /dashboard, their assets
//! from the binary with the right types and caching, and nothing loaded from another host.
//! (What the pages do is tested in a real browser by `browser`.)

use std::collections::HashSet;

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use reqwest::Url;

use crate::helpers::TestApp;

/// Crawls `page` and everything it loads (scripts, module imports, stylesheets, their url()s and
/// @imports, links to the other page), without a key, and asserts each is served by this app.
/// The pages themselves name no other host at all; scripts may mention URLs in strings (licence
/// headers, XML namespaces), so for them only what they import is checked here, and the browser
/// test checks that no request leaves the app at run time.
pub async fn assert_everything_loads_from_the_app(app: &TestApp, page: &str) {
    let origin = Url::parse(&app.url("/")).expect("app URL");
    let mut queue = vec![origin.join(page).expect("page URL")];
    let mut seen = HashSet::new();
    while let Some(url) = queue.pop() {
        if !seen.insert(url.clone()) {
            continue;
        }
        let response = reqwest::get(url.clone()).await.expect("request");
        assert_eq!(response.status(), 200, "{url}");
        let kind = content_type(&response);
        let body = response.text().await.expect("text body");
        let references = if kind.starts_with("text/html") {
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{url} names another host:\n{body}"
            );
            [quoted_after(&body, "src="), quoted_after(&body, "href=")].concat()
        } else if kind.starts_with("text/css") {
            [css_urls(&body), quoted_after(&body, "@import")].concat()
        } else if kind.contains("javascript") {
            [quoted_after(&body, "from"), quoted_after(&body, "import(")]
                .concat()
                .into_iter()
                .filter(|specifier| {
                    specifier.starts_with('.')
                        || specifier.starts_with('/')
                        || specifier.contains("://")
                })
                .collect()
        } else {
            Vec::new()
        };
        for reference in references {
            let target = url
                .join(&reference)
                .unwrap_or_else(|e| panic!("{url} refers to {reference:?}: {e}"));
            if target.scheme() == "data" {
                continue;
            }
            assert_eq!(
                target.origin(),
                origin.origin(),
                "{url} loads {reference} from another host"
            );
            queue.push(target);
        }
    }
    assert!(
        seen.iter().any(|url| url.path().ends_with(".js")),
        "{page} loads no script at all: {seen:?}"
    );
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The quoted strings right after each `marker` (whitespace allowed between them).
fn quoted_after(text: &str, marker: &str) -> Vec<String> {
    text.match_indices(marker)
        .filter_map(|(at, _)| {
            let rest = text[at + marker.len()..].trim_start();
            let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            rest[1..].split(quote).next().map(str::to_owned)
        })
        .collect()
}

/// The targets of `url(...)` in a stylesheet, quoted or bare.
fn css_urls(css: &str) -> Vec<String> {
    css.match_indices("url(")
        .filter_map(|(at, _)| {
            let rest = css[at + "url(".len()..].trim_start();
            let end = rest.find(')')?;
            Some(rest[..end].trim().trim_matches(['"', '\'']).to_owned())
        })
        .collect()
}

#[tokio::test]
async fn pages_and_assets_are_served_from_the_binary() {
    let app = TestApp::spawn().await;
    for (path, title) in [
        ("/graphql", "traceledger · GraphiQL"),
        ("/dashboard", "traceledger · live dashboard"),
    ] {
        let page = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert!(content_type(&page).starts_with("text/html"), "{path}");
        // A new build names new assets, so the page itself must be checked each time.
        assert_eq!(page.headers()[CACHE_CONTROL], "no-cache", "{path}");
        let html = page.text().await.unwrap();
        assert!(html.contains(&format!("<title>{title}</title>")), "{html}");

        let script = quoted_after(&html, "src=")
            .into_iter()
            .find(|src| src.ends_with(".js"))
            .unwrap_or_else(|| panic!("{path} has no script: {html}"));
        let asset = reqwest::get(app.url(&script)).await.unwrap();
        assert_eq!(asset.status(), 200, "{script}");
        assert_eq!(content_type(&asset), "text/javascript", "{script}");
        // Asset names carry their content's hash.
        assert_eq!(
            asset.headers()[CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert!(!asset.bytes().await.unwrap().is_empty());
    }
    let missing = reqwest::get(app.url("/playground/assets/missing-0000.js"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_root_sends_browsers_to_graphiql_and_says_what_is_where() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()[reqwest::header::LOCATION], "/graphql");
    let text = root.text().await.unwrap();
    for path in [
        "/graphql",
        "/dashboard",
        "/export",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(text.contains(path), "{path} is not named:\n{text}");
    }
    // A browser that follows it lands on GraphiQL.
    let page = reqwest::get(app.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("GraphiQL"));
}

#[tokio::test]
async fn pages_and_answers_carry_security_headers() {
    let app = TestApp::spawn().await;
    for path in ["/graphql", "/dashboard"] {
        let page = reqwest::get(app.url(path)).await.unwrap();
        let headers = page.headers();
        let policy = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-eval"), "{path}: {policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }
    // API answers too, with a policy that lets nothing run.
    let answer = reqwest::Client::new()
        .post(app.url("/graphql"))
        .bearer_auth(&app.key)
        .json(&serde_json::json!({ "query": "{ apiKeys { id } }" }))
        .send()
        .await
        .unwrap();
    let headers = answer.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
}

#[tokio::test]
async fn the_viewer_page_and_its_module_are_served_for_other_origins() {
    let app = TestApp::spawn().await;
    let module = app
        .http
        .get(app.url("/viewer/v1/traceledger-viewer.js"))
        .header("origin", "https://admin.example.com")
        .send()
        .await
        .expect("request");
    assert_eq!(module.status(), 200);
    let headers = module.headers().clone();
    assert!(headers["content-type"]
        .to_str()
        .expect("ASCII")
        .starts_with("text/javascript"));
    // A <script type=module> on another origin fetches it in CORS mode.
    assert_eq!(headers["access-control-allow-origin"], "*");
    let code = module.text().await.expect("text");
    assert!(code.contains("customElements.define(\"traceledger-viewer\""));

    let page = app
        .http
        .get(app.url("/viewer"))
        .send()
        .await
        .expect("request");
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"));
    let html = page.text().await.expect("text");
    assert!(html.contains("<traceledger-viewer token-from=\"fragment\">"));
    assert!(html.contains("src=\"/viewer/v1/traceledger-viewer.js\""));
}
