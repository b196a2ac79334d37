//! Search: one suite of behaviour run against both backends (PostgreSQL full text, and
//! Elasticsearch played by `osmem-server`), then the fallback to PostgreSQL while Elasticsearch
//! is down and the catch-up once it is back.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, OTHER_TENANT, TENANT};

/// How long a test waits for events to become searchable.
const SEARCH_WAIT: Duration = Duration::from_secs(30);
/// A word in every seeded event's metadata, to tell when all of them are searchable.
const SEED_MARK: &str = "seedmark";
/// A message with characters that must be escaped in highlights.
const ESCAPED: &str = "escaped 1 < 2 & \"quoted\" invoice";
const HEARTBEAT: &str = "duplicate heartbeat";

const SEARCH: &str = "query($q: String!, $f: AuditEventFilter, $first: Int!, $after: String, $last: Int, $before: String) {
    search(query: $q, filter: $f, first: $first, after: $after, last: $last, before: $before) {
        hits { cursor score highlights event { id tenant message occurredAt } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        total
    }
}";

/// An `osmem-server` child process (in-memory, OpenSearch-compatible) on a fixed port, killed
/// on drop. `OSMEM_SERVER_BIN` names the binary; otherwise the one the PyPI package bundles.
struct SearchServer {
    port: u16,
    child: Option<Child>,
}

impl SearchServer {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self { port, child: None };
        server.restart().await;
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and waits until it says it is ready.
    async fn restart(&mut self) {
        let binary = osmem_binary();
        let mut child = Command::new(&binary)
            .args(["--addr", &format!("127.0.0.1:{}", self.port), "--no-ja"])
            .args(["--parent-pid", &std::process::id().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary} (run scripts/test): {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("\"url\"") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "osmem-server did not start");
        self.child = Some(child);
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("stop osmem-server");
        }
    }
}

