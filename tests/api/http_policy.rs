//! What the HTTP layer lets browsers and clients do: CORS only for configured origins, and
//! introspection on by default but switchable off.

use serde_json::json;

use crate::helpers::TestApp;

const ADMIN_ORIGIN: &str = "https://admin.example.test";

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

fn allowed_origin(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn by_default_no_other_origin_is_allowed() {
    let app = TestApp::spawn().await;
    assert_eq!(allowed_origin(&preflight(&app, ADMIN_ORIGIN).await), None);
}

#[tokio::test]
async fn a_configured_origin_may_call_and_others_may_not() {
    let app =
        TestApp::spawn_with(|config| config.http.cors_origins = vec![ADMIN_ORIGIN.into()]).await;
    let response = preflight(&app, ADMIN_ORIGIN).await;
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(allowed_origin(&response).as_deref(), Some(ADMIN_ORIGIN));
    let headers = response.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");
    assert_eq!(
        allowed_origin(&preflight(&app, "https://evil.example.test").await),
        None
    );
    // The real request carries the header too.
    let response = reqwest::Client::new()
        .post(app.url("/graphql"))
        .header("origin", ADMIN_ORIGIN)
        .bearer_auth(&app.key)
        .json(&json!({ "query": "{ auditEvents { edges { cursor } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed_origin(&response).as_deref(), Some(ADMIN_ORIGIN));
}

#[tokio::test]
async fn introspection_is_on_by_default_and_can_be_switched_off() {
    let query = "{ __schema { queryType { name } } }";
    let app = TestApp::spawn().await;
    let body = app.gql(query, json!({})).await;
    assert_eq!(
        body["data"]["__schema"]["queryType"]["name"], "Query",
        "{body}"
    );

    let closed = TestApp::spawn_with(|config| config.schema.introspection = false).await;
    let body = closed.gql(query, json!({})).await;
    assert_eq!(body["data"]["__schema"], serde_json::Value::Null, "{body}");
    // Ordinary queries still work.
    let body = closed
        .gql("{ auditEvents { edges { cursor } } }", json!({}))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
}
