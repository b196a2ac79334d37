//! The GraphQL API: schema, resolvers, the event loader and the live subscription. Resolvers
//! translate between GraphQL and domain types and call the services; they hold no SQL.

mod admin;
mod arguments;
mod display;
mod documents;
mod error;
mod execution;
mod guard;
mod inputs;
mod keys;
mod ledger;
mod loader;
mod mutation;
mod operation;
mod persisted;
mod query;
mod scalars;
mod search;
mod stats;
mod subscription;
mod types;
mod variables;
mod viewer_tokens;

use std::sync::Arc;
use std::time::Duration;

use async_graphql::dataloader::DataLoader;
use async_graphql::{MergedObject, Schema};

pub use documents::DocumentCache;
pub use error::{ApiError, ErrorCodes};
pub use execution::{execute, Executed};
pub use loader::EventLoader;
pub use operation::{classify, Operation, SocketCharge};
pub use persisted::PersistedQueries;

use crate::access::auth::Principal;
pub use crate::app::services::Services;

pub type AppSchema = Schema<Query, Mutation, subscription::Subscription>;

// Every query field, one object per capability (plain comments: doc comments would become the
// schema description).
#[derive(MergedObject, Default)]
pub struct Query(
    query::EventQuery,
    search::SearchQuery,
    stats::StatsQuery,
    admin::AdminQuery,
    keys::KeysQuery,
    ledger::LedgerQuery,
    display::DisplayQuery,
);

// Every mutation field, one object per capability.
#[derive(MergedObject, Default)]
pub struct Mutation(
    mutation::RecordMutation,
    admin::AdminMutation,
    keys::KeysMutation,
    viewer_tokens::ViewerTokenMutation,
    display::DisplayMutation,
);

/// What one query may ask of the server.
#[derive(clap::Args, Clone, Copy, Debug)]
#[command(next_help_heading = "GraphQL")]
pub struct SchemaLimits {
    /// The deepest GraphQL selection accepted (GraphiQL's introspection query is 15 deep).
    #[arg(
        value_name = "MAX_DEPTH",
        id = "max-query-depth",
        long = "max-query-depth",
        env = "TRACELEDGER_MAX_QUERY_DEPTH",
        default_value_t = 20
    )]
    pub max_depth: usize,

    /// The largest GraphQL query complexity accepted (each field selected counts one).
    #[arg(
        value_name = "MAX_COMPLEXITY",
        id = "max-query-complexity",
        long = "max-query-complexity",
        env = "TRACELEDGER_MAX_QUERY_COMPLEXITY",
        default_value_t = 2000
    )]
    pub max_complexity: usize,

    /// Whether the schema answers introspection (GraphiQL needs it).
    #[arg(
        value_name = "INTROSPECTION",
        id = "introspection",
        long = "introspection",
        env = "TRACELEDGER_INTROSPECTION",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub introspection: bool,
}

pub fn build_schema(services: Arc<Services>, limits: &SchemaLimits) -> AppSchema {
    let builder = schema_builder()
        .data(services)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if limits.introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}

/// The schema's SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}

fn schema_builder() -> async_graphql::SchemaBuilder<Query, Mutation, subscription::Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    )
    .extension(ErrorCodes)
    .extension(arguments::StorableArguments)
    .extension(search::SearchBackendReport)
    .extension(operation::SocketOperations)
    .extension(execution::MarkExecution)
    .extension(variables::OmitLeftOutVariables)
}

/// Per-request data: who is calling, and a loader scoped to this request.
pub fn request_data(services: &Arc<Services>, principal: Principal) -> async_graphql::Data {
    let mut data = async_graphql::Data::default();
    // No batching delay: a loader lives for one request, whose resolvers ask for a page at
    // once (`load_many`) or for one event, so waiting the default 1 ms for more keys only
    // adds 1 ms to every read.
    data.insert(
        DataLoader::new(
            EventLoader::new(services.store.clone(), services.cache.clone()),
            tokio::spawn,
        )
        .delay(Duration::ZERO),
    );
    data.insert(
        DataLoader::new(
            ledger::LedgerIndexLoader::new(services.ledger.clone()),
            tokio::spawn,
        )
        .delay(Duration::ZERO),
    );
    data.insert(principal);
    data
}
