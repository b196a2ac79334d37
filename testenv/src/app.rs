//! One way to start the app for a test, and the client calls the tests share.

use crate::{service_env, Isolated};

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use traceledger::access::auth::{create_api_key, create_scoped_api_key, Scope};
use traceledger::app::own_trail::SYSTEM_TENANT;
use traceledger::config::Config;
use traceledger::domain::ledger::LedgerSigner;
use traceledger::domain::{Actor, AuditEvent, Outcome, Severity};
use traceledger::startup::App;
use traceledger::store::Store;

pub const TENANT: &str = "acme";
pub const OTHER_TENANT: &str = "globex";
/// How long a test waits for the worker to store what was accepted.
const STORE_WAIT: Duration = Duration::from_secs(15);
/// How long a count must hold before a test concludes nothing more is coming: several batch
/// timeouts (20 ms here) and the longest test retry delay (200 ms) over.
const LATE_DUPLICATE_WAIT: Duration = Duration::from_millis(1000);

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub config: Config,
    pub store: Store,
    /// A key for `TENANT`.
    pub key: String,
    /// A key for `OTHER_TENANT`.
    pub other_key: String,
    /// A key for `TENANT` with only the admin scope.
    pub admin_key: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    _isolated: Isolated,
}

impl TestApp {
    /// Starts the API with its embedded worker on a random port, isolated from other tests.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like `spawn`, with the isolated configuration adjusted by `configure` first.
    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        Self::start(configure, true).await
    }

    /// The API alone, for tests that run the worker as a process of its own or need the store
    /// to themselves.
    pub async fn spawn_without_worker(configure: impl FnOnce(&mut Config)) -> Self {
        Self::start(configure, false).await
    }

    async fn start(configure: impl FnOnce(&mut Config), with_worker: bool) -> Self {
        let mut isolated = Isolated::new("test");
        // Quick batches and retries: tests wait on them.
        isolated.config.worker.batch_timeout_ms = 20;
        isolated.config.broker.retry_delays_ms = vec![100, 200];
        isolated.config.ledger.checkpoint_interval_ms = 100;
        configure(&mut isolated.config);
        let config = isolated.config.clone();
        let shutdown = CancellationToken::new();
        let app = App::build(config.clone(), shutdown.clone())
            .await
            .expect("the app starts against the local services");
        let store = app.store().clone();
        if with_worker {
            app.spawn_pipeline()
                .await
                .expect("the worker, sealer and indexer start");
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(app.serve(listener));
        let key = create_api_key(&store, TENANT, "test")
            .await
            .expect("key")
            .secret;
        let other_key = create_api_key(&store, OTHER_TENANT, "test")
            .await
            .expect("key")
            .secret;
        let admin_key = create_scoped_api_key(&store, TENANT, "admin", &[Scope::Admin])
            .await
            .expect("key")
            .secret;
        Self {
            addr,
            config,
            store,
            key,
            other_key,
            admin_key,
            http: reqwest::Client::new(),
            shutdown,
            _isolated: isolated,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a GraphQL request with `key` and returns the status and JSON body.
    pub async fn post(&self, key: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        self.post_request(key, &json!({ "query": query, "variables": variables }))
            .await
    }

    /// POSTs a whole GraphQL request body (with `operationName`, say) as `TENANT`; asserts HTTP
    /// 200.
    pub async fn post_body(&self, body: &Value) -> Value {
        self.post_body_as(&self.key, body).await
    }

    async fn post_body_as(&self, key: &str, body: &Value) -> Value {
        let (status, body) = self.post_request(Some(key), body).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn post_request(&self, key: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.http.post(self.url("/graphql")).json(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// A GraphQL request as `TENANT`; asserts HTTP 200.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_as(&self.key, query, variables).await
    }

    pub async fn gql_as(&self, key: &str, query: &str, variables: Value) -> Value {
        self.post_body_as(key, &json!({ "query": query, "variables": variables }))
            .await
    }

    /// The `data` of a GraphQL call as `key`; asserts it answered without errors.
    pub async fn data_as(&self, key: &str, query: &str, variables: Value) -> Value {
        let mut body = self.gql_as(key, query, variables).await;
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].take()
    }

    /// Records one event as `key`'s tenant and returns the payload; asserts no errors.
    pub async fn record_as(&self, key: &str, input: Value) -> Value {
        let mut data = self
            .data_as(
                key,
                "mutation($input: RecordEventInput!) { recordEvent(input: $input) { id status receivedAt } }",
                json!({ "input": input }),
            )
            .await;
        data["recordEvent"].take()
    }

    /// Records a batch as `key`'s tenant in one `recordEvents` call; asserts no errors.
    pub async fn record_many_as(&self, key: &str, inputs: &[Value]) {
        self.data_as(
            key,
            "mutation($inputs: [RecordEventInput!]!) { recordEvents(inputs: $inputs) { id } }",
            json!({ "inputs": inputs }),
        )
        .await;
    }

    /// A new `admin` key of the operators' tenant `_traceledger` (dead letters are theirs).
    pub async fn operator_admin_key(&self) -> String {
        create_scoped_api_key(
            &self.store,
            SYSTEM_TENANT,
            "operator-admin",
            &[Scope::Admin],
        )
        .await
        .expect("key")
        .secret
    }

    /// Runs `traceledger <args>` against this app's database and broker names, with `more`
    /// variables on top; asserts it succeeded and returns what it printed.
    #[allow(dead_code)] // used by some test binaries sharing this file, not all
    pub fn cli(&self, args: &[&str], more: &[(&str, String)]) -> String {
        let output = std::process::Command::new(crate::traceledger_binary())
            .args(args)
            .envs(service_env(&self.config))
            .envs(more.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("run traceledger");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// What `/ready` says about each dependency, as operators see it.
    pub async fn ready(&self) -> Value {
        self.http
            .get(self.url("/ready"))
            .send()
            .await
            .expect("GET /ready")
            .json()
            .await
            .expect("a JSON readiness report")
    }

    /// Records a batch as `TENANT` with `recordEvents`; asserts no errors.
    pub async fn record_all(&self, inputs: &[Value]) {
        self.record_many_as(&self.key, inputs).await
    }

    pub async fn record(&self, input: Value) -> Value {
        self.record_as(&self.key, input).await
    }

    /// Waits until the worker has stored `count` events for `tenant`, and fails if it stores
    /// more: once the count is reached it keeps counting for `LATE_DUPLICATE_WAIT`, so that a
    /// late duplicate (a redelivery, a retry through the retry queues) has the time to show.
    pub async fn wait_stored(&self, tenant: &str, count: i64) {
        let deadline = tokio::time::Instant::now() + STORE_WAIT;
        let mut reached: Option<tokio::time::Instant> = None;
        loop {
            let stored = self.stored_count(tenant).await;
            assert!(
                stored <= count,
                "{stored} events stored for {tenant}, expected {count}"
            );
            if stored == count {
                let since = *reached.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= LATE_DUPLICATE_WAIT {
                    return;
                }
            } else {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "only {stored} of {count} events stored for {tenant}"
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The partition of `audit_events` that holds the event `id`.
    pub async fn partition_of(&self, id: Uuid) -> String {
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM audit_events WHERE id = $1")
            .bind(id)
            .fetch_one(self.store.pool())
            .await
            .expect("the event is stored")
    }

    /// The id of `tenant`'s key named `name` (`spawn` names its keys "test" and "admin").
    pub async fn key_id(&self, tenant: &str, name: &str) -> Uuid {
        sqlx::query_scalar("SELECT id FROM api_keys WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .fetch_one(self.store.pool())
            .await
            .expect("the key exists")
    }

    /// Seals the tenant's ledger up to its head with the service's own sealer (beside the app's
    /// sealer when it runs one; they take turns).
    #[allow(dead_code)] // used by some test binaries sharing this file, not all
    pub async fn seal(&self, tenant: &str) {
        let key = self
            .config
            .ledger
            .key
            .as_deref()
            .expect("the run's ledger key");
        let signer = LedgerSigner::from_private(key).expect("the run's ledger key");
        let deadline = tokio::time::Instant::now() + STORE_WAIT;
        loop {
            traceledger::tasks::sealer::seal(
                &self.store,
                &signer,
                &self.config.ledger.name,
                tenant,
            )
            .await
            .expect("sealing");
            let sealed = self.store.sealed_size(tenant).await.expect("the tree");
            let head = self.store.ledger_head(tenant).await.expect("the head");
            if sealed == head {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{tenant} not sealed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stored_count(&self, tenant: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE tenant = $1")
            .bind(tenant)
            .fetch_one(self.store.pool())
            .await
            .expect("count")
    }

    /// A channel on the test's broker connection, for tests that talk to RabbitMQ directly.
    pub async fn broker(&self) -> (lapin::Connection, lapin::Channel) {
        let connection = traceledger::bus::connect(&self.config.broker.url, "traceledger-test")
            .await
            .expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        (connection, channel)
    }
}

/// A minimal valid event input.
pub fn event(action: &str) -> Value {
    json!({
        "action": action,
        "service": "billing",
        "actor": { "id": "alice" },
    })
}

/// An accepted event of `tenant`, for seeding the store directly with `app.store.insert_events`
/// when a test needs more events than is sensible to send through the API.
pub fn stored_event(tenant: &str, occurred_at: DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        ..received_event(tenant, occurred_at)
    }
}

/// An accepted event of `tenant` received (and occurred) at `received_at`: its UUIDv7 id carries
/// that time, as the API's would have, so it belongs to that month's partition.
pub fn received_event(tenant: &str, received_at: DateTime<Utc>) -> AuditEvent {
    let timestamp = uuid::Timestamp::from_unix(
        uuid::NoContext,
        received_at.timestamp() as u64,
        received_at.timestamp_subsec_nanos(),
    );
    let occurred_at = received_at;
    AuditEvent {
        id: Uuid::new_v7(timestamp),
        tenant: tenant.to_owned(),
        occurred_at,
        received_at: occurred_at,
        action: "invoice.update".to_owned(),
        outcome: Outcome::Success,
        severity: Severity::Info,
        service: "billing".to_owned(),
        actor: Actor {
            id: "alice".to_owned(),
            kind: "user".to_owned(),
            name: None,
            ip: None,
            href: None,
        },
        target: None,
        message: None,
        metadata: None,
        idempotency_key: None,
        request_id: None,
        trace_id: None,
        recorded_by: None,
        group: None,
        crud: None,
    }
}

impl Drop for TestApp {
    /// Stops the app; its `Isolated` resources are removed after (field drop order).
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `traceledger serve` as a process of its own against `config`'s services, on a free port
/// (returned with it), with the output `piped` names piped and the other dropped.
pub fn spawn_serve(config: &Config, piped: Piped) -> (tokio::process::Child, u16) {
    use std::process::Stdio;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (stdout, stderr) = match piped {
        Piped::Stdout => (Stdio::piped(), Stdio::null()),
        Piped::Stderr => (Stdio::null(), Stdio::piped()),
    };
    let child = tokio::process::Command::new(crate::traceledger_binary())
        .arg("serve")
        .envs(service_env(config))
        .env("TRACELEDGER_LISTEN", format!("127.0.0.1:{port}"))
        .env("NO_COLOR", "1")
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("run traceledger serve");
    (child, port)
}

/// Which output of a spawned process a test reads.
pub enum Piped {
    Stdout,
    Stderr,
}
