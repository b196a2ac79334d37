//! Credentials: HTTP 401 with UNAUTHENTICATED for a missing or unknown key; both header forms.

use serde_json::json;

use crate::helpers::{event, TestApp};

#[tokio::test]
async fn missing_or_unknown_keys_get_401() {
    let app = TestApp::spawn().await;
    let query = "{ auditEvents { edges { cursor } } }";
    for key in [
        None,
        Some("tlk_0000000000000000000000000000000000000000000000000000000000000000"),
        Some("garbage"),
    ] {
        let (status, body) = app.post(key, query, json!({})).await;
        assert_eq!(status, 401, "{key:?}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{body}"
        );
    }
    // Nothing was recorded by an unauthenticated mutation either.
    let (status, _) = app
        .post(
            None,
            "mutation($i: RecordEventInput!) { recordEvent(input: $i) { id } }",
            json!({ "i": event("a.b") }),
        )
        .await;
    assert_eq!(status, 401);
    // A marker behind it: once the marker is stored, the refused call would have been too.
    app.record(event("marker.after")).await;
    app.wait_stored(crate::helpers::TENANT, 1).await;
    let body = app
        .gql("{ auditEvents { edges { node { action } } } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["auditEvents"]["edges"],
        json!([{ "node": { "action": "marker.after" } }])
    );
}

#[tokio::test]
async fn the_x_api_key_header_works_too() {
    let app = TestApp::spawn().await;
    let response = reqwest::Client::new()
        .post(app.url("/graphql"))
        .header("X-API-Key", &app.key)
        .json(&json!({ "query": "{ auditEvents { edges { cursor } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["data"]["auditEvents"]["edges"], json!([]));
}

#[tokio::test]
async fn health_and_playground_need_no_key() {
    let app = TestApp::spawn().await;
    let health = reqwest::get(app.url("/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    for path in ["/graphql", "/dashboard"] {
        let page = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        let html = page.text().await.unwrap();
        assert!(html.contains("traceledger"), "{html}");
    }
    // Works offline: no page, script, stylesheet, image or font is loaded from another host.
    crate::playground::assert_everything_loads_from_the_app(&app, "/graphql").await;
    crate::playground::assert_everything_loads_from_the_app(&app, "/dashboard").await;
}
