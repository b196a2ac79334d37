//! `traceledger verify` against tampering as the database's superuser would do it (triggers
//! off, then UPDATE, DELETE, INSERT, or swapped indices) and against an edited export: each
//! names the exact index, an untouched ledger verifies, and retention is pruning, not
//! tampering.

use std::process::{Command, Output};

use chrono::{Duration, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use traceledger::access::auth::create_api_key;
use traceledger::store::SearchBacklog;

use crate::helpers::{received_event, service_env, TestApp, TENANT};

const EVENTS: usize = 24;

fn verify(app: &TestApp, args: &[&str]) -> (bool, String) {
    let output: Output = Command::new(crate::helpers::traceledger_binary())
        .arg("verify")
        .args(args)
        .envs(service_env(&app.config))
        .output()
        .expect("run traceledger verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Records `EVENTS` events for a new tenant and seals them; returns its key.
async fn sealed_tenant(app: &TestApp, tenant: &str) -> String {
    let key = create_api_key(&app.store, tenant, "verify")
        .await
        .unwrap()
        .secret;
    let inputs: Vec<Value> = (0..EVENTS)
        .map(|i| {
            json!({ "action": format!("doc.{}", if i % 3 == 0 { "a" } else { "b" }), "service": "docs",
                    "actor": { "id": format!("u{i}"), "type": "user" }, "message": format!("m{i}") })
        })
        .collect();
    app.record_many_as(&key, &inputs).await;
    app.wait_stored(tenant, EVENTS as i64).await;
    app.seal(tenant).await;
    key
}

async fn id_at(app: &TestApp, tenant: &str, index: i64) -> Uuid {
    sqlx::query_scalar("SELECT id FROM audit_events WHERE tenant = $1 AND ledger_index = $2")
        .bind(tenant)
        .bind(index)
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

/// Runs `sql` (binding the tenant as $1) as the superuser with the append-only triggers off.
async fn tamper(app: &TestApp, tenant: &str, sql: &str) {
    let mut tx = app.store.pool().begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(sql)
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn verify_online_names_the_exact_index_of_each_tampering() {
    let app = TestApp::spawn().await;
    for tenant in ["t-clean", "t-update", "t-delete", "t-insert", "t-swap"] {
        sealed_tenant(&app, tenant).await;
    }
    let changed = id_at(&app, "t-update", 7).await;
    tamper(
        &app,
        "t-update",
        "UPDATE audit_events SET message = 'nothing happened' WHERE tenant = $1 AND ledger_index = 7",
    )
    .await;
    tamper(
        &app,
        "t-delete",
        "DELETE FROM audit_events WHERE tenant = $1 AND ledger_index = 11",
    )
    .await;
    let forged = Uuid::now_v7();
    tamper(
        &app,
        "t-insert",
        &format!(
            "INSERT INTO audit_events (id, tenant, occurred_at, received_at, action, outcome, \
             severity, service, actor_id, actor_type, message, ledger_index) \
             SELECT '{forged}', tenant, occurred_at, received_at, action, outcome, severity, \
             service, actor_id, actor_type, 'forged', ledger_index FROM audit_events \
             WHERE tenant = $1 AND ledger_index = 5"
        ),
    )
    .await;
    let (third, ninth) = (
        id_at(&app, "t-swap", 3).await,
        id_at(&app, "t-swap", 9).await,
    );
    tamper(
        &app,
        "t-swap",
        "UPDATE audit_events SET ledger_index = CASE ledger_index WHEN 3 THEN 9 ELSE 3 END \
         WHERE tenant = $1 AND ledger_index IN (3, 9)",
    )
    .await;

    let (ok, out) = verify(&app, &["--online", "--tenant", "t-clean"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{EVENTS} events in a tree of {EVENTS}: verified")),
        "{out}"
    );

    let (ok, out) = verify(&app, &["--online", "--tenant", "t-update"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "index 7 (event {changed}): the event is not what was sealed there"
        )),
        "{out}"
    );
    assert!(
        !out.contains("index 6") && !out.contains("index 8"),
        "{out}"
    );

    let (ok, out) = verify(&app, &["--online", "--tenant", "t-delete"]);
    assert!(!ok, "{out}");
    assert!(out.contains("index 11: no event (removed)"), "{out}");

    let (ok, out) = verify(&app, &["--online", "--tenant", "t-insert"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "index 5 (event {forged}): an event that does not belong there"
        )),
        "{out}"
    );

    let (ok, out) = verify(&app, &["--online", "--tenant", "t-swap"]);
    assert!(!ok, "{out}");
    // The event now at 3 is the one sealed at 9, and the other way round.
    assert!(out.contains(&format!("index 3 (event {ninth})")), "{out}");
    assert!(out.contains(&format!("index 9 (event {third})")), "{out}");

    // A key that never signed: every checkpoint is refused.
    let (stranger, _) = traceledger::domain::ledger::LedgerSigner::generate("traceledger").unwrap();
    let (ok, out) = verify(
        &app,
        &[
            "--online",
            "--tenant",
            "t-clean",
            "--key",
            stranger.verifier_key(),
        ],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("signed by none of the given keys"), "{out}");
}

async fn export_with_proofs(app: &TestApp, key: &str, query: &str) -> String {
    let response = app
        .http
        .get(app.url(&format!("/export?proofs=true{query}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn verifier_key(app: &TestApp) -> String {
    let key = app.http.get(app.url("/ledger/key")).send().await.unwrap();
    key.text().await.unwrap().trim().to_owned()
}

fn verify_file(app: &TestApp, text: &str, key: &str) -> (bool, String) {
    let file = std::env::temp_dir().join(format!("traceledger-export-{}.ndjson", Uuid::now_v7()));
    std::fs::write(&file, text).unwrap();
    let result = verify(app, &["--export", file.to_str().unwrap(), "--key", key]);
    std::fs::remove_file(&file).unwrap();
    result
}

#[tokio::test]
async fn verify_export_names_the_line_that_was_changed_removed_reordered_or_inserted() {
    let app = TestApp::spawn().await;
    let key = sealed_tenant(&app, "t-export").await;
    let verifier = verifier_key(&app).await;
    let export = export_with_proofs(&app, &key, "").await;
    let lines: Vec<&str> = export.lines().collect();
    assert_eq!(lines.len(), EVENTS + 1, "every event, then the checkpoint");
    let last: Value = serde_json::from_str(lines[EVENTS]).unwrap();
    assert_eq!(last["ledgerCheckpoint"]["size"], EVENTS);

    let (ok, out) = verify_file(&app, &export, &verifier);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{EVENTS} events in a tree of {EVENTS}: verified")),
        "{out}"
    );

    // A filtered export stands for what it leaves out with subtree hashes, and verifies.
    let filtered = export_with_proofs(&app, &key, "&actions=doc.a").await;
    assert!(filtered.contains("\"ledgerGap\""), "{filtered}");
    let (ok, out) = verify_file(&app, &filtered, &verifier);
    assert!(ok, "{out}");
    // (The first export's own event may have joined the tenant's ledger since.)
    assert!(
        out.contains(&format!("{} events in a tree of ", EVENTS / 3)),
        "{out}"
    );
    assert!(out.contains(": verified"), "{out}");

    let event = |i: usize| -> Value { serde_json::from_str(lines[i]).unwrap() };
    let join = |lines: Vec<String>| lines.join("\n") + "\n";
    let owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();

    // Changed.
    let mut edited = owned.clone();
    let mut e = event(6);
    e["message"] = json!("nothing happened");
    edited[6] = e.to_string();
    let (ok, out) = verify_file(&app, &join(edited), &verifier);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "index 6 (event {}): the event is not what was sealed",
            e["id"].as_str().unwrap()
        )),
        "{out}"
    );

    // Removed.
    let mut removed = owned.clone();
    removed.remove(10);
    let (ok, out) = verify_file(&app, &join(removed), &verifier);
    assert!(!ok, "{out}");
    assert!(out.contains("index 10: no event (removed)"), "{out}");

    // Reordered.
    let mut swapped = owned.clone();
    swapped.swap(3, 4);
    let (ok, out) = verify_file(&app, &join(swapped), &verifier);
    assert!(!ok, "{out}");
    assert!(out.contains("index 3: no event"), "{out}");
    assert!(
        out.contains(&format!(
            "index 3 (event {}): an event that does not belong there",
            event(3)["id"].as_str().unwrap()
        )),
        "{out}"
    );

    // Inserted: a forged event claiming index 8, with a leaf hash of its own.
    let mut inserted = owned.clone();
    let mut forged = event(8);
    forged["id"] = json!(Uuid::now_v7().to_string());
    inserted.insert(9, forged.to_string());
    let (ok, out) = verify_file(&app, &join(inserted), &verifier);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "index 8 (event {}): an event that does not belong there",
            forged["id"].as_str().unwrap()
        )),
        "{out}"
    );

    // Cut short: no checkpoint.
    let (ok, out) = verify_file(&app, &join(owned[..EVENTS].to_vec()), &verifier);
    assert!(!ok, "{out}");
    assert!(out.contains("without its checkpoint"), "{out}");

    // Another key.
    let (stranger, _) = traceledger::domain::ledger::LedgerSigner::generate("traceledger").unwrap();
    let (ok, out) = verify_file(&app, &export, stranger.verifier_key());
    assert!(!ok, "{out}");
    assert!(out.contains("signed by none of the given keys"), "{out}");

    // CSV has no place for proofs; orderBy has no meaning with them.
    for (query, field) in [
        ("&format=csv", "proofs"),
        ("&orderBy=OCCURRED_AT_ASC", "orderBy"),
    ] {
        let response = app
            .http
            .get(app.url(&format!("/export?proofs=true{query}")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn retention_then_verify_reports_pruned_not_tampered() {
    // No worker: its partition upkeep would race the test's own ensure_partitions.
    let app = TestApp::spawn_without_worker(|_| {}).await;
    let cutoff = Utc::now() - Duration::days(40);
    let old: Vec<_> = (0..3)
        .map(|_| received_event(TENANT, cutoff - Duration::days(40)))
        .collect();
    let recent: Vec<_> = (0..2).map(|_| received_event(TENANT, Utc::now())).collect();
    app.store
        .insert_events(&old, SearchBacklog::Skip)
        .await
        .unwrap();
    app.store
        .insert_events(&recent, SearchBacklog::Skip)
        .await
        .unwrap();
    app.store.ensure_partitions(2).await.unwrap();
    app.seal(TENANT).await;
    app.cli(&["retention", "--before", &cutoff.to_rfc3339()], &[]);
    let purge: Uuid = sqlx::query_scalar(
        "SELECT id FROM audit_events WHERE tenant = '_traceledger' AND action = 'retention.purge'",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    let (ok, out) = verify(&app, &["--online", "--tenant", TENANT]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("indices 0..2 pruned by retention (event {purge})")),
        "{out}"
    );
    assert!(out.contains("2 events in a tree of 5: verified"), "{out}");
    // The service's own ledger, which holds the purge event, verifies too.
    app.seal("_traceledger").await;
    let (ok, out) = verify(&app, &["--online", "--tenant", "_traceledger"]);
    assert!(ok, "{out}");

    // An export after retention covers the pruned leaves with their hashes, and verifies.
    let export = export_with_proofs(&app, &app.key, "").await;
    let (ok, out) = verify_file(&app, &export, &verifier_key(&app).await);
    assert!(ok, "{out}");
    assert!(out.contains("2 events in a tree of 5: verified"), "{out}");
}
