//! traceledger: an audit-log service. Events come in over GraphQL, travel through RabbitMQ, are
//! stored in PostgreSQL by the worker, cached in Redis, and served back as queries and live
//! subscriptions.

pub mod app; // wiring: configuration in, running service out
pub mod auth; // API keys and the principal a request acts for
pub mod breaker; // skip a failing dependency for a while instead of timing out on it
pub mod bus; // RabbitMQ topology, confirmed publisher, wire format
pub mod cache; // Redis: event cache and idempotency fast path
pub mod config; // one typed configuration with local defaults
pub mod domain; // events, validation, filters, cursors: no I/O
pub mod export; // exports for auditors: NDJSON or CSV, streamed
pub mod graphql; // schema, resolvers, loader, subscription: no SQL
pub mod health; // readiness of each dependency, on-demand gauges
pub mod http; // axum: /graphql, websocket, GraphiQL, dashboard, /export, /health, /ready, /metrics
pub mod ingest; // accepting events: validate, deduplicate, publish
pub mod jwt; // JWTs for admin frontends: verification, tenant and roles from claims
pub mod live; // this instance's live feed for subscriptions
pub mod outbox; // relaying batches accepted while the broker was down
pub mod ratelimit; // per-caller request rates and caps on open sockets and subscriptions
pub mod search; // full-text search: Elasticsearch, PostgreSQL fallback, indexer
pub mod self_audit; // every API request and admin action, recorded in tenant `_traceledger`
pub mod services; // the shared parts every front door reaches
pub mod shutdown; // Ctrl-C / SIGTERM to a cancellation token
pub mod store; // PostgreSQL: migrations, events, keys
pub mod telemetry; // logging setup
pub mod worker; // consume, batch, store, acknowledge
