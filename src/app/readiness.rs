//! Readiness and metrics: what each dependency looks like from this instance, and the gauges
//! that are read when someone asks (queue depths, outbox, subscribers, breakers).

use std::time::Duration;

use serde::Serialize;

use crate::app::Services;
use crate::breaker::BreakerState;

/// A readiness probe waits no longer than this for any one dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// A dependency that answers its probe slower than this is degraded: every request that
/// needs it waits about as long.
const SLOW_PROBE: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Up,
    Degraded,
    Down,
}

#[derive(Debug, Serialize)]
pub struct Dependency {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `up`: all well. `degraded`: serving, with a dependency down (recording falls back to the
    /// outbox or the broker, reads skip the cache). `down`: events can be neither recorded nor
    /// read; a load balancer should send traffic elsewhere.
    pub status: Status,
    pub postgres: Dependency,
    pub redis: Dependency,
    pub rabbitmq: Dependency,
    /// Only when configured; while it is down, search answers from PostgreSQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elasticsearch: Option<Dependency>,
    pub outbox_depth: Option<i64>,
    /// Live subscriptions (`eventRecorded` without `after`) on this instance.
    pub subscribers: usize,
    /// Durable subscriptions (`eventRecorded(after:)`) on this instance.
    pub durable_subscribers: usize,
}

pub async fn readiness(services: &Services) -> Readiness {
    let postgres = probe(services.store.ping(), None).await;
    let redis = probe(services.cache.ping(), Some(services.cache.breaker_state())).await;
    let rabbitmq = {
        let breaker = services.publisher.breaker_state();
        let connected = services.publisher.is_connected().await;
        Dependency {
            status: classify(connected, Duration::ZERO, Some(breaker)),
            breaker: Some(breaker.as_str()),
            detail: (!connected).then(|| "not connected".to_owned()),
        }
    };
    // As search sees it: its breaker opens after repeated failures (no extra probe here).
    let elasticsearch = services
        .search
        .elastic_breaker_state()
        .map(|breaker| Dependency {
            status: classify(true, Duration::ZERO, Some(breaker)),
            breaker: Some(breaker.as_str()),
            detail: None,
        });
    let outbox_depth = tokio::time::timeout(PROBE_TIMEOUT, services.store.outbox_depth())
        .await
        .ok()
        .and_then(Result::ok);
    let search_up = elasticsearch
        .as_ref()
        .is_none_or(|es| es.status == Status::Up);
    let status = match (postgres.status, rabbitmq.status, redis.status) {
        (Status::Down, Status::Down, _) => Status::Down,
        (Status::Up, Status::Up, Status::Up) if search_up => Status::Up,
        _ => Status::Degraded,
    };
    Readiness {
        status,
        postgres,
        redis,
        rabbitmq,
        elasticsearch,
        outbox_depth,
        subscribers: services.live.subscriber_count(),
        durable_subscribers: services.commits.followers(),
    }
}

async fn probe<E: std::fmt::Display>(
    check: impl std::future::Future<Output = Result<(), E>>,
    breaker: Option<BreakerState>,
) -> Dependency {
    let started = std::time::Instant::now();
    let (answered, detail) = match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => (true, None),
        Ok(Err(e)) => (false, Some(e.to_string())),
        Err(_) => (false, Some("timed out".to_owned())),
    };
    let took = started.elapsed();
    let status = classify(answered, took, breaker);
    let detail = detail.or_else(|| match status {
        Status::Degraded if took > SLOW_PROBE => Some(format!("slow: {} ms", took.as_millis())),
        Status::Degraded => Some("recovering: its breaker lets a few requests try it".into()),
        Status::Down if answered => Some("its breaker is open: requests go around it".into()),
        _ => None,
    });
    Dependency {
        status,
        breaker: breaker.map(BreakerState::as_str),
        detail,
    }
}

/// Down when it does not answer or its breaker is open (requests go around it); degraded when
/// it answers but slowly, or while its breaker is half-open (a few requests try it again); up
/// otherwise.
fn classify(answered: bool, took: Duration, breaker: Option<BreakerState>) -> Status {
    match breaker {
        _ if !answered => Status::Down,
        Some(BreakerState::Open) => Status::Down,
        Some(BreakerState::HalfOpen) => Status::Degraded,
        _ if took > SLOW_PROBE => Status::Degraded,
        _ => Status::Up,
    }
}

/// Sets the gauges that are cheaper to read on demand than to keep up to date.
pub async fn refresh_gauges(services: &Services) {
    let ready = readiness(services).await;
    metrics::gauge!("traceledger_subscribers").set(ready.subscribers as f64);
    metrics::gauge!("traceledger_durable_subscribers").set(ready.durable_subscribers as f64);
    if let Some(depth) = ready.outbox_depth {
        metrics::gauge!("traceledger_outbox_depth").set(depth as f64);
    }
    let breakers = [
        ("redis", Some(services.cache.breaker_state())),
        ("rabbitmq", Some(services.publisher.breaker_state())),
        ("elasticsearch", services.search.elastic_breaker_state()),
    ];
    for (dependency, state) in breakers.into_iter().filter_map(|(d, s)| Some((d, s?))) {
        let value = match state {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        };
        metrics::gauge!("traceledger_breaker_state", "dependency" => dependency).set(value);
    }
    if let Ok(Ok(depths)) = tokio::time::timeout(PROBE_TIMEOUT, services.queue_depths.read()).await
    {
        for (queue, depth) in depths {
            metrics::gauge!("traceledger_queue_depth", "queue" => queue).set(f64::from(depth));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dependency_is_up_degraded_or_down() {
        let fast = Duration::from_millis(3);
        let slow = SLOW_PROBE + Duration::from_millis(1);
        assert_eq!(classify(true, fast, None), Status::Up);
        assert_eq!(classify(true, fast, Some(BreakerState::Closed)), Status::Up);
        assert_eq!(classify(true, slow, None), Status::Degraded);
        assert_eq!(
            classify(true, fast, Some(BreakerState::HalfOpen)),
            Status::Degraded
        );
        assert_eq!(classify(true, fast, Some(BreakerState::Open)), Status::Down);
        assert_eq!(
            classify(false, fast, Some(BreakerState::Closed)),
            Status::Down
        );
        assert_eq!(classify(false, slow, None), Status::Down);
    }
}
