//! Operator fields: inspecting and re-driving dead letters. One dead letter can hold several
//! tenants' events, so these are for the operators' own tenant (`_traceledger`) only: an
//! `admin` key of any other tenant manages that tenant's keys, never the shared queue.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Object, SimpleObject, ID};

use super::error::ApiError;
use super::guard::principal;
use super::Services;
use crate::access::auth::{Principal, Scope};
use crate::app::own_trail::SYSTEM_TENANT;
use crate::app::Actor;
use crate::bus::{DeadLetter as DeadLetterRecord, Replay};

/// The most dead letters one listing returns.
const MAX_LISTED: i32 = 500;

/// A message the worker could not store, waiting in the dead-letter queue.
#[derive(SimpleObject)]
pub struct DeadLetter {
    /// What `replayDeadLetters(id:)` takes.
    id: ID,
    /// Why it was dead-lettered.
    reason: String,
    attempts: i32,
    /// One line per failed attempt.
    history: Vec<String>,
    /// How many events it holds; null if it does not decode.
    events: Option<i32>,
    size_bytes: i32,
}

impl From<DeadLetterRecord> for DeadLetter {
    fn from(d: DeadLetterRecord) -> Self {
        Self {
            id: ID(d.id),
            reason: d.reason,
            attempts: i32::try_from(d.attempts).unwrap_or(i32::MAX),
            history: d.history,
            events: d.events.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            size_bytes: i32::try_from(d.size_bytes).unwrap_or(i32::MAX),
        }
    }
}

#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// The oldest dead letters, left in the queue.
    async fn dead_letters(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
    ) -> async_graphql::Result<Vec<DeadLetter>> {
        let list = async {
            let (_, services) = operator(ctx)?;
            if !(1..=MAX_LISTED).contains(&first) {
                return Err(ApiError::bad_input(
                    "first",
                    format!("must be between 1 and {MAX_LISTED}"),
                ));
            }
            let letters = services
                .dead_letters
                .list(usize::try_from(first).unwrap_or_default())
                .await?;
            Ok(letters.into_iter().map(DeadLetter::from).collect())
        };
        list.await.map_err(|e: ApiError| e.extend())
    }
}

#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Moves dead letters back into the worker queue: the one with `id`, or all with `all: true`.
    /// Returns how many were replayed.
    async fn replay_dead_letters(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        #[graphql(default = false)] all: bool,
    ) -> async_graphql::Result<i32> {
        let replay = async {
            let (principal, services) = operator(ctx)?;
            let which = match (id, all) {
                (Some(id), false) => Replay::One(id.0),
                (None, true) => Replay::All,
                _ => return Err(ApiError::bad_input("id", "give either an id or all: true")),
            };
            let replayed = services
                .dead_letters
                .replay(Actor::Caller(principal), which, |_, _| {})
                .await?;
            Ok(i32::try_from(replayed).unwrap_or(i32::MAX))
        };
        replay.await.map_err(|e: ApiError| e.extend())
    }

    /// Drops every dead letter. Returns how many there were.
    async fn purge_dead_letters(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let purge = async {
            let (principal, services) = operator(ctx)?;
            let purged = services
                .dead_letters
                .purge(Actor::Caller(principal))
                .await?;
            Ok(i32::try_from(purged).unwrap_or(i32::MAX))
        };
        purge.await.map_err(|e: ApiError| e.extend())
    }
}

/// The caller and the services, if the caller is an operator: `admin` of the system tenant.
fn operator<'a>(ctx: &Context<'a>) -> Result<(&'a Principal, &'a Arc<Services>), ApiError> {
    let principal = principal(ctx, Scope::Admin)?;
    if principal.tenant != SYSTEM_TENANT {
        return Err(ApiError::Forbidden(format!(
            "dead letters hold every tenant's events: this needs an admin key of the operators' tenant {SYSTEM_TENANT}"
        )));
    }
    Ok((principal, ctx.data_unchecked::<Arc<Services>>()))
}
