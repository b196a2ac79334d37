//! traceledger: an audit-log service. Events come in over GraphQL, travel through RabbitMQ, are
//! stored in PostgreSQL by the worker, cached in Redis, and served back as queries and live
//! subscriptions.
//!
//! The layers, bottom up: `domain` (the rules, no I/O); the adapters `store`, `bus`, `cache`
//! and `search`, side by side; `access` (who may do what, how often); `tasks` (what runs in the
//! background); `app` (one function per use case, what every entrance calls); the entrances
//! `graphql` and `http` (the command line, `src/cli/`, is the binary's); and `startup`, which
//! builds it all from `config`.

pub mod access; // credentials, JWTs, scopes, rate limits and caps
pub mod app; // the use cases every entrance calls, and the service's own trail
pub mod backoff; // waiting between attempts while a dependency is out of reach
pub mod breaker; // skip a failing dependency for a while instead of timing out on it
pub mod bus; // RabbitMQ topology, confirmed publisher, wire format, dead letters
pub mod cache; // Redis: event cache, idempotency fast path, shared rate limits
pub mod config; // the settings of each process, composed from the components' own
pub mod domain; // events, validation, filters, cursors: no I/O
pub mod graphql; // schema, resolvers, loader, subscription: no SQL
pub mod http; // axum: /graphql, websocket, GraphiQL, dashboard, /export, /health, /ready, /metrics
pub mod search; // full-text search: Elasticsearch, PostgreSQL fallback
pub mod shutdown; // Ctrl-C / SIGTERM to a cancellation token
pub mod startup; // the composition root: settings in, running service out
pub mod store; // PostgreSQL: migrations, events, keys, outbox, retention
pub mod tasks; // background work: worker, outbox relay, search indexer, live feed
pub mod telemetry; // logging and metrics setup
