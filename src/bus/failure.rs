//! What a message carries about its failures: how many attempts, what went wrong each time, and,
//! once dead-lettered, why and under which id. Written by the worker, read by the dead-letter
//! tools.

use chrono::{SecondsFormat, Utc};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::BasicProperties;
use uuid::Uuid;

pub const ATTEMPTS_HEADER: &str = "x-traceledger-attempts";
pub const HISTORY_HEADER: &str = "x-traceledger-history";
pub const REASON_HEADER: &str = "x-traceledger-reason";
pub const DEAD_LETTER_ID_HEADER: &str = "x-traceledger-dead-letter-id";
const FAILED_AT_HEADER: &str = "x-traceledger-failed-at";

/// The failure record of one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Failure {
    /// Failed attempts so far.
    pub attempts: u32,
    /// One line per failed attempt: when, which attempt, why.
    pub history: Vec<String>,
}

impl Failure {
    pub fn of(properties: &BasicProperties) -> Self {
        let Some(headers) = properties.headers() else {
            return Self::default();
        };
        let attempts = match headers.inner().get(ATTEMPTS_HEADER) {
            Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(0),
            Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        let history = match headers.inner().get(HISTORY_HEADER) {
            Some(AMQPValue::FieldArray(items)) => items
                .as_slice()
                .iter()
                .filter_map(|v| match v {
                    AMQPValue::LongString(s) => Some(s.to_string()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Self { attempts, history }
    }

    /// This record after one more failed attempt for `reason`.
    pub fn failed_again(&self, reason: &str) -> Self {
        let attempts = self.attempts.saturating_add(1);
        let mut history = self.history.clone();
        history.push(format!("{} attempt {attempts}: {reason}", now()));
        Self { attempts, history }
    }

    /// `properties` with this record in the headers (everything else kept).
    pub fn stamp(&self, properties: &BasicProperties) -> BasicProperties {
        let mut headers = properties.headers().clone().unwrap_or_default();
        headers.insert(
            ATTEMPTS_HEADER.into(),
            AMQPValue::LongLongInt(i64::from(self.attempts)),
        );
        let history: Vec<AMQPValue> = self
            .history
            .iter()
            .map(|line| AMQPValue::LongString(line.as_str().into()))
            .collect();
        headers.insert(
            HISTORY_HEADER.into(),
            AMQPValue::FieldArray(FieldArray::from(history)),
        );
        properties.clone().with_headers(headers)
    }

    /// `properties` stamped as a dead letter: the record, the final reason and a new id.
    pub fn stamp_dead(&self, properties: &BasicProperties, reason: &str) -> BasicProperties {
        let properties = self.stamp(properties);
        let mut headers: FieldTable = properties.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
        headers.insert(
            DEAD_LETTER_ID_HEADER.into(),
            AMQPValue::LongString(Uuid::now_v7().to_string().into()),
        );
        headers.insert(FAILED_AT_HEADER.into(), AMQPValue::LongString(now().into()));
        properties.with_headers(headers)
    }

    /// `properties` with every failure header removed: a replayed message starts afresh.
    pub fn clear(properties: &BasicProperties) -> BasicProperties {
        let mut kept = FieldTable::default();
        if let Some(headers) = properties.headers() {
            for (name, value) in headers {
                if !name.as_str().starts_with("x-traceledger-") && name.as_str() != "x-death" {
                    kept.insert(name.clone(), value.clone());
                }
            }
        }
        properties.clone().with_headers(kept)
    }
}

/// Reads a string header.
pub(super) fn header_str(properties: &BasicProperties, name: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_the_headers_and_clears() {
        let failure = Failure::default()
            .failed_again("db timeout")
            .failed_again("deadlock");
        let properties = failure.stamp(&BasicProperties::default());
        assert_eq!(Failure::of(&properties), failure);
        assert_eq!(failure.attempts, 2);
        assert!(failure.history[1].contains("attempt 2: deadlock"));
        let dead = failure.stamp_dead(&properties, "gave up");
        assert_eq!(header_str(&dead, REASON_HEADER).as_deref(), Some("gave up"));
        assert!(header_str(&dead, DEAD_LETTER_ID_HEADER).is_some());
        assert_eq!(Failure::of(&Failure::clear(&dead)), Failure::default());
    }
}
