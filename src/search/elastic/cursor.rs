//! Where a hit stands in the search order, as the opaque position a page continues from.

use serde_json::{json, Value};

use crate::search::SearchError;

/// The search order: relevance, ties by newest, then id so no two hits tie.
pub(super) fn sort_json() -> Value {
    json!([{ "_score": "desc" }, { "occurred_at": "desc" }, { "id": "desc" }])
}

/// Where a hit stands in the search order: its sort values [score, occurred_at in ns, id].
#[derive(Debug, PartialEq)]
pub(super) struct SortPosition {
    pub(super) score: f32,
    pub(super) occurred_at: i64,
    pub(super) id: String,
}

impl SortPosition {
    pub(super) fn of(hit: &Value) -> Option<Self> {
        match hit["sort"].as_array().map(Vec::as_slice) {
            Some([score, at, id]) => Some(Self {
                score: score.as_f64()? as f32,
                occurred_at: at.as_i64()?,
                id: id.as_str()?.to_owned(),
            }),
            _ => None,
        }
    }

    pub(super) fn decode(payload: &str) -> Result<Self, SearchError> {
        let values: Value = serde_json::from_str(payload).map_err(|_| SearchError::BadCursor)?;
        Self::of(&json!({ "sort": values })).ok_or(SearchError::BadCursor)
    }

    /// Continues from just above this score, so every hit of an equal score comes again and
    /// the tie is broken here, exactly. Handing a score back as the server printed it is not
    /// exact everywhere: a server may rank with more precision than it prints (osmem-server
    /// does), and would then skip or repeat equally relevant hits.
    pub(super) fn search_after(&self) -> Value {
        let above = f32::from_bits(self.score.to_bits() + 1);
        json!([f64::from(above), self.occurred_at, self.id])
    }

    /// Whether `hit` came at or before this position: same score, and not older.
    pub(super) fn served(&self, hit: &Value) -> bool {
        SortPosition::of(hit).is_some_and(|p| {
            p.score == self.score
                && (p.occurred_at, p.id.as_str()) >= (self.occurred_at, self.id.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_must_be_three_sort_values() {
        assert!(SortPosition::decode(r#"[1.5, 1763800000000000000, "x"]"#).is_ok());
        for bad in ["", "[]", r#"["a", 1, "x"]"#, r#"[1, 2, 3]"#, "{}"] {
            assert!(SortPosition::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cursor_continues_inside_a_tie() {
        let at = SortPosition::decode(r#"[0.5, 100, "m"]"#).unwrap();
        let hit = |score: f64, t: i64, id: &str| json!({ "sort": [score, t, id] });
        assert!(at.served(&hit(0.5, 100, "m")));
        assert!(at.served(&hit(0.5, 100, "z")));
        assert!(at.served(&hit(0.5, 200, "a")));
        assert!(!at.served(&hit(0.5, 100, "a")));
        assert!(!at.served(&hit(0.5, 50, "z")));
        assert!(!at.served(&hit(0.25, 300, "z")));
        let after = at.search_after();
        assert!(after[0].as_f64().unwrap() > 0.5);
        assert_eq!(after[1], 100);
    }
}
