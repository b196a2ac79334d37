//! Least privilege in PostgreSQL: retention is the operator role's alone, the service runs as a
//! runtime role that can read and add events but never change or remove them, and it warns
//! loudly when it runs as a role that could.

use std::time::Duration;

use serde_json::json;
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

use crate::helpers::{event, service_env, spawn_serve, Isolated, Piped, TestApp, TENANT};

/// A login role of this test's own (roles are cluster-wide), dropped at the end.
fn role_name(prefix: &str) -> String {
    format!("{prefix}_{}", &Uuid::now_v7().simple().to_string()[20..])
}

/// `url` with `role` as its user.
fn as_role(url: &str, role: &str) -> String {
    url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1)
}

async fn drop_role(role: &str) {
    let mut admin = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    let _ = sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut admin)
        .await;
}

#[tokio::test]
async fn retention_is_callable_by_the_operator_role_only() {
    let app = TestApp::spawn().await;
    let role = role_name("tl_reader");
    for statement in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT SELECT, INSERT ON audit_events TO {role}"),
    ] {
        sqlx::query(&statement)
            .execute(app.store.pool())
            .await
            .unwrap();
    }
    let retention =
        "SELECT count(*) FROM drop_audit_partitions_before(now() - interval '10 years', 'test')";
    let mut reader = sqlx::PgConnection::connect(&as_role(&app.config.database.url, &role))
        .await
        .unwrap();
    let refused = sqlx::query(retention)
        .execute(&mut reader)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );
    drop(reader);

    sqlx::query(&format!("GRANT traceledger_operator TO {role}"))
        .execute(app.store.pool())
        .await
        .unwrap();
    let mut operator = sqlx::PgConnection::connect(&as_role(&app.config.database.url, &role))
        .await
        .unwrap();
    sqlx::query(retention)
        .execute(&mut operator)
        .await
        .expect("the operator may");
    drop(operator);
    sqlx::query(&format!("REVOKE ALL ON audit_events FROM {role}"))
        .execute(app.store.pool())
        .await
        .unwrap();
    drop_role(&role).await;
}

#[tokio::test]
async fn the_service_runs_as_a_runtime_role_that_cannot_change_events() {
    let role = role_name("tl_runtime");
    let app = TestApp::spawn_with(|config| {
        // The owner migrates and grants; the service then connects as the runtime role.
        let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_traceledger"))
            .args(["migrate", "--runtime-role", &role])
            .envs(service_env(config))
            .output()
            .expect("run traceledger migrate");
        assert!(migrated.status.success(), "{migrated:?}");
        config.database.url = as_role(&config.database.url, &role);
        config.start.migrate_on_start = false;
    })
    .await;
    let receipt = app.record(event("runtime.works")).await;
    app.wait_stored(TENANT, 1).await;
    let body = app
        .gql(
            "query($id: ID!) { auditEvent(id: $id) { action } }",
            json!({ "id": receipt["id"] }),
        )
        .await;
    assert_eq!(
        body["data"]["auditEvent"]["action"], "runtime.works",
        "{body}"
    );

    // What it cannot do, however its connection is used.
    for statement in [
        "UPDATE audit_events SET message = 'rewritten'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "DROP TABLE audit_events_default",
        "SET session_replication_role = replica",
        "SELECT drop_audit_partitions_before(now(), 'runtime')",
        "UPDATE audit_idempotency_keys SET tenant = 'x'",
    ] {
        let refused = sqlx::query(statement)
            .execute(app.store.pool())
            .await
            .expect_err(statement);
        assert!(
            refused.to_string().contains("permission denied")
                || refused.to_string().contains("must be owner"),
            "{statement}: {refused}"
        );
    }
    assert_eq!(app.stored_count(TENANT).await, 1);
    drop(app);
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop_role(&role).await;
}

#[tokio::test]
async fn serve_warns_when_its_role_could_change_events() {
    let isolated = Isolated::new("test");
    let (mut serve, _) = spawn_serve(&isolated.config, Piped::Stderr);
    let mut lines = BufReader::new(serve.stderr.take().expect("stderr")).lines();
    let warning = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("stderr") {
            if line.contains("superuser") {
                return line;
            }
        }
        panic!("serve said nothing of its role");
    })
    .await
    .expect("the warning in time");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("--runtime-role"), "{warning}");
    serve.kill().await.expect("stop serve");
}
