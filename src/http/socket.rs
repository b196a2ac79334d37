//! One GraphQL websocket (graphql-transport-ws, or the older graphql-ws): the protocol itself is
//! async-graphql's; this loop adds what an audit service needs around it. A socket that has not
//! authenticated within the init timeout is closed (4408), and until then it holds one of the
//! instance's few unauthenticated slots; once admitted, its credential is verified again as it
//! ages, and a revoked key or an expired token closes it (4403). The connection is recorded in
//! the service's own trail when it ends.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::http::{WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::{header, HeaderMap, StatusCode};
use futures::{future, FutureExt, SinkExt, StreamExt};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::{status_of, AppState};
use crate::access::auth::{refused_caller, AuthError, HeldCredential, Principal};
use crate::access::ratelimit::RequestKind;
use crate::app::own_trail::{RequestNote, Transport};
use crate::app::ApiError;
use crate::graphql::{request_data, SocketCharge};

/// What a websocket's audit event names as its operation.
const WEBSOCKET_OPERATION: &str = "websocket /graphql";
/// graphql-transport-ws: the client did not send `connection_init` in time.
const CLOSE_INIT_TIMEOUT: u16 = 4408;
/// graphql-transport-ws: forbidden; here, the credential stopped working.
const CLOSE_FORBIDDEN: u16 = 4403;
/// When a caller holding all its sockets may try again.
const SOCKET_BUSY_RETRY_SECONDS: u64 = 5;
/// Messages already waiting that go out in one write at most: a subscriber with many events
/// ready (a replay, a busy tenant) costs one send per batch of them, not one per event.
const MESSAGES_PER_WRITE: usize = 64;

/// The sub-protocol the client asked for in `Sec-WebSocket-Protocol`, if we speak it.
pub(super) fn requested_protocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .and_then(|protocols| {
            protocols
                .split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        })
}

/// Who may open a socket and for how long it may stay unauthenticated.
pub(super) struct Admission {
    pub state: AppState,
    pub protocol: WebSocketProtocols,
    /// Credentials from the upgrade request, used when `connection_init` carries none.
    pub header_key: Option<String>,
    pub client_ip: Option<IpAddr>,
    /// Held until the socket authenticates (or ends).
    pub unauthenticated: OwnedSemaphorePermit,
    pub init_timeout: Duration,
}

/// How a websocket's connection_init went, for its audit event.
#[derive(Default)]
struct SocketOutcome {
    status: Option<u16>,
    principal: Option<Principal>,
    /// Who the refused credentials name, when they were refused.
    refused_caller: Option<(String, &'static str)>,
}

/// Serves `socket` until either side ends it, then records the connection.
pub(super) async fn serve(socket: WebSocket, admission: Admission) {
    let Admission {
        state,
        protocol,
        header_key,
        client_ip,
        unauthenticated,
        init_timeout,
    } = admission;
    let started = Instant::now();
    let outcome = Arc::new(Mutex::new(SocketOutcome::default()));
    let (admitted_tx, mut admitted_rx) = oneshot::channel::<Arc<HeldCredential>>();

    let (mut sink, stream) = socket.split();
    let input = stream
        .take_while(|message| future::ready(message.is_ok()))
        .filter_map(|message| {
            future::ready(match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => Some(message.into_data()),
                _ => None,
            })
        });
    let init_state = state.clone();
    let init_outcome = Arc::clone(&outcome);
    let messages = async_graphql::http::WebSocket::new(state.schema.clone(), input, protocol)
        .on_connection_init(move |payload| async move {
            let key = connection_init_key(&payload).or(header_key);
            let admitted = admit(&init_state, key.unwrap_or_default(), client_ip).await;
            let mut outcome = init_outcome.lock().unwrap_or_else(|p| p.into_inner());
            match admitted {
                Ok((principal, data, held)) => {
                    outcome.status = Some(StatusCode::SWITCHING_PROTOCOLS.as_u16());
                    outcome.principal = Some(principal);
                    let _ = admitted_tx.send(held);
                    Ok(data)
                }
                Err(Refusal { error, caller }) => {
                    outcome.status = Some(status_of(&error).as_u16());
                    outcome.refused_caller = caller;
                    // The protocol's close code is fixed (1002 here); the reason starts with
                    // the same code a GraphQL error would carry.
                    Err(async_graphql::Error::new(format!(
                        "{}: {error}",
                        error.code()
                    )))
                }
            }
        });
    futures::pin_mut!(messages);

