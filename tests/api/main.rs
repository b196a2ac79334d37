//! End-to-end tests against the real PostgreSQL, Redis and RabbitMQ, through the real server over
//! HTTP and websocket. Each test starts its own app with its own database, exchange, queues and
//! cache prefix (see the `traceledger-testenv` crate), so tests run in parallel.

use traceledger_testenv as helpers;

mod auth;
mod browser;
mod checkpoints;
mod cli;
mod connections;
mod dead_letters;
mod degraded;
mod display;
mod durable_feed;
mod export;
mod graphql_http;
mod group_commit;
mod hostile;
mod http_policy;
mod immutable;
mod jwt;
mod keys;
mod ledger;
mod partitions;
mod playground;
mod query;
mod rate_limits;
mod record;
mod roles;
mod schema;
mod scopes;
mod search;
mod self_audit;
mod socket_auth;
mod stats;
mod subscription;
mod verify;
mod viewer_tokens;
mod worker;
use traceledger_testenv::ws;
