//! What an open websocket may keep doing: a revoked key or an expired token closes it (4403), a
//! socket that never authenticates is closed (4408), and the sockets waiting to authenticate on
//! one instance are capped.

use std::time::Duration;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::{event, TestApp, TENANT};
use crate::ws::{assert_closed, connect, next, receive, subscribe, Received};

const SECRET: &str = "a test secret that is long enough for HS256";

#[tokio::test]
async fn revoking_a_key_closes_its_open_websockets() {
    let app = TestApp::spawn_with(|config| config.credentials.key_cache_secs = 1).await;
    let mut subscriber = subscribe(&app, &app.key, json!({})).await;
    let id = app.key_id(TENANT, "test").await;
    let body = app
        .gql_as(
            &app.admin_key,
            "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }",
            json!({ "id": id.to_string() }),
        )
        .await;
    assert!(
        body["data"]["revokeApiKey"]["revokedAt"].is_string(),
        "{body}"
    );

    // Within the key cache's lifetime (1 s here) and a margin, the socket is closed.
    let (code, reason) = assert_closed(&mut subscriber, Duration::from_secs(4)).await;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.contains("revoked"), "{reason}");

    // Nothing the key sends over a socket is accepted any more: a new socket is refused.
    let mut again = connect(&app, json!({ "apiKey": app.key })).await;
    let (code, reason) = assert_closed(&mut again, Duration::from_secs(4)).await;
    assert!(reason.starts_with("UNAUTHENTICATED"), "{code} {reason}");
}

#[tokio::test]
async fn an_operation_on_a_socket_whose_key_was_revoked_is_refused() {
    let app = TestApp::spawn_with(|config| config.credentials.key_cache_secs = 1).await;
    let mut socket = connect(&app, json!({ "apiKey": app.key })).await;
    assert_eq!(
        next(&mut socket, Duration::from_secs(5))
            .await
            .expect("ack")["type"],
        "connection_ack"
    );
    let id = app.key_id(TENANT, "test").await;
    app.store.revoke_api_key(id, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    crate::ws::send(
        &mut socket,
        json!({
            "id": "late",
            "type": "subscribe",
            "payload": {
                "query": "mutation($i: RecordEventInput!) { recordEvent(input: $i) { id } }",
                "variables": { "i": event("after.revocation") },
            },
        }),
    )
    .await;
    // Either the operation is refused or the socket is already closed: never accepted.
    match receive(&mut socket, Duration::from_secs(4)).await {
        Received::Message(answer) => assert_eq!(
            answer["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{answer}"
        ),
        Received::Closed(code, _) => assert_eq!(code, 4403),
        other => panic!("neither refused nor closed: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.stored_count(TENANT).await, 0);
}

#[tokio::test]
async fn a_websocket_opened_with_a_jwt_closes_when_the_token_expires() {
    let app = TestApp::spawn_with(|config| {
        config.credentials.jwt.hs256_secret = Some(SECRET.into());
        config.credentials.jwt.issuer = Some("issuer".into());
        config.credentials.jwt.audience = Some("audience".into());
        config.credentials.jwt.leeway_secs = 0;
    })
    .await;
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({
            "sub": "alice", "iss": "issuer", "aud": "audience", "tenant": TENANT,
            "roles": ["events:read"],
            "exp": chrono::Utc::now().timestamp() + 2,
        }),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let mut socket = connect(&app, json!({ "Authorization": format!("Bearer {token}") })).await;
    assert_eq!(
        next(&mut socket, Duration::from_secs(5))
            .await
            .expect("ack")["type"],
        "connection_ack"
    );
    let (code, reason) = assert_closed(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.contains("expired"), "{reason}");
}

/// A websocket upgrade that sends nothing after it.
async fn open_silent(app: &TestApp) -> Result<crate::ws::Socket, u16> {
    match tokio_tungstenite::connect_async(crate::ws::upgrade_request(app)).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_websocket_that_never_authenticates_is_closed_with_4408() {
    let app = TestApp::spawn_with(|config| config.http.socket_init_timeout_ms = 500).await;
    let mut silent = open_silent(&app).await.expect("upgraded");
    let (code, reason) = assert_closed(&mut silent, Duration::from_secs(3)).await;
    assert_eq!(code, 4408, "{reason}");
}

#[tokio::test]
async fn sockets_waiting_to_authenticate_are_capped_per_instance() {
    let app = TestApp::spawn_with(|config| config.http.max_unauthenticated_sockets = 2).await;
    let _first = open_silent(&app).await.expect("upgraded");
    let mut second = open_silent(&app).await.expect("upgraded");
    assert_eq!(open_silent(&app).await.err(), Some(503));
    // Once one authenticates its slot is free again.
    crate::ws::send(
        &mut second,
        json!({ "type": "connection_init", "payload": { "apiKey": app.key } }),
    )
    .await;
    assert_eq!(
        next(&mut second, Duration::from_secs(5))
            .await
            .expect("ack")["type"],
        "connection_ack"
    );
    assert!(open_silent(&app).await.is_ok());
}