    let init_deadline = tokio::time::sleep(init_timeout);
    futures::pin_mut!(init_deadline);
    let mut unauthenticated = Some(unauthenticated);
    let mut held: Option<Arc<HeldCredential>> = None;
    let closing = loop {
        let next_check = held.as_ref().map(|h| h.next_check());
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => {
                    let mut ended = false;
                    let mut written = sink.feed(to_axum(message)).await;
                    for _ in 1..MESSAGES_PER_WRITE {
                        if written.is_err() {
                            break;
                        }
                        // Only what is ready now; the loop waits for the rest as before.
                        match messages.next().now_or_never() {
                            Some(Some(message)) => written = sink.feed(to_axum(message)).await,
                            Some(None) => {
                                ended = true;
                                break;
                            }
                            None => break,
                        }
                    }
                    if written.is_err() || sink.flush().await.is_err() || ended {
                        break None;
                    }
                }
                None => break None,
            },
            admitted = &mut admitted_rx, if unauthenticated.is_some() => {
                // Authenticated (or refused, which the protocol closes on its own): the slot
                // goes back either way.
                unauthenticated = None;
                held = admitted.ok();
            }
            () = &mut init_deadline, if unauthenticated.is_some() => {
                break Some((CLOSE_INIT_TIMEOUT, "Connection initialisation timeout".to_owned()));
            }
            () = sleep_until(next_check), if next_check.is_some() => {
                if let Some(credential) = &held {
                    if let Err(reason) = credential.check().await {
                        break Some((CLOSE_FORBIDDEN, format!("UNAUTHENTICATED: {reason}")));
                    }
                }
            }
        }
    };
    if let Some((code, reason)) = closing {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    drop(unauthenticated);

    let outcome = std::mem::take(&mut *outcome.lock().unwrap_or_else(|p| p.into_inner()));
    state.services.trail.request(RequestNote {
        transport: Transport::Websocket,
        operation: WEBSOCKET_OPERATION.to_owned(),
        // A socket closed before connection_init never authenticated.
        status: outcome.status.unwrap_or(StatusCode::UNAUTHORIZED.as_u16()),
        duration: started.elapsed(),
        caller: outcome.principal.map(|p| (p.tenant, p.credential)),
        refused_caller: outcome.refused_caller,
        error_codes: Vec::new(),
        client_ip,
    });
}

/// Why a socket was not admitted, and who its credentials named if they were refused.
struct Refusal {
    error: ApiError,
    caller: Option<(String, &'static str)>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            caller: None,
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => future::pending().await,
    }
}

fn to_axum(message: WsMessage) -> Message {
    match message {
        WsMessage::Text(text) => Message::Text(text.into()),
        WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })),
    }
}

/// Verifies a websocket's credentials, charges the connection to the caller's read budget and
/// takes one of its socket slots (held in the connection's data until it closes).
async fn admit(
    state: &AppState,
    key: String,
    client_ip: Option<IpAddr>,
) -> Result<(Principal, async_graphql::Data, Arc<HeldCredential>), Refusal> {
    let principal = state.auth.verify(&key).await.map_err(|e| Refusal {
        caller: (!key.is_empty() && !matches!(e, AuthError::Store(_)))
            .then(|| refused_caller(&key, &e)),
        error: ApiError::from(e),
    })?;
    if let Err(limited) = state.limiter.check(&principal, RequestKind::Read, 1).await {
        return Err(ApiError::from(limited).into());
    }
    let slot = state.sockets.acquire(&principal).ok_or_else(|| {
        Refusal::from(ApiError::RateLimited {
            message: format!(
                "at most {} websocket connections per key at once",
                state.sockets.max()
            ),
            retry_after_seconds: SOCKET_BUSY_RETRY_SECONDS,
        })
    })?;
    let held = Arc::new(HeldCredential::new(
        key,
        Arc::clone(&state.auth),
        &principal,
    ));
    let mut data = request_data(&state.services, principal.clone());
    data.insert(slot);
    data.insert(SocketCharge {
        principal: principal.clone(),
        limiter: Arc::clone(&state.limiter),
        credential: Arc::clone(&held),
        client_ip,
    });
    Ok((principal, data, held))
}

/// `{"apiKey": "<key>"}` or `{"Authorization": "Bearer <key>"}` in connection_init.
fn connection_init_key(payload: &serde_json::Value) -> Option<String> {
    if let Some(key) = payload.get("apiKey").and_then(|v| v.as_str()) {
        return Some(key.to_owned());
    }
    payload
        .get("Authorization")
        .or_else(|| payload.get("authorization"))
        .and_then(|v| v.as_str())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| k.trim().to_owned())
}
