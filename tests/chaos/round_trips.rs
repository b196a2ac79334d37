//! What a read costs: a page of events is one Redis round trip and at most one PostgreSQL query
//! for the bodies, whatever its length (the event loader batches them). Counted on private
//! instances, where nothing else sends commands: Redis's own command statistics and PostgreSQL's
//! pg_stat_statements.

use serde_json::json;

use crate::helpers::{event, TestApp, TENANT};
use crate::services::{PrivatePostgres, PrivateRedis};
use crate::SERIAL;

/// The statement the loader sends for the events Redis does not hold.
const BODIES: &str = "%FROM audit_events WHERE tenant = $1 AND id = ANY($2)%";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_events_costs_one_cache_round_trip_and_at_most_one_query() {
    let _serial = SERIAL.lock().await;
    let postgres = PrivatePostgres::start();
    let redis = PrivateRedis::start();
    let (database_url, redis_url) = (postgres.url("traceledger_reads"), redis.url());
    let app = TestApp::spawn_with(|config| {
        config.database.url = database_url;
        config.redis.url = redis_url.clone();
    })
    .await;
    let inputs: Vec<_> = (0..60).map(|i| event(&format!("read.cost_{i}"))).collect();
    app.record_all(&inputs).await;
    app.wait_stored(TENANT, 60).await;

    sqlx::query("CREATE EXTENSION pg_stat_statements")
        .execute(app.store.pool())
        .await
        .unwrap();
    let mut cache = redis::Client::open(redis_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let page = "{ auditEvents(first: 50) { edges { node { id action } } } }";

    for (round, queries) in [("cold", 1), ("warm", 0)] {
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(app.store.pool())
            .await
            .unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut cache)
            .await
            .unwrap();
        let body = app.gql(page, json!({})).await;
        assert_eq!(
            body["data"]["auditEvents"]["edges"]
                .as_array()
                .map(Vec::len),
            Some(50),
            "{body}"
        );
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut cache)
            .await
            .unwrap();
        let mgets = stats
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_mget:calls="))
            .and_then(|rest| rest.split(',').next())
            .and_then(|calls| calls.parse::<u32>().ok())
            .unwrap_or(0);
        assert_eq!(
            mgets, 1,
            "{round}: Redis round trips for 50 events\n{stats}"
        );
        let bodies: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements WHERE query LIKE $1",
        )
        .bind(BODIES)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
        assert_eq!(bodies, queries, "{round}: PostgreSQL queries for 50 bodies");
    }
}
