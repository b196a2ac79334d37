//! What a newcomer runs first: `traceledger migrate`, then `traceledger serve` on a database
//! with no keys, which prints a key for tenant "default" that records and reads at once.

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::{service_env, spawn_serve, Isolated, Piped};

const START_WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn serve_on_a_fresh_database_prints_a_key_that_records_and_reads() {
    let mut isolated = Isolated::new("test");
    // No ledger key either: serve creates one where it is told to keep it.
    let key_dir = std::env::temp_dir().join(format!("tl-key-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir(&key_dir).unwrap();
    isolated.config.ledger.key = None;
    isolated.config.ledger.key_file = key_dir.join("ledger.key");

    // `migrate` creates the database and its tables.
    let migrated = Command::new(env!("CARGO_BIN_EXE_traceledger"))
        .arg("migrate")
        .envs(service_env(&isolated.config))
        .output()
        .await
        .expect("run traceledger migrate");
    assert!(migrated.status.success(), "{migrated:?}");
    let mut db = sqlx::PgConnection::connect(&isolated.config.database.url)
        .await
        .expect("the database exists");
    let (events, keys): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM audit_events), (SELECT count(*) FROM api_keys)",
    )
    .fetch_one(&mut db)
    .await
    .expect("the tables exist");
    assert_eq!((events, keys), (0, 0));

    let (mut serve, port) = spawn_serve(&isolated.config, Piped::Stdout);
    let mut lines = BufReader::new(serve.stdout.take().expect("stdout")).lines();
    let key = tokio::time::timeout(START_WAIT, async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            if let Some(key) = line.trim().strip_prefix("tlk_") {
                return format!("tlk_{key}");
            }
        }
        panic!("serve exited without printing a key");
    })
    .await
    .expect("serve printed a key in time");
    let verifier_key = tokio::time::timeout(START_WAIT, async {
        let mut said_where = false;
        while let Some(line) = lines.next_line().await.expect("stdout") {
            said_where |= line.contains(&format!(
                "created in {}",
                key_dir.join("ledger.key").display()
            ));
            if said_where && line.trim().starts_with("traceledger+") {
                return line.trim().to_owned();
            }
        }
        panic!("serve exited without saying where its ledger key is");
    })
    .await
    .expect("serve said where its ledger key is in time");
    let file = key_dir.join("ledger.key");
    let private = std::fs::read_to_string(&file).expect("the key file");
    assert!(
        private.starts_with("PRIVATE+KEY+traceledger+"),
        "a C2SP signed-note key"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the owner reads the signing key");

    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/graphql");
    let gql = |query: &'static str, variables: Value| {
        let request = http
            .post(&url)
            .bearer_auth(&key)
            .json(&json!({ "query": query, "variables": variables }));
        async move {
            // The key is printed before the listener binds: retry until it serves.
            let deadline = tokio::time::Instant::now() + START_WAIT;
            loop {
                match request.try_clone().expect("a plain body").send().await {
                    Ok(response) => return response.json::<Value>().await.expect("JSON"),
                    Err(e) => {
                        assert!(tokio::time::Instant::now() < deadline, "never served: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    };
    let receipt = gql(
        "mutation($i: RecordEventInput!) { recordEvent(input: $i) { id status } }",
        json!({ "i": { "action": "first.steps", "service": "newcomer", "actor": { "id": "me" } } }),
    )
    .await;
    assert_eq!(
        receipt["data"]["recordEvent"]["status"], "ACCEPTED",
        "{receipt}"
    );
    let id = receipt["data"]["recordEvent"]["id"].clone();

    // The embedded worker stores it; the key reads it back, as tenant "default".
    let deadline = tokio::time::Instant::now() + START_WAIT;
    loop {
        let page = gql(
            "{ auditEvents { edges { node { id tenant action } } } }",
            json!({}),
        )
        .await;
        let edges = &page["data"]["auditEvents"]["edges"];
        if edges.as_array().is_some_and(|e| !e.is_empty()) {
            assert_eq!(edges[0]["node"]["id"], id, "{page}");
            assert_eq!(edges[0]["node"]["tenant"], "default", "{page}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never stored: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The key it said is the one it serves, and the checkpoints verify with it.
    let served = http
        .get(format!("http://127.0.0.1:{port}/ledger/key"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(served.trim(), verifier_key);
    serve.kill().await.expect("stop serve");
    std::fs::remove_dir_all(&key_dir).unwrap();
}

/// `traceledger` with `args` against `isolated`'s services: exit status and stderr.
async fn run_cli(isolated: &Isolated, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_traceledger"))
        .args(args)
        .envs(service_env(&isolated.config))
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run traceledger");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_user_error_prints_its_message_and_no_backtrace() {
    let isolated = Isolated::new("test");
    let (ok, stderr) = run_cli(&isolated, &["reindex"], &[("RUST_BACKTRACE", "1")]).await;
    assert!(!ok, "reindex without Elasticsearch must fail");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("error: ") && lines[0].contains("lasticsearch"),
        "one line naming what is missing, no backtrace:\n{stderr}"
    );

    // A cause is said once, though the error's own text already includes it.
    let (ok, stderr) = run_cli(
        &isolated,
        &["reindex"],
        &[("TRACELEDGER_ELASTICSEARCH_URL", "not a url")],
    )
    .await;
    assert!(!ok, "a bad Elasticsearch URL must fail");
    let line = stderr.trim();
    assert!(
        line.starts_with("error: ") && !line.contains('\n'),
        "{stderr}"
    );
    let parts: Vec<&str> = line.split(": ").collect();
    let unique: std::collections::HashSet<&&str> = parts.iter().collect();
    assert_eq!(unique.len(), parts.len(), "a cause is repeated: {line}");
}

#[tokio::test]
async fn a_second_migrate_is_quiet_about_what_already_exists() {
    let isolated = Isolated::new("test");
    for _ in 0..2 {
        let (ok, stderr) = run_cli(&isolated, &["migrate"], &[]).await;
        assert!(ok, "{stderr}");
        assert!(
            !stderr.contains("already exists"),
            "PostgreSQL's notices are not the user's concern:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn serve_on_a_busy_port_says_how_to_choose_another_and_exits_1() {
    let isolated = Isolated::new("test");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let address = busy.local_addr().expect("address").to_string();
    let (ok, stderr) = run_cli(&isolated, &["serve"], &[("TRACELEDGER_LISTEN", &address)]).await;
    assert!(!ok, "serve must fail on a busy port");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one clear line, no panic:\n{stderr}");
    for needed in [address.as_str(), "--listen", "TRACELEDGER_LISTEN"] {
        assert!(lines[0].contains(needed), "{needed} is not named: {stderr}");
    }
    // Nothing was started before the port was known to be free.
    let mut db = sqlx::PgConnection::connect(&isolated.config.database.url).await;
    if let Ok(db) = db.as_mut() {
        let keys: Option<i64> = sqlx::query_scalar("SELECT count(*) FROM api_keys")
            .fetch_one(db)
            .await
            .ok();
        assert_eq!(keys.unwrap_or(0), 0, "a key was minted before the bind");
    }
}

#[tokio::test]
async fn serve_with_keys_already_there_says_how_to_mint_one() {
    let isolated = Isolated::new("test");
    let (ok, stderr) = run_cli(
        &isolated,
        &["keys", "create", "--tenant", "default", "--name", "first"],
        &[],
    )
    .await;
    assert!(ok, "{stderr}");
    let (mut serve, _) = spawn_serve(&isolated.config, Piped::Stdout);
    let mut lines = BufReader::new(serve.stdout.take().expect("stdout")).lines();
    let hint = tokio::time::timeout(START_WAIT, async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            assert!(!line.contains("tlk_"), "no new key when keys exist: {line}");
            if line.contains("keys create") {
                return line;
            }
        }
        panic!("serve exited without a hint");
    })
    .await
    .expect("serve printed the hint in time");
    assert!(
        hint.contains("traceledger keys create --tenant default --name me"),
        "{hint}"
    );
    serve.kill().await.expect("stop serve");
}

/// `traceledger <args> --help`, as a user reads it.
fn help(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_traceledger"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run traceledger");
    assert!(output.status.success(), "{args:?} --help failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn each_command_shows_only_the_options_it_uses_its_own_first() {
    let create = help(&["keys", "create"]);
    let position = |text: &str, option: &str| {
        text.find(option)
            .unwrap_or_else(|| panic!("{option} is not in:\n{text}"))
    };
    // Its own options first, each described.
    assert!(position(&create, "--tenant") < position(&create, "--database-url"));
    assert!(position(&create, "--scope") < position(&create, "--database-url"));
    for line in create
        .lines()
        .filter(|l| l.contains("--tenant") || l.contains("--name "))
    {
        assert!(
            line.split_whitespace().count() > 2,
            "no description: {line}"
        );
    }
    // Nothing a key does not need.
    for foreign in [
        "--listen",
        "--amqp-url",
        "--redis-url",
        "--jwt-issuer",
        "--batch-size",
    ] {
        assert!(
            !create.contains(foreign),
            "keys create shows {foreign}:\n{create}"
        );
    }
    assert!(
        create.lines().count() < 40,
        "keys create --help is long:\n{create}"
    );

    // Dead letters live on the broker; their audit events go through the database.
    let dlq = help(&["dlq"]);
    assert!(
        dlq.contains("--amqp-url") && dlq.contains("--database-url"),
        "{dlq}"
    );
    for foreign in [
        "--listen",
        "--redis-url",
        "--jwt-issuer",
        "--elasticsearch-url",
    ] {
        assert!(!dlq.contains(foreign), "dlq shows {foreign}:\n{dlq}");
    }
    assert!(dlq.lines().count() < 50, "dlq --help is long:\n{dlq}");

    // The service still takes everything it runs with.
    let serve = help(&["serve"]);
    for option in [
        "--listen",
        "--amqp-url",
        "--redis-url",
        "--jwt-issuer",
        "--batch-size",
    ] {
        assert!(serve.contains(option), "serve lacks {option}");
    }
}

#[test]
fn a_renamed_variable_still_works_and_says_its_new_name() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_traceledger"))
        .arg("schema")
        .env("TRACELEDGER_BREAKER_COOL_DOWN_MS", "1500")
        .env_remove("TRACELEDGER_BREAKER_COOLDOWN_MS")
        .output()
        .expect("run traceledger");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TRACELEDGER_BREAKER_COOL_DOWN_MS is deprecated")
            && stderr.contains("TRACELEDGER_BREAKER_COOLDOWN_MS"),
        "{stderr}"
    );
}
