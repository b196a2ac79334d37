//! Key management: admins list, create and revoke their own tenant's keys over GraphQL, operators
//! do it across tenants with `traceledger keys`; a revoked key stops working within seconds.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{event, TestApp, OTHER_TENANT, TENANT};

/// The key cache's lifetime (5 s) and some room: a revoked key must fail by then.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(8);

const CREATE: &str = "mutation($n: String!, $s: [KeyScope!]) { createApiKey(name: $n, scopes: $s) { secret key { id tenant name prefix scopes revokedAt } } }";
const REVOKE: &str = "mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }";
const READ: &str = "{ auditEvents { edges { cursor } } }";

/// Waits until `key` is refused, failing after the deadline.
async fn wait_refused(app: &TestApp, key: &str) {
    let deadline = tokio::time::Instant::now() + REVOCATION_DEADLINE;
    loop {
        let (status, body) = app.post(Some(key), READ, json!({})).await;
        if status == 401 {
            assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the revoked key still works: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_admin_creates_lists_and_revokes_its_tenants_keys() {
    let app = TestApp::spawn().await;
    let body = app
        .gql_as(
            &app.admin_key,
            CREATE,
            json!({ "n": "ci-pipeline", "s": ["EVENTS_WRITE"] }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let created = &body["data"]["createApiKey"];
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("tlk_") && secret.len() == 4 + 64,
        "{secret}"
    );
    assert!(secret.starts_with(created["key"]["prefix"].as_str().unwrap()));
    assert_eq!(created["key"]["tenant"], TENANT);
    assert_eq!(created["key"]["scopes"], json!(["events:write"]));
    let id = created["key"]["id"].clone();

    // It works, and it is listed, without its secret.
    app.record_as(&secret, event("by.new.key")).await;
    let body = app
        .gql_as(&app.admin_key, "{ apiKeys { id name tenant } }", json!({}))
        .await;
    let keys = body["data"]["apiKeys"].as_array().unwrap();
    assert_eq!(
        keys.len(),
        3,
        "the test's two keys of {TENANT} and the new one: {body}"
    );
    assert!(keys.iter().all(|k| k["tenant"] == TENANT), "{body}");
    assert!(keys
        .iter()
        .any(|k| k["id"] == id && k["name"] == "ci-pipeline"));
    assert!(!body.to_string().contains(&secret));

    let body = app
        .gql_as(&app.admin_key, REVOKE, json!({ "id": id }))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert!(
        body["data"]["revokeApiKey"]["revokedAt"].is_string(),
        "{body}"
    );
    wait_refused(&app, &secret).await;

    // Revoked keys are listed only on request.
    let body = app
        .gql_as(&app.admin_key, "{ apiKeys { id } }", json!({}))
        .await;
    assert_eq!(body["data"]["apiKeys"].as_array().unwrap().len(), 2);
    let body = app
        .gql_as(
            &app.admin_key,
            "{ apiKeys(includeRevoked: true) { id revokedAt } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["apiKeys"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_key_in_use_stops_working_within_seconds_of_revocation() {
    let app = TestApp::spawn().await;
    // In use: verified and cached.
    let (status, _) = app.post(Some(&app.key), READ, json!({})).await;
    assert_eq!(status, 200);
    let id = app.key_id(TENANT, "test").await;
    let body = app
        .gql_as(&app.admin_key, REVOKE, json!({ "id": id.to_string() }))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    wait_refused(&app, &app.key).await;
}

#[tokio::test]
async fn an_admin_cannot_see_or_revoke_another_tenants_keys() {
    let app = TestApp::spawn().await;
    let theirs = app.key_id(OTHER_TENANT, "test").await;
    let body = app
        .gql_as(&app.admin_key, REVOKE, json!({ "id": theirs.to_string() }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
    let body = app
        .gql_as(&app.admin_key, "{ apiKeys { tenant } }", json!({}))
        .await;
    assert!(!body.to_string().contains(OTHER_TENANT), "{body}");
    // Their key still works.
    let (status, _) = app.post(Some(&app.other_key), READ, json!({})).await;
    assert_eq!(status, 200);

    for (variables, field) in [
        (json!({ "n": "", "s": null }), "name"),
        (json!({ "n": "x", "s": [] }), "scopes"),
    ] {
        let body = app.gql_as(&app.admin_key, CREATE, variables).await;
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    let body = app
        .gql_as(&app.admin_key, REVOKE, json!({ "id": "nope" }))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "id", "{body}");
}

fn cli(app: &TestApp, args: &[&str]) -> String {
    app.cli(args, &[])
}

#[tokio::test]
async fn operators_list_and_revoke_keys_of_any_tenant_with_the_cli() {
    let app = TestApp::spawn().await;
    let listing = cli(&app, &["keys", "list"]);
    assert!(
        listing.contains(TENANT) && listing.contains(OTHER_TENANT),
        "{listing}"
    );
    let only_theirs = cli(&app, &["keys", "list", "--tenant", OTHER_TENANT]);
    assert!(
        !only_theirs.contains(&format!(" {TENANT} ")),
        "{only_theirs}"
    );
    let id = only_theirs
        .lines()
        .find_map(|line| line.split_whitespace().next())
        .unwrap()
        .to_owned();
    let revoked = cli(&app, &["keys", "revoke", "--id", &id]);
    assert!(revoked.contains("revoked"), "{revoked}");
    wait_refused(&app, &app.other_key).await;
    let listing = cli(&app, &["keys", "list", "--tenant", OTHER_TENANT]);
    assert!(listing.contains("revoked"), "{listing}");
}

#[tokio::test]
async fn keys_create_prints_a_working_key_that_is_never_shown_again() {
    let app = TestApp::spawn().await;
    let printed = cli(
        &app,
        &[
            "keys",
            "create",
            "--tenant",
            "newco",
            "--name",
            "ci",
            "--scope",
            "events:read",
        ],
    );
    let key = printed.trim();
    assert!(key.starts_with("tlk_") && key.len() == 68, "{printed}");
    let body = app
        .gql_as(key, "{ auditEvents { edges { cursor } } }", json!({}))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    // Only the scope it was given.
    let body = app
        .gql_as(
            key,
            "mutation { recordEvent(input: { action: \"a.b\", service: \"s\", actor: { id: \"x\" } }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    // Listed, without its secret, which is nowhere in the database either.
    let listing = cli(&app, &["keys", "list", "--tenant", "newco"]);
    assert!(
        listing.contains("ci") && !listing.contains(key),
        "{listing}"
    );
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE position($1 IN row_to_json(api_keys)::text) > 0",
    )
    .bind(key)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn the_cli_refuses_a_tenant_name_that_is_not_one() {
    let app = TestApp::spawn().await;
    for tenant in [" acme", "ACME", "_other"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_traceledger"))
            .args(["keys", "create", "--tenant", tenant, "--name", "x"])
            .envs(crate::helpers::service_env(&app.config))
            .output()
            .expect("run traceledger");
        assert!(!output.status.success(), "{tenant:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--tenant"), "{stderr}");
    }
}

#[tokio::test]
async fn an_admin_gives_its_keys_at_most_the_tenants_ceiling() {
    let app = TestApp::spawn_with(|config| {
        config.limits.write_rate_per_sec = 1000;
        config.limits.read_rate_per_sec = 500;
    })
    .await;
    const CREATE_RATED: &str = "mutation($w: Int, $r: Int) { createApiKey(name: \"rated\", writeRatePerSec: $w, readRatePerSec: $r) { key { readRatePerSec writeRatePerSec } } }";
    let create = |w: Option<i32>, r: Option<i32>| {
        let app = &app;
        async move {
            app.gql_as(&app.admin_key, CREATE_RATED, json!({ "w": w, "r": r }))
                .await
        }
    };
    // Without an operator's word, the ceiling is the deployment's default.
    let body = create(None, Some(1_000_000)).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "readRatePerSec",
        "{body}"
    );
    let body = create(Some(1001), None).await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "writeRatePerSec",
        "{body}"
    );
    let body = create(Some(1000), Some(500)).await;
    assert_eq!(
        body["data"]["createApiKey"]["key"]["readRatePerSec"], 500,
        "{body}"
    );

    // The operator raises the tenant's read ceiling: more is allowed, up to it.
    let said = cli(
        &app,
        &[
            "tenants",
            "limit",
            "--tenant",
            TENANT,
            "--read-per-sec",
            "2000",
        ],
    );
    assert!(said.contains(TENANT), "{said}");
    let body = create(None, Some(2000)).await;
    assert_eq!(
        body["data"]["createApiKey"]["key"]["readRatePerSec"], 2000,
        "{body}"
    );
    let body = create(None, Some(2001)).await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "readRatePerSec",
        "{body}"
    );
}
