//! JWTs for admin frontends: HS256 and RS256 tokens are accepted with their tenant and roles;
//! expired ones, ones for another issuer or audience, and forged ones get 401 UNAUTHENTICATED.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{event, TestApp, TENANT};

const SECRET: &str = "a test secret that is long enough for HS256";
const ISSUER: &str = "https://login.example.test";
const AUDIENCE: &str = "traceledger-admin";
const PRIVATE_KEY: &[u8] = include_bytes!("../fixtures/jwt-rs256-private.pem");
const OTHER_PRIVATE_KEY: &[u8] = include_bytes!("../fixtures/jwt-rs256-other-private.pem");
const PUBLIC_KEY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/jwt-rs256-public.pem"
);

fn claims(roles: Value, expires_in: i64) -> Value {
    json!({
        "sub": "alice@example.test",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": chrono::Utc::now().timestamp() + expires_in,
        "org": TENANT,
        "groups": roles,
    })
}

fn hs256(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn rs256(claims: &Value, pem: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(pem).unwrap(),
    )
    .unwrap()
}

async fn spawn_hs256() -> TestApp {
    TestApp::spawn_with(|config| {
        config.credentials.jwt.hs256_secret = Some(SECRET.into());
        config.credentials.jwt.issuer = Some(ISSUER.into());
        config.credentials.jwt.audience = Some(AUDIENCE.into());
        config.credentials.jwt.tenant_claim = "org".into();
        config.credentials.jwt.roles_claim = "groups".into();
    })
    .await
}

const READ: &str = "{ auditEvents { edges { node { action tenant } } } }";

#[tokio::test]
async fn an_hs256_token_acts_for_its_tenant_with_its_roles() {
    let app = spawn_hs256().await;
    app.record(event("seen.by.jwt")).await;
    app.wait_stored(TENANT, 1).await;

    // "auditor" maps to events:read by default.
    let token = hs256(&claims(json!(["auditor"]), 300), SECRET);
    let (status, body) = app.post(Some(&token), READ, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["auditEvents"]["edges"][0]["node"],
        json!({ "action": "seen.by.jwt", "tenant": TENANT })
    );
    // It may not record (no writer role) nor manage keys (no admin role).
    let (_, body) = app
        .post(
            Some(&token),
            "mutation($i: RecordEventInput!) { recordEvent(input: $i) { id } }",
            json!({ "i": event("by.auditor") }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    let (_, body) = app
        .post(Some(&token), "{ apiKeys { id } }", json!({}))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );

    // The admin role may (roles can also be one space-separated string).
    let admin = hs256(&claims(json!("admin other"), 300), SECRET);
    let (_, body) = app
        .post(Some(&admin), "{ apiKeys { tenant } }", json!({}))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["apiKeys"][0]["tenant"], TENANT);
}

#[tokio::test]
async fn bad_hs256_tokens_are_refused_with_the_reason() {
    let app = spawn_hs256().await;
    let mut wrong_issuer = claims(json!(["auditor"]), 300);
    wrong_issuer["iss"] = json!("https://evil.example.test");
    let mut wrong_audience = claims(json!(["auditor"]), 300);
    wrong_audience["aud"] = json!("someone-else");
    let mut not_yet = claims(json!(["auditor"]), 7200);
    not_yet["nbf"] = json!(chrono::Utc::now().timestamp() + 3600);
    let mut no_tenant = claims(json!(["auditor"]), 300);
    no_tenant.as_object_mut().unwrap().remove("org");
    for (token, reason) in [
        (hs256(&claims(json!(["auditor"]), -3600), SECRET), "expired"),
        (hs256(&not_yet, SECRET), "not valid yet"),
        (hs256(&wrong_issuer, SECRET), "issuer"),
        (hs256(&wrong_audience, SECRET), "audience"),
        (
            hs256(&claims(json!(["auditor"]), 300), "not the secret"),
            "signature",
        ),
        (hs256(&no_tenant, SECRET), "tenant"),
        // Signed with a key pair while HS256 is configured: refused, not confused.
        (
            rs256(&claims(json!(["auditor"]), 300), PRIVATE_KEY),
            "algorithm",
        ),
        ("not.a.jwt".to_owned(), "malformed"),
    ] {
        let (status, body) = app.post(Some(&token), READ, json!({})).await;
        assert_eq!(status, 401, "{reason}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{reason}: {message}");
    }
}

