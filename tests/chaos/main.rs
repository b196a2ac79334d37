//! Count-exact loss tests: events are recorded while RabbitMQ, Redis, the worker or PostgreSQL
//! is stopped, killed or restarted, and afterwards exactly the accepted events are stored, each
//! once. Every test brings private instances of what it disturbs (see `services`), so nothing
//! else on the machine notices; the tests run one at a time. `round_trips` uses the same private
//! instances to count what a read sends to Redis and PostgreSQL.

mod round_trips;
mod services;

use traceledger_testenv as helpers;
use traceledger_testenv::ws;

use std::collections::HashSet;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use helpers::{event, TestApp, TENANT};
use services::{PrivatePostgres, PrivateRabbit, PrivateRedis};

/// One disturbance at a time: they are heavy, and timing matters to what they exercise.
pub(crate) static SERIAL: Mutex<()> = Mutex::const_new(());
/// How long a test waits for everything accepted to be stored after the disturbance.
const SETTLE: Duration = Duration::from_secs(60);

/// What a producer saw: the ids it was given, when each call was accepted, and how many calls
/// were refused along the way.
struct Recording {
    ids: Vec<String>,
    accepted_at: Vec<Instant>,
    refused: usize,
}

impl Recording {
    /// How many calls were accepted inside `window` (a disturbance, from its start to its end).
    fn accepted_during(&self, (from, to): (Instant, Instant)) -> usize {
        self.accepted_at
            .iter()
            .filter(|at| (from..=to).contains(*at))
            .count()
    }
}