fn osmem_binary() -> String {
    if let Ok(path) = std::env::var("OSMEM_SERVER_BIN") {
        return path;
    }
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import osmem_server; print(osmem_server.resolve_binary())",
        ])
        .output()
        .expect("python3 to find osmem-server (run scripts/test)");
    assert!(
        output.status.success(),
        "osmem-server is not installed (run scripts/test): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The app, searching through Elasticsearch at `server`.
async fn spawn_with_elasticsearch(server: &SearchServer) -> TestApp {
    let url = server.url();
    TestApp::spawn_with(|config| {
        config.search.elasticsearch_url = Some(url);
        config.search.index_poll_ms = 50;
        config.search.timeout_ms = 1000;
        config.search.breaker_failures = 1;
        config.search.breaker_cooldown_ms = 300;
    })
    .await
}

/// One search as `key`'s tenant: the connection and the backend that answered.
async fn search_as(app: &TestApp, key: &str, variables: Value) -> (Value, String) {
    let mut variables = variables;
    if variables.get("first").is_none() {
        variables["first"] = json!(100);
    }
    let body = app.gql_as(key, SEARCH, variables).await;
    assert!(body.get("errors").is_none(), "{body}");
    let backend = body["extensions"]["searchBackend"]
        .as_str()
        .unwrap_or_else(|| panic!("no searchBackend extension: {body}"))
        .to_owned();
    (body["data"]["search"].clone(), backend)
}

/// The messages a query finds as `TENANT`, in order; asserts the backend and that every hit is
/// the tenant's own.
async fn found(app: &TestApp, backend: &str, query: &str, filter: Value) -> Vec<String> {
    let (search, answered) = search_as(app, &app.key, json!({ "q": query, "f": filter })).await;
    assert_eq!(answered, backend, "query {query:?}");
    let hits = search["hits"].as_array().expect("hits");
    assert_eq!(
        search["total"].as_u64(),
        Some(hits.len() as u64),
        "query {query:?}: {search}"
    );
    hits.iter()
        .map(|h| {
            assert_eq!(h["event"]["tenant"], TENANT);
            h["event"]["message"].as_str().expect("message").to_owned()
        })
        .collect()
}

fn event_ids(search: &Value) -> Vec<String> {
    search["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["event"]["id"].as_str().expect("id").to_owned())
        .collect()
}

fn unordered(messages: Vec<String>) -> HashSet<String> {
    messages.into_iter().collect()
}

fn set(messages: &[&str]) -> HashSet<String> {
    messages.iter().map(|m| (*m).to_owned()).collect()
}

/// Events for the suite, all in one month (so Elasticsearch scores them in one index).
fn seed_events() -> Vec<Value> {
    let event = |minute: u32, action: &str, message: &str, extra: Value| {
        let mut e = json!({
            "action": action,
            "service": "billing",
            "actor": { "id": "bob", "name": "Bob Jones" },
            "occurredAt": format!("2026-11-02T10:{minute:02}:00Z"),
            "message": message,
            "metadata": { "mark": SEED_MARK },
        });
        for (k, v) in extra.as_object().expect("object") {
            e[k] = v.clone();
        }
        e
    };
    vec![
        event(
            1,
            "payment.refund",
            "refund refund refund issued",
            json!({}),
        ),
        event(
            2,
            "payment.note",
            "a long note about many other things and one refund somewhere in the middle of it all",
            json!({}),
        ),
        event(
            3,
            "invoice.pay",
            "invoice paid by alice",
            json!({ "actor": { "id": "alice", "name": "Alice Smith" }, "target": { "id": "ORD-98765", "type": "order" }, "group": { "id": "org-a" } }),
        ),
        event(
            4,
            "invoice.pay",
            "alice paid the invoice by card",
            json!({ "actor": { "id": "alice" }, "service": "shop" }),
        ),
        event(
            5,
            "dispute.open",
            "chargeback opened",
            json!({ "outcome": "FAILURE", "severity": "ERROR" }),
        ),
        event(
            6,
            "dispute.close",
            "dispute resolved",
            json!({ "severity": "CRITICAL" }),
        ),
        event(
            7,
            "user.profile",
            "profile updated",
            json!({ "metadata": { "mark": SEED_MARK, "color": "turquoise", "size": 42 } }),
        ),
        // Identical but for the time: equally relevant.
        event(8, "system.heartbeat", HEARTBEAT, json!({})),
        event(9, "system.heartbeat", HEARTBEAT, json!({})),
        event(
            10,
            "invoice_x.create",
            ESCAPED,
            json!({ "severity": "WARNING", "outcome": "FAILURE" }),
        ),
    ]
}

/// Records the suite's events (and another tenant's look-alikes) and waits until they are
/// searchable through `backend`.
async fn seed(app: &TestApp, backend: &str) -> usize {
    let inputs = seed_events();
    app.record_all(&inputs).await;
    for other in &inputs[..3] {
        app.record_as(&app.other_key, other.clone()).await;
    }
    app.wait_stored(TENANT, inputs.len() as i64).await;
    app.wait_stored(OTHER_TENANT, 3).await;
    wait_searchable(app, backend, SEED_MARK, inputs.len()).await;
    inputs.len()
}

/// Waits until `query` finds `count` events through `backend`.
async fn wait_searchable(app: &TestApp, backend: &str, query: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + SEARCH_WAIT;
    loop {
        let (search, answered) = search_as(app, &app.key, json!({ "q": query })).await;
        if answered == backend && search["total"].as_u64() == Some(count as u64) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{query:?} never found {count} events through {backend}: {answered} {search}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Everything a user can ask of `search`, against whichever backend `app` uses.
async fn behaviour_suite(app: &TestApp, backend: &str) {
    seed(app, backend).await;
    let none = Value::Null;

    // Relevance: three mentions in a short message beat one in a long one.
    assert_eq!(
        found(app, backend, "refund", none.clone()).await,
        vec![
            "refund refund refund issued",
            "a long note about many other things and one refund somewhere in the middle of it all"
        ]
    );
    // Equal relevance: newest first.
    let (search, _) = search_as(app, &app.key, json!({ "q": HEARTBEAT })).await;
    let times: Vec<&str> = search["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["event"]["occurredAt"].as_str().expect("time"))
        .collect();
    assert_eq!(times, vec!["2026-11-02T10:09:00Z", "2026-11-02T10:08:00Z"]);

    let cases: Vec<(&str, Value, &[&str])> = vec![
        // Words: all must match, anywhere in the event's text.
        (
            "paid alice",
            none.clone(),
            &["invoice paid by alice", "alice paid the invoice by card"],
        ),
        ("paid nobody", none.clone(), &[]),
        // Phrases: together and in order.
        (
            "\"paid by alice\"",
            none.clone(),
            &["invoice paid by alice"],
        ),
        // OR, and OR binding tighter than the implicit AND.
        (
            "chargeback OR dispute",
            none.clone(),
            &["chargeback opened", "dispute resolved"],
        ),
        (
            "chargeback OR dispute resolved",
            none.clone(),
            &["dispute resolved"],
        ),
        // Exclusion.
        (
            "invoice -card",
            none.clone(),
            &["invoice paid by alice", ESCAPED],
        ),
        (
            "alice -\"by card\"",
            none.clone(),
            &["invoice paid by alice"],
        ),
        // Metadata values, action words, actor names.
        ("turquoise", none.clone(), &["profile updated"]),
        ("42", none.clone(), &["profile updated"]),
        ("heartbeat system", none.clone(), &[HEARTBEAT]),
        ("smith", none.clone(), &["invoice paid by alice"]),
        // Field terms.
        (
            "action:invoice.*",
            none.clone(),
            &["invoice paid by alice", "alice paid the invoice by card"],
        ),
        ("action:dispute.open", none.clone(), &["chargeback opened"]),
        (
            "actor:alice",
            none.clone(),
            &["invoice paid by alice", "alice paid the invoice by card"],
        ),
        (
            "actor:\"Alice Smith\"",
            none.clone(),
            &["invoice paid by alice"],
        ),
        ("target:ORD-98765", none.clone(), &["invoice paid by alice"]),
        (
            "alice service:shop",
            none.clone(),
            &["alice paid the invoice by card"],
        ),
        (
            "-service:billing",
            none.clone(),
            &["alice paid the invoice by card"],
        ),
        (
            "outcome:failure",
            none.clone(),
            &["chargeback opened", ESCAPED],
        ),
        (
            "severity:error",
            none.clone(),
            &["chargeback opened", "dispute resolved"],
        ),
        (
            "dispute OR severity:warning",
            none.clone(),
            &["dispute resolved", "chargeback opened", ESCAPED],
        ),
        (
            "-target:ORD-98765 alice",
            none.clone(),
            &["alice paid the invoice by card"],
        ),
        // The filter argument narrows the query.
        (
            "invoice",
            json!({ "services": ["shop"] }),
            &["alice paid the invoice by card"],
        ),
        (
            "invoice",
            json!({ "actions": ["invoice.*"], "minSeverity": "INFO" }),
            &["invoice paid by alice", "alice paid the invoice by card"],
        ),
        (
            "-profile",
            json!({ "occurredAfter": "2026-11-02T10:07:00Z", "occurredBefore": "2026-11-02T10:09:00Z" }),
            &[HEARTBEAT],
        ),
        ("refund", json!({ "outcomes": ["FAILURE"] }), &[]),
        (
            "invoice",
            json!({ "groupIds": ["org-a"] }),
            &["invoice paid by alice"],
        ),
    ];
    for (query, filter, want) in cases {
        assert_eq!(
            unordered(found(app, backend, query, filter.clone()).await),
            set(want),
            "query {query:?} filter {filter}"
        );
    }

    // Highlights: message fragments, matches in <em>, the rest escaped; none for other fields.
    let (search, _) = search_as(app, &app.key, json!({ "q": "\"paid by alice\"" })).await;
    let highlights = &search["hits"][0]["highlights"];
    assert_eq!(highlights.as_array().map(Vec::len), Some(1), "{search}");
    let fragment = highlights[0].as_str().expect("fragment");
    assert!(fragment.contains("<em>alice</em>"), "{fragment}");
    assert!(fragment.contains("<em>paid</em>"), "{fragment}");
    let (search, _) = search_as(app, &app.key, json!({ "q": "quoted" })).await;
    let fragment = search["hits"][0]["highlights"][0]
        .as_str()
        .expect("fragment");
    assert!(
        fragment.contains("&quot;<em>quoted</em>&quot;"),
        "{fragment}"
    );
    assert!(
        fragment.contains("&lt;") && fragment.contains("&amp;"),
        "{fragment}"
    );
    let bare = fragment.replace("<em>", "").replace("</em>", "");
    assert!(!bare.contains(['<', '>', '"']), "{fragment}");
    let (search, _) = search_as(app, &app.key, json!({ "q": "turquoise" })).await;
    assert_eq!(search["hits"][0]["highlights"], json!([]), "{search}");
    assert!(search["hits"][0]["score"].is_number(), "{search}");

    // Pages: every hit exactly once, in the single-page order, with cursors that continue.
    let (search, _) = search_as(app, &app.key, json!({ "q": SEED_MARK })).await;
    let everything = event_ids(&search);
    assert_eq!(everything.iter().collect::<HashSet<_>>().len(), 10);
    let mut paged = Vec::new();
    let mut after = Value::Null;
    loop {
        let (search, answered) = search_as(
            app,
            &app.key,
            json!({ "q": SEED_MARK, "first": 3, "after": after }),
        )
        .await;
        assert_eq!(answered, backend);
        assert_eq!(search["total"], 10);
        let hits = search["hits"].as_array().expect("hits");
        assert!(hits.len() <= 3);
        paged.extend(event_ids(&search));
        assert!(paged.len() <= 10, "pages repeat: {paged:?} {search}");
        if let Some(last) = hits.last() {
            assert_eq!(last["cursor"], search["pageInfo"]["endCursor"]);
        }
        if search["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = search["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(paged, everything);

    // Backwards from the last hit, pages of 3 (ties of equal score included) meet that order
    // exactly.
    let mut before = search["hits"][9]["cursor"].clone();
    let mut backwards: Vec<String> = Vec::new();
    loop {
        let (page, answered) = search_as(
            app,
            &app.key,
            json!({ "q": SEED_MARK, "first": 3, "last": 3, "before": before }),
        )
        .await;
        assert_eq!(answered, backend);
        let ids = event_ids(&page);
        assert!(!ids.is_empty() && ids.len() <= 3, "{page}");
        assert_eq!(page["pageInfo"]["hasNextPage"], true, "{page}");
        backwards.splice(0..0, ids);
        assert!(backwards.len() <= 9, "pages repeat: {backwards:?}");
        if page["pageInfo"]["hasPreviousPage"] == false {
            break;
        }
        before = page["pageInfo"]["startCursor"].clone();
    }
    backwards.push(everything[9].clone());
    assert_eq!(backwards, everything);

    // Another tenant's events never appear; it sees only its own.
    let (theirs, _) = search_as(app, &app.other_key, json!({ "q": "refund OR alice" })).await;
    assert_eq!(theirs["total"], 3, "{theirs}");
    for hit in theirs["hits"].as_array().expect("hits") {
        assert_eq!(hit["event"]["tenant"], OTHER_TENANT);
    }

    // Pages stay whole while the index grows between them: other events (here another
    // tenant's, sharing the search term and much longer) change every score, since relevance
    // is relative to the whole index.
    let (first, _) = search_as(app, &app.key, json!({ "q": SEED_MARK, "first": 3 })).await;
    let mut paged = event_ids(&first);
    let filler: Vec<Value> = (0..40)
        .map(|i| {
            json!({
                "action": "drift.filler",
                "service": "drift",
                "actor": { "id": "carol" },
                "occurredAt": format!("2026-11-03T10:{i:02}:00Z"),
                "message": "filler text that makes the average document longer than before",
                "metadata": { "mark": SEED_MARK, "note": "lengthy words padding metadata text ".repeat(i + 1) },
            })
        })
        .collect();
    app.record_many_as(&app.other_key, &filler).await;
    app.wait_stored(OTHER_TENANT, 3 + filler.len() as i64).await;
    let deadline = tokio::time::Instant::now() + SEARCH_WAIT;
    loop {
        let (theirs, _) = search_as(app, &app.other_key, json!({ "q": "filler" })).await;
        if theirs["total"] == filler.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never indexed: {theirs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut after = first["pageInfo"]["endCursor"].clone();
    while after != Value::Null {
        let (search, _) = search_as(
            app,
            &app.key,
            json!({ "q": SEED_MARK, "first": 3, "after": after }),
        )
        .await;
        paged.extend(event_ids(&search));
        assert!(paged.len() <= 10, "pages repeat: {paged:?} {search}");
        after = match search["pageInfo"]["hasNextPage"].as_bool() {
            Some(true) => search["pageInfo"]["endCursor"].clone(),
            _ => Value::Null,
        };
    }
    assert_eq!(paged, everything);
}

#[tokio::test]
async fn search_behaves_the_same_on_postgres() {
    let app = TestApp::spawn().await;
    behaviour_suite(&app, "postgres").await;
}

#[tokio::test]
async fn search_behaves_the_same_on_elasticsearch() {
    let server = SearchServer::start().await;
    let app = spawn_with_elasticsearch(&server).await;
    behaviour_suite(&app, "elasticsearch").await;
}

#[tokio::test]
async fn bad_queries_and_arguments_name_the_problem() {
    let app = TestApp::spawn().await;
    let long = "a".repeat(1025);
    for (query, first, after, field, needle) in [
        ("paid \"by alice", 20, None, "query", "position 6"),
        ("x sevrity:error", 20, None, "query", "position 3"),
        ("OR x", 20, None, "query", "position 1"),
        (long.as_str(), 20, None, "query", "1024 bytes"),
        ("   ", 20, None, "query", "nothing to search"),
        ("x", 101, None, "first", "100"),
        ("x", -1, None, "first", "100"),
        ("x", 20, Some("bm9wZQ"), "after", "cursor"),
    ] {
        let body = app
            .gql(
                SEARCH,
                json!({ "q": query, "first": first, "after": after }),
            )
            .await;
        let error = &body["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "BAD_USER_INPUT",
            "{query}: {body}"
        );
        assert_eq!(error["extensions"]["field"], field, "{query}: {body}");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn search_falls_back_to_postgres_and_elasticsearch_catches_up() {
    let mut server = SearchServer::start().await;
    let app = spawn_with_elasticsearch(&server).await;
    app.record(json!({
        "action": "invoice.pay", "service": "billing", "actor": { "id": "alice" },
        "message": "before the outage",
    }))
    .await;
    app.wait_stored(TENANT, 1).await;
    wait_searchable(&app, "elasticsearch", "outage", 1).await;
    let ready = app.ready().await;
    assert_eq!(ready["elasticsearch"]["status"], "up", "{ready}");

    server.stop().await;
    // Elasticsearch is gone: PostgreSQL answers, and says so.
    assert_eq!(
        found(&app, "postgres", "outage", Value::Null).await,
        vec!["before the outage"]
    );
    app.record(json!({
        "action": "invoice.pay", "service": "billing", "actor": { "id": "alice" },
        "message": "during the outage",
    }))
    .await;
    app.wait_stored(TENANT, 2).await;
    assert_eq!(
        unordered(found(&app, "postgres", "outage", Value::Null).await),
        set(&["before the outage", "during the outage"])
    );

    // Back (empty: osmem-server keeps nothing): what was recorded while it was down is indexed.
    server.restart().await;
    wait_searchable(&app, "elasticsearch", "during", 1).await;
    assert_eq!(
        found(&app, "elasticsearch", "during", Value::Null).await,
        vec!["during the outage"]
    );
}

/// Runs `traceledger reindex` (with `args`) against this test's database and `server`; returns
/// what it printed.
fn reindex(app: &TestApp, server: &SearchServer, args: &[&str]) -> String {
    app.cli(
        &[&["reindex"], args].concat(),
        &[("TRACELEDGER_ELASTICSEARCH_URL", server.url())],
    )
}

#[tokio::test]
async fn reindex_rebuilds_a_lost_index_from_postgres() {
    let mut server = SearchServer::start().await;
    let app = spawn_with_elasticsearch(&server).await;
    let event = |occurred_at: &str, message: &str| {
        json!({
            "action": "invoice.pay", "service": "billing", "actor": { "id": "alice" },
            "occurredAt": occurred_at, "message": message,
        })
    };
    app.record_all(&[
        event("2026-10-15T10:00:00Z", "rebuilt from october"),
        event("2026-11-15T10:00:00Z", "rebuilt from november"),
    ])
    .await;
    app.wait_stored(TENANT, 2).await;
    wait_searchable(&app, "elasticsearch", "rebuilt", 2).await;

    // The cluster loses its data (osmem-server keeps nothing across a restart); the events'
    // backlog rows are long gone, so only a reindex brings them back.
    server.stop().await;
    server.restart().await;
    wait_searchable(&app, "elasticsearch", "rebuilt", 0).await;

    // --since: events that occurred from that day on.
    let printed = reindex(&app, &server, &["--since", "2026-11-01"]);
    assert!(printed.contains("indexed "), "{printed}");
    wait_searchable(&app, "elasticsearch", "rebuilt", 1).await;
    assert_eq!(
        found(&app, "elasticsearch", "rebuilt", Value::Null).await,
        vec!["rebuilt from november"]
    );

    // Everything, again: documents already there are replaced, not doubled.
    reindex(&app, &server, &[]);
    wait_searchable(&app, "elasticsearch", "rebuilt", 2).await;
    assert_eq!(
        unordered(found(&app, "elasticsearch", "rebuilt", Value::Null).await),
        set(&["rebuilt from october", "rebuilt from november"])
    );
}

#[tokio::test]
async fn an_operators_cli_action_is_found_through_elasticsearch() {
    let server = SearchServer::start().await;
    let app = spawn_with_elasticsearch(&server).await;
    // The command runs without the broker or Elasticsearch: its audit event takes the road
    // every event takes (outbox, broker, worker, index), so search finds it like any other.
    app.cli(
        &["keys", "create", "--tenant", "newco", "--name", "cliprobe"],
        &[("USER", "ops-alice".to_owned())],
    );
    let operator = traceledger::access::auth::create_scoped_api_key(
        &app.store,
        traceledger::app::own_trail::SYSTEM_TENANT,
        "auditor",
        &[traceledger::access::auth::Scope::EventsRead],
    )
    .await
    .expect("key")
    .secret;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (search, backend) = search_as(&app, &operator, json!({ "q": "cliprobe" })).await;
        let hits = search["hits"].as_array().cloned().unwrap_or_default();
        if backend == "elasticsearch" && !hits.is_empty() {
            assert_eq!(hits.len(), 1, "{search}");
            let event = &hits[0]["event"];
            assert_eq!(event["tenant"], "_traceledger", "{search}");
            assert_eq!(
                event["message"], "API key \"cliprobe\" created for tenant newco",
                "{search}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the operator's action was never found through Elasticsearch: {backend} {search}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
