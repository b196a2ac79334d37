//! Retries and dead letters against the real broker and database: a message that keeps failing
//! passes through the retry queues and lands in the dead-letter queue with its history; operators
//! list, replay and purge it over GraphQL (admin only) and with `traceledger dlq`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{event, TestApp, TENANT};

/// Makes inserts of `action` fail with a serialization failure (a transient error) for the
/// first `times` tries (or always, for `None`), as a busy database would. A sequence counts the
/// tries: unlike a table, it is not rolled back with the failing insert.
async fn make_flaky(app: &TestApp, action: &str, times: Option<i64>) {
    let budget = times.unwrap_or(i64::MAX);
    for statement in [
        "CREATE SEQUENCE test_flaky_tries".to_owned(),
        format!(
            "CREATE FUNCTION test_flaky() RETURNS trigger AS $$
             BEGIN
               IF NEW.action = '{action}' AND nextval('test_flaky_tries') <= {budget} THEN
                 RAISE EXCEPTION 'simulated serialization failure' USING ERRCODE = '40001';
               END IF;
               RETURN NEW;
             END $$ LANGUAGE plpgsql"
        ),
        "CREATE TRIGGER test_flaky BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION test_flaky()".to_owned(),
    ] {
        sqlx::query(&statement).execute(app.store.pool()).await.expect("test trigger");
    }
}