/// What a producer does: record, and on UNAVAILABLE wait and try again (it was not accepted).
/// With `keyed`, every call carries the idempotency key `{prefix}-{i}`.
async fn record_all(app: &TestApp, count: usize, prefix: &str, keyed: bool) -> Recording {
    let mut recording = Recording {
        ids: Vec::with_capacity(count),
        accepted_at: Vec::with_capacity(count),
        refused: 0,
    };
    for i in 0..count {
        let mut input = event(&format!("{prefix}.event_{i}"));
        if keyed {
            input["idempotencyKey"] = json!(format!("{prefix}-{i}"));
        }
        loop {
            let (status, body) = app
                .post(
                    Some(&app.key),
                    "mutation($input: RecordEventInput!) { recordEvent(input: $input) { id status } }",
                    json!({ "input": input }),
                )
                .await;
            let code = body["errors"][0]["extensions"]["code"].clone();
            if status == 200 && body["errors"].is_null() {
                assert_eq!(body["data"]["recordEvent"]["status"], "ACCEPTED", "{body}");
                recording.ids.push(
                    body["data"]["recordEvent"]["id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
                recording.accepted_at.push(Instant::now());
                break;
            }
            assert!(
                code == "UNAVAILABLE" || status == 503,
                "only UNAVAILABLE may refuse an event: {status} {body}"
            );
            recording.refused += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    recording
}

/// The value of a counter on /metrics (0 before it is first counted).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits until exactly the accepted events are stored, then checks none is there twice.
async fn assert_exactly_stored(app: &TestApp, accepted: &[String]) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let stored = app.stored_count(TENANT).await;
        assert!(
            stored <= accepted.len() as i64,
            "{stored} stored, only {} accepted",
            accepted.len()
        );
        if stored == accepted.len() as i64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {stored} of {} accepted events stored",
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id::text FROM audit_events WHERE tenant = $1")
            .bind(TENANT)
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    let stored: HashSet<&String> = ids.iter().collect();
    assert_eq!(stored.len(), ids.len(), "an event is stored twice");
    let expected: HashSet<&String> = accepted.iter().collect();
    assert_eq!(expected.len(), accepted.len(), "an id was handed out twice");
    assert_eq!(
        stored, expected,
        "stored events differ from the accepted ones"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_rabbitmq_stops_and_starts() {
    let _serial = SERIAL.lock().await;
    let rabbit = PrivateRabbit::start();
    let url = rabbit.url();
    let app = TestApp::spawn_with(|config| {
        config.broker.url = url;
        config.publish.timeout_ms = 2000;
        config.publish.outbox_poll_ms = 200;
    })
    .await;
    // A live subscriber from before the outage.
    let mut socket = ws::subscribe(
        &app,
        &app.key,
        json!({ "actions": ["after_outage.marker"] }),
    )
    .await;
    let sender = record_all(&app, 300, "broker", false);
    let outage = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        tokio::task::block_in_place(|| rabbit.stop_app());
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::task::block_in_place(|| rabbit.start_app());
    };
    let parked_before = metric(&app, "traceledger_outbox_parked_total").await;
    let (recording, ()) = tokio::join!(sender, outage);
    assert_eq!(
        recording.refused, 0,
        "the outbox takes events while the broker is down"
    );
    assert!(
        metric(&app, "traceledger_outbox_parked_total").await > parked_before,
        "no event went through the outbox: the outage was not exercised"
    );
    assert_exactly_stored(&app, &recording.ids).await;

    // The live feed finds its way back (reconnecting with backoff): the same websocket gets
    // what is recorded once it has. The feed is live, not durable: what was published before it
    // rebound its queue is not replayed, so markers are sent until one arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut markers = Vec::new();
    loop {
        markers.push(app.record(event("after_outage.marker")).await["id"].clone());
        if let Some(message) = ws::next(&mut socket, Duration::from_secs(1)).await {
            let id = &message["payload"]["data"]["eventRecorded"]["id"];
            assert!(markers.contains(id), "{message}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no live event within 30 s of the broker coming back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_redis_is_killed_and_restarted() {
    let _serial = SERIAL.lock().await;
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(|config| config.redis.url = url).await;
    // Idempotency keys: their fast path is the part of recording that uses Redis.
    let sender = record_all(&app, 300, "cache", true);
    let outage = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        tokio::task::block_in_place(|| redis.kill());
        let down = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let up = Instant::now();
        tokio::task::block_in_place(|| redis.restart());
        (down, up)
    };
    let (recording, outage) = tokio::join!(sender, outage);
    assert_eq!(recording.refused, 0, "recording does not need Redis");
    assert!(
        recording.accepted_during(outage) > 0,
        "no event was accepted while Redis was down: the outage was not exercised"
    );
    assert_exactly_stored(&app, &recording.ids).await;

    // Every key, the ones sent while Redis was down included, still names its first event:
    // Redis lost the claims it held, so the answers come from PostgreSQL.
    for (i, id) in recording.ids.iter().enumerate() {
        let mut input = event(&format!("cache.event_{i}"));
        input["idempotencyKey"] = json!(format!("cache-{i}"));
        let receipt = app.record(input).await;
        assert_eq!(receipt["status"], "DUPLICATE", "key cache-{i}: {receipt}");
        assert_eq!(receipt["id"], id.as_str(), "key cache-{i}");
    }
    assert_exactly_stored(&app, &recording.ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_postgres_restarts() {
    let _serial = SERIAL.lock().await;
    let postgres = PrivatePostgres::start();
    let url = postgres.url("traceledger_chaos");
    let app = TestApp::spawn_with(|config| config.database.url = url).await;
    let sender = record_all(&app, 300, "database", false);
    let outage = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        tokio::task::block_in_place(|| postgres.stop());
        let down = Instant::now();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let up = Instant::now();
        tokio::task::block_in_place(|| postgres.start_again());
        (down, up)
    };
    let (recording, outage) = tokio::join!(sender, outage);
    // Recording goes through the broker; the database is only needed to store.
    assert_eq!(recording.refused, 0, "recording does not need PostgreSQL");
    assert!(
        recording.accepted_during(outage) > 0,
        "no event was accepted while PostgreSQL was down: the outage was not exercised"
    );
    assert_exactly_stored(&app, &recording.ids).await;
}

/// Broker messages the worker process commits at a time.
const WORKER_BATCH_MESSAGES: i64 = 20;
/// Events each `record_batches` call carries in its one message.
const EVENTS_PER_CALL: usize = 50;

/// `traceledger worker` for this app, as a process of its own.
fn worker_process(app: &TestApp) -> Child {
    Command::new(env!("CARGO_BIN_EXE_traceledger"))
        .arg("worker")
        .envs(helpers::service_env(&app.config))
        .env("TRACELEDGER_BATCH_SIZE", WORKER_BATCH_MESSAGES.to_string())
        .env("TRACELEDGER_BATCH_TIMEOUT_MS", "50")
        .env("RUST_LOG", "warn,sqlx::query=error")
        .spawn()
        .expect("start the worker")
}

/// Slows every insert down, so that a signal lands inside a batch's transaction.
async fn slow_inserts(app: &TestApp) {
    for statement in [
        "CREATE FUNCTION test_slow() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER test_slow BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION test_slow()",
    ] {
        sqlx::query(statement).execute(app.store.pool()).await.expect("test trigger");
    }
}

/// Records `calls` calls of `EVENTS_PER_CALL` events with `recordEvents`: one broker message
/// each.
async fn record_batches(app: &TestApp, calls: usize, prefix: &str) -> Vec<String> {
    let mut accepted = Vec::new();
    for call in 0..calls {
        let inputs: Vec<Value> = (0..EVENTS_PER_CALL)
            .map(|i| event(&format!("{prefix}.c{call}_e{i}")))
            .collect();
        let body = app
            .gql(
                "mutation($inputs: [RecordEventInput!]!) { recordEvents(inputs: $inputs) { id } }",
                json!({ "inputs": inputs }),
            )
            .await;
        accepted.extend(
            body["data"]["recordEvents"]
                .as_array()
                .expect("receipts")
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
    }
    accepted
}

/// Waits until the worker has committed its first batch.
async fn wait_first_commit(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.stored_count(TENANT).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker stored nothing"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the worker's batch insert (`WITH batch AS …`) is running in the database, and
/// returns how many events were stored before it.
async fn wait_insert_in_flight(app: &TestApp) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state = 'active' AND query LIKE 'WITH batch AS%'",
        )
        .fetch_one(app.store.pool())
        .await
        .unwrap();
        if running > 0 {
            return app.stored_count(TENANT).await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no batch was ever in flight"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_the_worker_is_killed_mid_batch() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::spawn_without_worker(|_| {}).await;
    slow_inserts(&app).await;
    // 40 broker messages, committed 20 messages (1000 rows) at a time.
    let accepted = record_batches(&app, 40, "killed").await;

    let mut worker = worker_process(&app);
    wait_first_commit(&app).await;
    let stored_before = wait_insert_in_flight(&app).await;
    worker.kill().expect("SIGKILL the worker");
    worker.wait().expect("reap the worker");
    // The batch it was writing is rolled back, not half stored.
    assert_eq!(
        app.stored_count(TENANT).await,
        stored_before,
        "a batch survived its worker in part"
    );
    assert!(
        stored_before < accepted.len() as i64,
        "the worker finished before it was killed"
    );

    let mut worker = worker_process(&app);
    assert_exactly_stored(&app, &accepted).await;
    worker.kill().expect("stop the worker");
    let _ = worker.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_commits_what_it_holds_and_exits_on_sigterm() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::spawn_without_worker(|_| {}).await;
    slow_inserts(&app).await;
    let accepted = record_batches(&app, 80, "term").await;
    let mut worker = worker_process(&app);
    wait_first_commit(&app).await;
    let stored_before = wait_insert_in_flight(&app).await;
    let status = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    let exited = tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = worker.try_wait().expect("worker status") {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let exited = exited.expect("the worker exits promptly on SIGTERM");
    assert!(exited.success(), "a clean exit: {exited:?}");
    // The batch in flight was committed, not abandoned, and the worker took no more after it:
    // at most one batch landed after the insert was seen running.
    let stored_at_exit = app.stored_count(TENANT).await;
    assert!(
        stored_at_exit > stored_before,
        "the batch in flight was dropped"
    );
    let one_batch = WORKER_BATCH_MESSAGES * EVENTS_PER_CALL as i64;
    assert!(
        stored_at_exit <= stored_before + one_batch,
        "the worker went on consuming after SIGTERM: {} events stored after it, one batch is {one_batch}",
        stored_at_exit - stored_before
    );

    // What it had not taken is still queued; a new worker stores the rest, nothing twice.
    let mut worker = worker_process(&app);
    assert_exactly_stored(&app, &accepted).await;
    worker.kill().expect("stop the worker");
    let _ = worker.wait();
}

/// The sealer of a worker killed again and again while it hashes a long backlog (each chunk of
/// it is one transaction): once a worker lives long enough, every index is sealed once, every
/// checkpoint kept verifies with the key and adds up with the events, none is skipped or
/// signed twice.
#[tokio::test]
async fn a_sealer_killed_mid_tree_resumes_without_a_wrong_or_repeated_checkpoint() {
    let app = TestApp::spawn_without_worker(|_| {}).await;
    const BACKLOG: usize = 60_000;
    let now = chrono::Utc::now();
    for _ in 0..BACKLOG / 2_000 {
        let batch: Vec<_> = (0..2_000)
            .map(|_| helpers::received_event(TENANT, now))
            .collect();
        app.store
            .insert_events(&batch, traceledger::store::SearchBacklog::Skip)
            .await
            .expect("the backlog is stored");
    }
    for round in 0..4u64 {
        let mut worker = worker_process(&app);
        tokio::time::sleep(Duration::from_millis(600 + 250 * round)).await;
        worker.kill().expect("SIGKILL the worker");
        worker.wait().expect("the worker is gone");
    }
    let sealed_by_kills = app.store.sealed_size(TENANT).await.unwrap();
    let mut worker = worker_process(&app);
    let deadline = Instant::now() + Duration::from_secs(120);
    while app.store.sealed_size(TENANT).await.unwrap() < BACKLOG as u64 {
        assert!(Instant::now() < deadline, "the backlog was never sealed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.kill().expect("stop the worker");
    worker.wait().expect("the worker is gone");
    assert!(
        sealed_by_kills < BACKLOG as u64,
        "the kills came after the sealing ({sealed_by_kills}): nothing was interrupted"
    );

    let key = app.config.ledger.key.as_deref().unwrap();
    let verifier = traceledger::domain::ledger::LedgerSigner::from_private(key)
        .unwrap()
        .verifier_key()
        .to_owned();
    let notes: Vec<(i64, String)> =
        sqlx::query_as("SELECT size, note FROM ledger_checkpoints WHERE tenant = $1 ORDER BY size")
            .bind(TENANT)
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    assert_eq!(notes.last().map(|(size, _)| *size), Some(BACKLOG as i64));
    for (size, note) in &notes {
        let opened =
            traceledger::domain::ledger::open_checkpoint(note, std::slice::from_ref(&verifier))
                .expect("every checkpoint verifies");
        assert_eq!(opened.size, *size as u64);
    }
    // Every checkpoint adds up with the events, and every leaf is sealed as its event hashes.
    let output = Command::new(env!("CARGO_BIN_EXE_traceledger"))
        .args(["verify", "--online", "--tenant", TENANT, "--key", &verifier])
        .envs(helpers::service_env(&app.config))
        .output()
        .expect("run traceledger verify");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "{BACKLOG} events in a tree of {BACKLOG}: verified"
        )),
        "{stdout}"
    );
}
