//! Hostile input: each is answered promptly with a clear, coded error; the server neither panics
//! nor hangs, and nothing of it is stored.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{event, TestApp, TENANT};

/// A body limit small enough to exceed cheaply.
const BODY_LIMIT: usize = 64 * 1024;
/// No hostile request may take longer than this to be answered.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);
const RECORD: &str = "mutation($i: RecordEventInput!) { recordEvent(input: $i) { id } }";
const RECORD_MANY: &str = "mutation($i: [RecordEventInput!]!) { recordEvents(inputs: $i) { id } }";

async fn spawn() -> TestApp {
    TestApp::spawn_with(|config| config.http.max_body_bytes = BODY_LIMIT).await
}

/// POSTs raw bytes to /graphql as `TENANT` and returns the status and JSON body.
async fn post_raw(app: &TestApp, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let request = reqwest::Client::new()
        .post(app.url("/graphql"))
        .bearer_auth(&app.key)
        .header("content-type", content_type)
        .body(body)
        .send();
    let response = tokio::time::timeout(ANSWER_DEADLINE, request)
        .await
        .expect("answered in time")
        .expect("answered");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body)
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no coded error: {body}"))
}

/// Nothing was stored, and the server still answers.
async fn assert_unharmed(app: &TestApp) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.stored_count(TENANT).await,
        0,
        "a partial event was stored"
    );
    let body = app
        .gql("{ auditEvents { edges { cursor } } }", json!({}))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn malformed_bodies_get_400_and_wrong_content_types_415() {
    let app = spawn().await;
    let valid = json!({ "query": RECORD, "variables": { "i": event("a.b") } }).to_string();
    for (content_type, body, status) in [
        (
            "application/json",
            b"{\"query\": \"mutation {".to_vec(),
            400,
        ),
        ("application/json", b"not json at all".to_vec(), 400),
        ("application/json", b"".to_vec(), 400),
        ("application/json", b"[1, 2, 3]".to_vec(), 400),
        ("application/json", vec![b'{', 0xff, 0xfe, b'}'], 400),
        (
            "application/json",
            b"{\"query\": \"{ a\xff }\"}".to_vec(),
            400,
        ),
        // Nested past any parser's recursion limit.
        ("application/json", "[".repeat(50_000).into_bytes(), 400),
        ("text/plain", valid.clone().into_bytes(), 415),
        (
            "application/x-www-form-urlencoded",
            valid.clone().into_bytes(),
            415,
        ),
        ("multipart/form-data; boundary=x", valid.into_bytes(), 415),
    ] {
        let (got, answer) = post_raw(&app, content_type, body.clone()).await;
        assert_eq!(
            got,
            status,
            "{content_type} {:?}: {answer}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        assert_eq!(code(&answer), "BAD_USER_INPUT", "{answer}");
    }
    // Variables nested far deeper than any event: refused while parsing, not on the stack.
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!({ "a": deep });
    }
    let mut input = event("deep.metadata");
    input["metadata"] = deep;
    let body = json!({ "query": RECORD, "variables": { "i": input } }).to_string();
    let (status, answer) = post_raw(&app, "application/json", body.into_bytes()).await;
    assert!(status == 400 || status == 200, "{status}: {answer}");
    assert_eq!(code(&answer), "BAD_USER_INPUT", "{answer}");
    assert_unharmed(&app).await;
}

#[tokio::test]
async fn oversized_bodies_and_strings_are_refused() {
    let app = spawn().await;
    let mut input = event("big.body");
    input["message"] = json!("x".repeat(BODY_LIMIT));
    let body = json!({ "query": RECORD, "variables": { "i": input } }).to_string();
    let (status, answer) = post_raw(&app, "application/json", body.into_bytes()).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(code(&answer), "BAD_USER_INPUT");

    for (field, value, path) in [
        (
            "action",
            json!(format!("a.{}", "b".repeat(5000))),
            "input.action",
        ),
        ("message", json!("m".repeat(9 * 1024)), "input.message"),
        ("service", json!("s".repeat(300)), "input.service"),
        (
            "idempotencyKey",
            json!("k".repeat(300)),
            "input.idempotencyKey",
        ),
        ("action", json!("a.\u{0}"), "input.action"),
    ] {
        let mut input = event("big.string");
        input[field] = value;
        let body = app.gql(RECORD, json!({ "i": input })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{field}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], path, "{body}");
    }
    assert_unharmed(&app).await;
}