#[tokio::test]
async fn an_rs256_token_is_verified_against_the_configured_public_key() {
    let app = TestApp::spawn_with(|config| {
        config.credentials.jwt.rs256_public_key_file = Some(PUBLIC_KEY_FILE.into());
        config.credentials.jwt.issuer = Some(ISSUER.into());
        config.credentials.jwt.audience = Some(AUDIENCE.into());
        config.credentials.jwt.tenant_claim = "org".into();
        config.credentials.jwt.roles_claim = "groups".into();
    })
    .await;
    let good = rs256(&claims(json!(["events:read"]), 300), PRIVATE_KEY);
    let (status, body) = app.post(Some(&good), READ, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["auditEvents"]["edges"], json!([]));

    for (token, reason) in [
        (
            rs256(&claims(json!(["events:read"]), 300), OTHER_PRIVATE_KEY),
            "signature",
        ),
        (
            rs256(&claims(json!(["events:read"]), -3600), PRIVATE_KEY),
            "expired",
        ),
        (
            hs256(&claims(json!(["events:read"]), 300), SECRET),
            "algorithm",
        ),
    ] {
        let (status, body) = app.post(Some(&token), READ, json!({})).await;
        assert_eq!(status, 401, "{reason}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{reason}: {message}");
    }
    // API keys still work beside JWTs.
    let (status, _) = app.post(Some(&app.key), READ, json!({})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn without_jwt_settings_a_token_is_just_an_unknown_credential() {
    let app = TestApp::spawn().await;
    let token = hs256(&claims(json!(["admin"]), 300), SECRET);
    let (status, body) = app.post(Some(&token), READ, json!({})).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_tokens_tenant_follows_the_tenant_rules_and_the_library_is_not_quoted() {
    let app = spawn_hs256().await;
    let with_tenant = |tenant: &str| {
        let mut c = claims(json!(["auditor"]), 300);
        c["org"] = json!(tenant);
        hs256(&c, SECRET)
    };
    let none = format!(
        "{}.{}.",
        base64_url(&json!({ "alg": "none", "typ": "JWT" })),
        base64_url(&claims(json!(["auditor"]), 300))
    );
    for (token, reason) in [
        (with_tenant(" acme"), "tenant"),
        (with_tenant("ACME"), "tenant"),
        (with_tenant("a\u{0}b"), "tenant"),
        (with_tenant("_traceledger"), "system tenant"),
        (none, "algorithm is not accepted"),
    ] {
        let (status, body) = app.post(Some(&token), READ, json!({})).await;
        assert_eq!(status, 401, "{reason}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{reason}: {message}");
        for internal in ["unknown variant", "expected one of", "HS384"] {
            assert!(!message.contains(internal), "library internals: {message}");
        }
    }
    // Configured, a token may read the service's own trail.
    let app = TestApp::spawn_with(|config| {
        config.credentials.jwt.hs256_secret = Some(SECRET.into());
        config.credentials.jwt.issuer = Some(ISSUER.into());
        config.credentials.jwt.audience = Some(AUDIENCE.into());
        config.credentials.jwt.tenant_claim = "org".into();
        config.credentials.jwt.roles_claim = "groups".into();
        config.credentials.jwt.allow_system_tenant = true;
    })
    .await;
    let (status, body) = app
        .post(Some(&with_tenant("_traceledger")), READ, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
}

fn base64_url(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}