async fn dead_letters(app: &TestApp, operator: &str) -> Value {
    let body = app
        .gql_as(
            operator,
            "{ deadLetters { id reason attempts history events sizeBytes } }",
            json!({}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["deadLetters"].clone()
}

async fn wait_dead_letters(app: &TestApp, operator: &str, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let letters = dead_letters(app, operator)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default();
        if letters.len() >= count || tokio::time::Instant::now() > deadline {
            assert_eq!(letters.len(), count, "{letters:?}");
            return letters;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_message_that_keeps_failing_is_retried_dead_lettered_and_replayed_once_fixed() {
    let app = TestApp::spawn().await;
    let operator = app.operator_admin_key().await;
    make_flaky(&app, "flaky.op", None).await;
    let flaky = app.record(event("flaky.op")).await;
    app.record(event("steady.op")).await;

    // Its neighbour is not held up, and the failing one ends up dead after every attempt.
    app.wait_stored(TENANT, 1).await;
    let letters = wait_dead_letters(&app, &operator, 1).await;
    let letter = &letters[0];
    assert_eq!(letter["attempts"], 3, "{letter}");
    assert_eq!(letter["events"], 1);
    let reason = letter["reason"].as_str().unwrap();
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert!(
        reason.contains("simulated serialization failure"),
        "{reason}"
    );
    let history: Vec<&str> = letter["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(
        history[0].contains("attempt 1") && history[2].contains("attempt 3"),
        "{history:?}"
    );

    // Only operators see or touch dead letters: not a reader, not a tenant's own admin.
    for key in [&app.key, &app.admin_key] {
        for query in [
            "{ deadLetters { id } }",
            "mutation { replayDeadLetters(all: true) }",
            "mutation { purgeDeadLetters }",
        ] {
            let body = app.gql_as(key, query, json!({})).await;
            assert_eq!(
                body["errors"][0]["extensions"]["code"], "FORBIDDEN",
                "{query}: {body}"
            );
        }
    }
    assert_eq!(
        dead_letters(&app, &operator).await.as_array().map(Vec::len),
        Some(1)
    );

    // Fixed: replaying it stores it, under its original id, once.
    sqlx::query("DROP TRIGGER test_flaky ON audit_events")
        .execute(app.store.pool())
        .await
        .unwrap();
    let body = app
        .gql_as(
            &operator,
            "mutation($id: ID!) { replayDeadLetters(id: $id) }",
            json!({ "id": letter["id"] }),
        )
        .await;
    assert_eq!(body["data"]["replayDeadLetters"], 1, "{body}");
    app.wait_stored(TENANT, 2).await;
    let stored = app
        .gql(
            "query($id: ID!) { auditEvent(id: $id) { action } }",
            json!({ "id": flaky["id"] }),
        )
        .await;
    assert_eq!(stored["data"]["auditEvent"]["action"], "flaky.op");
    assert_eq!(dead_letters(&app, &operator).await, json!([]));
}

#[tokio::test]
async fn a_failure_that_clears_is_stored_by_a_retry() {
    let app = TestApp::spawn().await;
    let operator = app.operator_admin_key().await;
    // Fails in its batch and alone, so it must go through a retry queue to be stored.
    make_flaky(&app, "once.flaky", Some(2)).await;
    let receipt = app.record(event("once.flaky")).await;
    app.wait_stored(TENANT, 1).await;
    let body = app
        .gql(
            "query($id: ID!) { auditEvent(id: $id) { id } }",
            json!({ "id": receipt["id"] }),
        )
        .await;
    assert_eq!(body["data"]["auditEvent"]["id"], receipt["id"]);
    assert_eq!(dead_letters(&app, &operator).await, json!([]));
}

#[tokio::test]
async fn replay_needs_an_id_or_all() {
    let app = TestApp::spawn().await;
    let body = app
        .gql_as(
            &app.operator_admin_key().await,
            "mutation { replayDeadLetters }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
}

/// Runs `traceledger dlq …` against this test's broker names.
fn dlq(app: &TestApp, args: &[&str]) -> String {
    app.cli(&[&["dlq"], args].concat(), &[])
}

#[tokio::test]
async fn the_dlq_command_lists_replays_and_purges() {
    let app = TestApp::spawn().await;
    let operator = app.operator_admin_key().await;
    let (_connection, channel) = app.broker().await;
    channel
        .basic_publish(
            app.config.broker.exchange.as_str().into(),
            "".into(),
            lapin::options::BasicPublishOptions::default(),
            b"not json at all",
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let letter = wait_dead_letters(&app, &operator, 1).await.remove(0);
    let id = letter["id"].as_str().unwrap().to_owned();

    let listed = dlq(&app, &["list"]);
    assert!(listed.contains(&id), "{listed}");
    assert!(listed.contains("not a traceledger batch"), "{listed}");
    assert!(listed.contains("undecodable"), "{listed}");

    // Replayed, it fails again (it is still not an event batch) and comes back as a new letter.
    let replayed = dlq(&app, &["replay", "--id", &id]);
    assert!(replayed.contains("replayed 1 "), "{replayed}");
    let again = wait_dead_letters(&app, &operator, 1).await.remove(0);
    assert_ne!(again["id"], letter["id"]);
    assert_eq!(again["attempts"], 1, "a replay starts with a clean record");

    let purged = dlq(&app, &["purge"]);
    assert!(purged.contains("purged 1 "), "{purged}");
    assert_eq!(dead_letters(&app, &operator).await, json!([]));
    assert_eq!(dlq(&app, &["list"]).trim(), "no dead letters");
}

#[tokio::test]
async fn replaying_all_dead_letters_stores_every_one_once_fixed() {
    let app = TestApp::spawn().await;
    let operator = app.operator_admin_key().await;
    make_flaky(&app, "flaky.op", None).await;
    let first = app.record(event("flaky.op")).await;
    let second = app.record(event("flaky.op")).await;
    wait_dead_letters(&app, &operator, 2).await;

    sqlx::query("DROP TRIGGER test_flaky ON audit_events")
        .execute(app.store.pool())
        .await
        .unwrap();
    let body = app
        .gql_as(
            &operator,
            "mutation { replayDeadLetters(all: true) }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["replayDeadLetters"], 2, "{body}");
    app.wait_stored(TENANT, 2).await;
    for receipt in [first, second] {
        let body = app
            .gql(
                "query($id: ID!) { auditEvent(id: $id) { id } }",
                json!({ "id": receipt["id"] }),
            )
            .await;
        assert_eq!(body["data"]["auditEvent"]["id"], receipt["id"], "{body}");
    }
    assert_eq!(dead_letters(&app, &operator).await, json!([]));
}
