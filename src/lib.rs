//! traceledger: an audit-log service. Events come in over GraphQL, travel through RabbitMQ, are
//! stored in PostgreSQL by the worker, cached in Redis, and served back as queries and live
//! subscriptions.

pub mod app; // wiring: configuration in, running service out
pub mod auth; // API keys and the principal a request acts for
pub mod bus; // RabbitMQ topology, confirmed publisher, wire format
pub mod cache; // Redis: event cache and idempotency fast path
pub mod config; // one typed configuration with local defaults
pub mod domain; // events, validation, filters, cursors: no I/O
pub mod graphql; // schema, resolvers, loader, subscription: no SQL
pub mod http; // axum router: /graphql, websocket, playground, /health
pub mod ingest; // accepting events: validate, deduplicate, publish
pub mod live; // this instance's live feed for subscriptions
pub mod search; // full-text search: Elasticsearch, PostgreSQL fallback, indexer
pub mod shutdown; // Ctrl-C / SIGTERM to a cancellation token
pub mod store; // PostgreSQL: migrations, events, keys
pub mod telemetry; // logging setup
pub mod worker; // consume, batch, store, acknowledge
