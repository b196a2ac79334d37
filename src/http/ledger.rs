//! The ledger for tools that speak the transparency-log formats: `GET /ledger/checkpoint` (the
//! caller's tenant's newest signed checkpoint, a C2SP signed note), `GET /ledger/tile/…` (C2SP
//! tlog-tiles hash tiles of the caller's tenant's tree), both authenticated like `/graphql`;
//! and `GET /ledger/key`, the public verifier key that signs from now on (all keys, oldest
//! first, with `?all=true`), which anyone may read.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::audit::{noted, AuditNote};
use super::credentials::Caller;
use super::AppState;
use crate::access::auth::Scope;
use crate::access::ratelimit::RequestKind;
use crate::app::ApiError;
use crate::domain::ledger::Tile;

const TEXT: &str = "text/plain; charset=utf-8";

#[derive(serde::Deserialize)]
pub(super) struct KeyQuery {
    #[serde(default)]
    all: bool,
}

pub(super) async fn key(State(state): State<AppState>, query: Query<KeyQuery>) -> Response {
    let keys = match state.services.ledger.keys().await {
        Ok(keys) => keys,
        Err(error) => return error.into_response(),
    };
    let lines: Vec<&str> = if query.all {
        keys.iter().map(|k| k.verifier_key.as_str()).collect()
    } else {
        keys.iter()
            .filter(|k| k.current)
            .map(|k| k.verifier_key.as_str())
            .collect()
    };
    if lines.is_empty() {
        return ApiError::NotFound("no ledger key yet: no worker has started".into())
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, TEXT)],
        format!("{}\n", lines.join("\n")),
    )
        .into_response()
}

pub(super) async fn checkpoint(State(state): State<AppState>, caller: Caller) -> Response {
    let note = AuditNote::new("GET /ledger/checkpoint", Some(&caller.0));
    let answer = async {
        caller.require_whole_tenant(Scope::EventsRead)?;
        caller.charge(&state, RequestKind::Read, 1).await?;
        let latest = state
            .services
            .ledger
            .latest_checkpoint(&caller.0.tenant)
            .await?
            .ok_or_else(|| ApiError::NotFound("the ledger has no checkpoint yet".into()))?;
        Ok::<_, ApiError>(
            (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static(TEXT)),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                latest.note,
            )
                .into_response(),
        )
    };
    noted(answer.await.unwrap_or_else(|e| e.into_response()), note)
}

pub(super) async fn tile(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
) -> Response {
    let note = AuditNote::new("GET /ledger/tile", Some(&caller.0));
    let answer = async {
        caller.require_whole_tenant(Scope::EventsRead)?;
        caller.charge(&state, RequestKind::Read, 1).await?;
        let tile = Tile::parse(&format!("tile/{path}"))
            .map_err(|e| ApiError::bad_input("path", e.to_string()))?;
        let bytes = state
            .services
            .ledger
            .tile(&caller.0.tenant, tile)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("{} does not exist yet", tile.path())))?;
        // A tile at a given width never changes once it exists (partial tiles only grow).
        let cache = "private, max-age=31536000, immutable";
        Ok::<_, ApiError>(
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/octet-stream"),
                    (header::CACHE_CONTROL, cache),
                ],
                bytes,
            )
                .into_response(),
        )
    };
    noted(answer.await.unwrap_or_else(|e| e.into_response()), note)
}
