//! Opaque keyset cursors: the position of an event in `(occurred_at, id)` order.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A position after which a page continues. Clients see only the encoded string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub occurred_at: DateTime<Utc>,
    pub id: Uuid,
}

#[derive(Debug, thiserror::Error)]
#[error("not a cursor this API issued")]
pub struct CursorError;

impl Cursor {
    pub fn encode(&self) -> String {
        let raw = format!(
            "{}:{}",
            self.occurred_at.timestamp_micros(),
            self.id.simple()
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(cursor: &str) -> Result<Self, CursorError> {
        let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| CursorError)?;
        let raw = std::str::from_utf8(&raw).map_err(|_| CursorError)?;
        let (micros, id) = raw.split_once(':').ok_or(CursorError)?;
        let micros: i64 = micros.parse().map_err(|_| CursorError)?;
        Ok(Self {
            occurred_at: DateTime::from_timestamp_micros(micros).ok_or(CursorError)?,
            id: Uuid::try_parse(id).map_err(|_| CursorError)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let cursor = Cursor {
            occurred_at: DateTime::from_timestamp_micros(1_763_800_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for bad in [
            "",
            "%%%",
            "bm90LWEtY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("12:zz"),
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