#[tokio::test]
async fn deep_and_costly_queries_are_refused_before_they_run() {
    let app = spawn().await;
    let deep = format!(
        "{{ __type(name: \"AuditEvent\") {{ {} name {} }} }}",
        "ofType { ".repeat(40),
        "}".repeat(40)
    );
    let wide = format!(
        "{{ {} }}",
        (0..1000)
            .map(|i| format!("a{i}: auditEvents {{ edges {{ cursor }} }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let braces = format!("{}{}", "{".repeat(10_000), "}".repeat(10_000));
    for (name, query) in [("deep", deep), ("wide", wide), ("braces", braces)] {
        let (status, body) = app.post(Some(&app.key), &query, json!({})).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(code(&body), "BAD_USER_INPUT", "{name}: {body}");
        assert!(body["data"].is_null(), "{name} ran: {body}");
    }
    assert_unharmed(&app).await;
}

#[tokio::test]
async fn huge_batches_and_bogus_cursors_are_refused() {
    // The default body limit: a batch of 1001 events is larger than `BODY_LIMIT`.
    let app = TestApp::spawn().await;
    let inputs: Vec<Value> = (0..1001).map(|i| event(&format!("batch.e{i}"))).collect();
    let body = app.gql(RECORD_MANY, json!({ "i": inputs })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "inputs");

    let query = "query($a: String) { auditEvents(after: $a) { edges { cursor } } }";
    for cursor in [
        "!!!",
        "",
        "AAAA",
        "eyJ0IjoiMjAyNiJ9",
        &"Z".repeat(100_000),
        "\u{0}\u{1}",
    ] {
        let body = app.gql(query, json!({ "a": cursor })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{cursor:.20}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "after", "{body}");
    }
    for first in [-1, 101, i32::MAX] {
        let body = app
            .gql(
                "query($f: Int!) { auditEvents(first: $f) { edges { cursor } } }",
                json!({ "f": first }),
            )
            .await;
        assert_eq!(body["errors"][0]["extensions"]["field"], "first", "{body}");
    }
    assert_unharmed(&app).await;
}

#[tokio::test]
async fn bad_credentials_and_tokens_get_401() {
    let app = TestApp::spawn_with(|config| {
        config.credentials.jwt.hs256_secret = Some("secret".into());
        config.credentials.jwt.issuer = Some("iss".into());
        config.credentials.jwt.audience = Some("aud".into());
    })
    .await;
    let unsigned = format!(
        "{}.{}.",
        base64_url(r#"{"alg":"none","typ":"JWT"}"#),
        base64_url(
            r#"{"sub":"x","tenant":"acme","roles":["admin"],"iss":"iss","aud":"aud","exp":9999999999}"#
        )
    );
    for credential in [
        "a.b.c".to_owned(),
        "...".to_owned(),
        unsigned,
        "x".repeat(10_000),
        "tlk_".to_owned(),
        "Bearer".to_owned(),
    ] {
        let (status, body) = app
            .post(
                Some(&credential),
                "{ auditEvents { edges { cursor } } }",
                json!({}),
            )
            .await;
        assert_eq!(status, 401, "{credential:.30}: {body}");
        assert_eq!(code(&body), "UNAUTHENTICATED");
    }
    assert_unharmed(&app).await;
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// The introspection a walk over every argument needs: each field of the root types with its
/// arguments, and every input object and enum.
const INTROSPECTION: &str = "{ __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { name kind
        fields { name args { name type { ...T } } type { ...T } }
        inputFields { name type { ...T } }
        enumValues { name } } } }
    fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

/// Builds argument literals from the introspected types: an ordinary value for every required
/// part, and a string holding a NUL at one target path (argument and field names, list items as
/// `0`).
struct Literals<'a> {
    types: &'a std::collections::HashMap<String, Value>,
}

impl Literals<'_> {
    /// Every path below `type` that ends in a string, with `prefix` before it.
    fn string_paths(&self, ty: &Value, prefix: &str, depth: usize, out: &mut Vec<String>) {
        match ty["kind"].as_str() {
            Some("NON_NULL") => self.string_paths(&ty["ofType"], prefix, depth, out),
            Some("LIST") => self.string_paths(&ty["ofType"], &format!("{prefix}.0"), depth, out),
            Some("SCALAR") if matches!(ty["name"].as_str(), Some("String" | "ID")) => {
                out.push(prefix.to_owned())
            }
            Some("INPUT_OBJECT") if depth < 4 => {
                let input = &self.types[ty["name"].as_str().unwrap()];
                for field in input["inputFields"].as_array().unwrap() {
                    let path = format!("{prefix}.{}", field["name"].as_str().unwrap());
                    self.string_paths(&field["type"], &path, depth + 1, out);
                }
            }
            _ => {}
        }
    }

    /// The literal for `ty` at `path`, with a NUL string where `path == target`; `None` for an
    /// optional value that `target` does not lie in.
    fn literal(&self, ty: &Value, path: &str, target: &str, required: bool) -> Option<String> {
        let on_target = target == path || target.starts_with(&format!("{path}."));
        if !required && !on_target {
            return None;
        }
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" => self.literal(&ty["ofType"], path, target, true),
            "LIST" => self
                .literal(&ty["ofType"], &format!("{path}.0"), target, true)
                .map(|item| format!("[{item}]")),
            "SCALAR" => Some(match ty["name"].as_str().unwrap() {
                "String" | "ID" if path == target => "\"bad\\u0000value\"".to_owned(),
                "String" | "ID" => "\"x\"".to_owned(),
                "Int" => "1".to_owned(),
                "Float" => "1.0".to_owned(),
                "Boolean" => "false".to_owned(),
                "DateTime" => "\"2026-01-01T00:00:00Z\"".to_owned(),
                "JSON" => "{}".to_owned(),
                other => panic!("no sample value for scalar {other}"),
            }),
            "ENUM" => {
                let e = &self.types[ty["name"].as_str().unwrap()];
                Some(e["enumValues"][0]["name"].as_str().unwrap().to_owned())
            }
            "INPUT_OBJECT" => {
                let input = &self.types[ty["name"].as_str().unwrap()];
                let fields: Vec<String> = input["inputFields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|field| {
                        let name = field["name"].as_str().unwrap();
                        let required = field["type"]["kind"] == "NON_NULL";
                        self.literal(&field["type"], &format!("{path}.{name}"), target, required)
                            .map(|v| format!("{name}: {v}"))
                    })
                    .collect();
                Some(format!("{{ {} }}", fields.join(", ")))
            }
            other => panic!("no literal for {other}"),
        }
    }
}

