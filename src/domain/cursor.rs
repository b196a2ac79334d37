//! Opaque cursors: the position of an event in `(occurred_at, id)` order (pages), and in its
//! tenant's ledger (durable feeds).

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

/// Where a durable feed starts: the first ledger index it delivers, or the head when it is
/// read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamStart {
    At(u64),
    Now,
}

/// The position of an event in its tenant's ledger: a feed given it continues after the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamCursor(pub u64);

impl StreamCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("ledger:{}", self.0))
    }

    pub fn decode(cursor: &str) -> Result<Self, CursorError> {
        let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| CursorError)?;
        let raw = std::str::from_utf8(&raw).map_err(|_| CursorError)?;
        let index = raw.strip_prefix("ledger:").ok_or(CursorError)?;
        // Only the digits this API writes: no sign, no leading zeros.
        if index.is_empty() || (index.len() > 1 && index.starts_with('0')) {
            return Err(CursorError);
        }
        index.parse().map(StreamCursor).map_err(|_| CursorError)
    }
}

impl StreamStart {
    /// `"beginning"`, `"now"`, or a [`StreamCursor`] (the feed continues after its event).
    pub fn parse(after: &str) -> Result<Self, CursorError> {
        match after {
            "beginning" => Ok(StreamStart::At(0)),
            "now" => Ok(StreamStart::Now),
            cursor => {
                let StreamCursor(index) = StreamCursor::decode(cursor)?;
                index.checked_add(1).map(StreamStart::At).ok_or(CursorError)
            }
        }
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

    #[test]
    fn stream_cursors_continue_after_their_event() {
        assert_eq!(StreamStart::parse("beginning").unwrap(), StreamStart::At(0));
        assert_eq!(StreamStart::parse("now").unwrap(), StreamStart::Now);
        let cursor = StreamCursor(41).encode();
        assert_eq!(StreamStart::parse(&cursor).unwrap(), StreamStart::At(42));
        let page = Cursor {
            occurred_at: DateTime::from_timestamp_micros(1).unwrap(),
            id: Uuid::now_v7(),
        };
        for bad in [
            String::new(),
            "Beginning".into(),
            page.encode(),
            URL_SAFE_NO_PAD.encode("ledger:-1"),
            URL_SAFE_NO_PAD.encode("ledger:007"),
            URL_SAFE_NO_PAD.encode(format!("ledger:{}", u64::MAX)),
            URL_SAFE_NO_PAD.encode("ledger:1e3"),
        ] {
            assert!(StreamStart::parse(&bad).is_err(), "{bad}");
        }
    }
}
