//! GraphQL over HTTP as frontend clients speak it: graphql-http's reference audit of the spec
//! (web-playground/tests/graphql-http-audit.mjs, run with node), queries over GET with browser
//! caching, the two answer types, and Apollo's automatic persisted queries.

use std::path::Path;
use std::time::Duration;

use reqwest::header;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::helpers::{event, TestApp};

const AUDIT_SCRIPT: &str = "web-playground/tests/graphql-http-audit.mjs";
const NEW_TYPE: &str = "application/graphql-response+json";

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

async fn get(app: &TestApp, key: &str, params: &[(&str, String)]) -> reqwest::Response {
    get_with(app, Some(key), None, params).await
}

/// A GET of `/graphql` with `key` (if any) and one more header (if any).
async fn get_with(
    app: &TestApp,
    key: Option<&str>,
    header: Option<(header::HeaderName, header::HeaderValue)>,
    params: &[(&str, String)],
) -> reqwest::Response {
    let mut request = app.http.get(app.url("/graphql")).query(params);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.send().await.expect("request")
}

/// The answer Apollo clients take as "send the text".
async fn assert_not_found(response: reqwest::Response) {
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND",
        "{body}"
    );
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
}

async fn post(app: &TestApp, key: &str, accept: Option<&str>, body: Value) -> (u16, String, Value) {
    let mut request = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(key)
        .json(&body);
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .expect("ASCII")
        .to_owned();
    (status, content_type, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn the_graphql_over_http_audit_passes_with_no_error_and_no_warning() {
    let app = TestApp::spawn().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new("node")
        .arg(root.join(AUDIT_SCRIPT))
        .arg(app.url("/graphql"))
        .arg(&app.key)
        .current_dir(root)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the audit finishes in time")
        .expect("node runs (scripts/test installs graphql-http)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "audit items not ok:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" ok, 0 not ok"), "{stdout}");
}

#[tokio::test]
async fn request_errors_are_400_without_data_in_the_new_type_and_200_in_plain_json() {
    let app = TestApp::spawn().await;
    let invalid = json!({ "query": "{ noSuchField }" });
    let (status, content_type, body) = post(&app, &app.key, Some(NEW_TYPE), invalid.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert!(content_type.starts_with(NEW_TYPE), "{content_type}");
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    // A client that accepts only application/json gets it, and a 200.
    let (status, content_type, body) =
        post(&app, &app.key, Some("application/json"), invalid).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert!(body.get("data").is_none(), "{body}");

    // An operation that ran answers 200 in either type, errors in fields included.
    let ran =
        json!({ "query": "{ auditEvent(id: \"00000000-0000-7000-8000-000000000000\") { id } }" });
    let (status, _, body) = post(&app, &app.key, Some(NEW_TYPE), ran).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["auditEvent"], Value::Null);

    // Refusals before the schema runs follow the same rule.
    let too_many = json!({ "query": format!("mutation {{ {} }}", (0..1001).map(|i| format!("a{i}: recordEvent(input: {{action: \"x\", service: \"s\", actor: {{id: \"u\"}}}}) {{ id }}")).collect::<Vec<_>>().join(" ")) });
    let (status, _, body) = post(&app, &app.key, Some(NEW_TYPE), too_many).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
}

#[tokio::test]
async fn queries_run_over_get_and_mutations_do_not() {
    let app = TestApp::spawn().await;
    let recorded = app.record(event("invoice.update")).await;
    let id = recorded["id"].as_str().expect("an id").to_owned();
    app.wait_stored(crate::helpers::TENANT, 1).await;

    let query = "query One($id: ID!) { auditEvent(id: $id) { id action } }".to_owned();
    let params = [
        ("query", query.clone()),
        ("variables", json!({ "id": id }).to_string()),
        ("operationName", "One".to_owned()),
    ];
    let response = get(&app, &app.key, &params).await;
    assert_eq!(response.status(), 200);
    // Only the caller's own browser may keep it, and it must ask again (a 304 when unchanged).
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "private, no-cache"
    );
    let vary = response.headers()[header::VARY].to_str().expect("ASCII");
    assert!(vary.contains("Authorization"), "{vary}");
    let tag = response.headers()[header::ETAG].clone();
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["data"]["auditEvent"]["action"], "invoice.update");

    let again = get_with(
        &app,
        Some(&app.key),
        Some((header::IF_NONE_MATCH, tag.clone())),
        &params,
    )
    .await;
    assert_eq!(again.status(), 304);

    // Another tenant asking the same URL gets its own answer (no such event), not a 304.
    let other = get_with(
        &app,
        Some(&app.other_key),
        Some((header::IF_NONE_MATCH, tag)),
        &params,
    )
    .await;
    assert_eq!(other.status(), 200);
    let body: Value = other.json().await.expect("JSON");
    assert_eq!(body["data"]["auditEvent"], Value::Null);

    let mutation = "mutation { recordEvent(input: {action: \"via.get\", service: \"s\", actor: {id: \"u\"}}) { id } }";
    let refused = get(&app, &app.key, &[("query", mutation.to_owned())]).await;
    assert_eq!(refused.status(), 405);
    assert_eq!(refused.headers()[header::ALLOW], "POST");

    // Without credentials a GET query is refused like a POST; a browser still gets GraphiQL.
    let typename = [("query", "{ __typename }".to_owned())];
    let anonymous = get_with(&app, None, None, &typename).await;
    assert_eq!(anonymous.status(), 401);
    let html = header::HeaderValue::from_static("text/html");
    let page = get_with(&app, None, Some((header::ACCEPT, html)), &typename).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("text").contains("<html"));

    // The GET mutation recorded nothing.
    let data = app
        .data_as(
            &app.key,
            "{ auditEvents(filter: {actions: [\"via.get\"]}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data["auditEvents"]["totalCount"], 0);
}

