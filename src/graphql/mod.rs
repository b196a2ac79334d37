//! The GraphQL API: schema, resolvers, the event loader and the live subscription. Resolvers
//! translate between GraphQL and domain types and call the services; they hold no SQL.

mod admin;
mod error;
mod inputs;
mod loader;
mod mutation;
mod query;
mod scalars;
mod search;
mod stats;
mod subscription;
mod types;

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{MergedObject, Schema};

pub use error::{ApiError, ErrorCodes};
pub use loader::EventLoader;

use crate::auth::Principal;
pub use crate::services::Services;

pub type AppSchema = Schema<Query, Mutation, subscription::Subscription>;

// Every query field, one object per capability (plain comments: doc comments would become the
// schema description).
#[derive(MergedObject, Default)]
pub struct Query(
    query::EventQuery,
    search::SearchQuery,
    stats::StatsQuery,
    admin::AdminQuery,
);

// Every mutation field, one object per capability.
#[derive(MergedObject, Default)]
pub struct Mutation(mutation::RecordMutation, admin::AdminMutation);

pub fn build_schema(services: Arc<Services>) -> AppSchema {
    schema_builder().data(services).finish()
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
    .extension(search::SearchBackendReport)
}

/// Per-request data: who is calling, and a loader scoped to this request.
pub fn request_data(services: &Arc<Services>, principal: Principal) -> async_graphql::Data {
    let mut data = async_graphql::Data::default();
    data.insert(DataLoader::new(
        EventLoader::new(services.store.clone(), services.cache.clone()),
        tokio::spawn,
    ));
    data.insert(principal);
    data
}