#[tokio::test]
async fn a_nul_in_any_string_argument_is_bad_input_naming_it() {
    let app = TestApp::spawn().await;
    let key = traceledger::access::auth::create_scoped_api_key(
        &app.store,
        TENANT,
        "everything",
        &traceledger::access::auth::Scope::ALL,
    )
    .await
    .unwrap()
    .secret;
    let schema = app.gql_as(&key, INTROSPECTION, json!({})).await;
    let schema = &schema["data"]["__schema"];
    let types: std::collections::HashMap<String, Value> = schema["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_owned(), t.clone()))
        .collect();
    let literals = Literals { types: &types };
    let mut checked = 0;
    for (root, keyword) in [
        ("queryType", "query"),
        ("mutationType", "mutation"),
        ("subscriptionType", "subscription"),
    ] {
        let root_type = &types[schema[root]["name"].as_str().unwrap()];
        for field in root_type["fields"].as_array().unwrap() {
            let name = field["name"].as_str().unwrap();
            let args = field["args"].as_array().unwrap();
            let mut targets = Vec::new();
            for arg in args {
                let arg_name = arg["name"].as_str().unwrap();
                literals.string_paths(&arg["type"], arg_name, 0, &mut targets);
            }
            let mut leaf = &field["type"];
            while leaf["ofType"].is_object() {
                leaf = &leaf["ofType"];
            }
            let selection = match leaf["kind"].as_str().unwrap() {
                "SCALAR" | "ENUM" => "",
                _ => " { __typename }",
            };
            for target in targets {
                let arguments: Vec<String> = args
                    .iter()
                    .filter_map(|arg| {
                        let arg_name = arg["name"].as_str().unwrap();
                        let required = arg["type"]["kind"] == "NON_NULL";
                        literals
                            .literal(&arg["type"], arg_name, &target, required)
                            .map(|v| format!("{arg_name}: {v}"))
                    })
                    .collect();
                let query = format!(
                    "{keyword} {{ {name}({}){selection} }}",
                    arguments.join(", ")
                );
                let (_, body) = app.post(Some(&key), &query, json!({})).await;
                let error = &body["errors"][0];
                assert_eq!(
                    error["extensions"]["code"], "BAD_USER_INPUT",
                    "{query}: {body}"
                );
                assert_eq!(
                    error["extensions"]["field"],
                    target.as_str(),
                    "{query}: {body}"
                );
                checked += 1;
            }
        }
    }
    // The filters alone hold a dozen string fields: the walk found the schema's arguments.
    assert!(checked > 30, "only {checked} string arguments found");

    // The same through a variable.
    let (_, body) = app
        .post(
            Some(&key),
            "query($f: AuditEventFilter) { auditEvents(filter: $f) { edges { cursor } } }",
            json!({ "f": { "actorIds": ["fine", "not\u{0}fine"] } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "filter.actorIds.1",
        "{body}"
    );
    assert_unharmed(&app).await;
}