#[tokio::test]
async fn automatic_persisted_queries_run_by_hash_once_registered_per_tenant() {
    let app = TestApp::spawn().await;
    let query = "{ auditEvents(first: 1) { totalCount } }";
    let hash = sha256_hex(query);
    let by_hash = [("extensions", persisted(&hash).to_string())];

    // An unknown hash without its text: the code Apollo clients answer by sending the text.
    assert_not_found(get(&app, &app.key, &by_hash).await).await;

    let (status, _, registered) = post(
        &app,
        &app.key,
        None,
        json!({ "query": query, "extensions": persisted(&hash) }),
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    assert_eq!(registered["data"]["auditEvents"]["totalCount"], 0);

    let hit = get(&app, &app.key, &by_hash).await;
    assert_eq!(hit.status(), 200);
    let hit: Value = hit.json().await.expect("JSON");
    assert_eq!(hit["data"]["auditEvents"]["totalCount"], 0, "{hit}");

    // Another tenant cannot learn which texts this one sent.
    assert_not_found(get(&app, &app.other_key, &by_hash).await).await;

    // A text is never registered under a hash that is not its own.
    let forged = "{ apiKeys { id name } }";
    let (status, _, body) = post(
        &app,
        &app.key,
        Some(NEW_TYPE),
        json!({ "query": forged, "extensions": persisted(&sha256_hex("{ __typename }")) }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        "extensions.persistedQuery.sha256Hash"
    );
    let forged_hash = [(
        "extensions",
        persisted(&sha256_hex("{ __typename }")).to_string(),
    )];
    assert_not_found(get(&app, &app.key, &forged_hash).await).await;

    // Text that does not parse is not kept under its (true) hash.
    let junk = "{";
    let (status, _, _) = post(
        &app,
        &app.key,
        None,
        json!({ "query": junk, "extensions": persisted(&sha256_hex(junk)) }),
    )
    .await;
    assert_eq!(status, 200);
    let junk_hash = [("extensions", persisted(&sha256_hex(junk)).to_string())];
    assert_not_found(get(&app, &app.key, &junk_hash).await).await;
}

#[tokio::test]
async fn a_left_out_variable_lets_the_argument_take_its_default() {
    let app = TestApp::spawn().await;
    app.record(event("user.login")).await;
    app.wait_stored(crate::helpers::TENANT, 1).await;
    // What Apollo Client sends when `first` and `after` are undefined: no such variables.
    let query = "query Page($first: Int, $after: String, $f: [String!]) { \
        auditEvents(first: $first, after: $after, filter: { actions: $f }) { totalCount edges { node { action } } } }";
    let (status, _, body) = post(&app, &app.key, Some(NEW_TYPE), json!({ "query": query })).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["auditEvents"]["totalCount"], 1);
    // Given as null, it is null: the non-null argument refuses it, before anything runs.
    let (status, _, body) = post(
        &app,
        &app.key,
        Some(NEW_TYPE),
        json!({ "query": query, "variables": { "first": null } }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let error = &body["errors"][0]["extensions"];
    assert_eq!(error["code"], "BAD_USER_INPUT", "{body}");
    assert_eq!(error["field"], "first", "{body}");
}
