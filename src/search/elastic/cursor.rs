//! Where a hit stands in the search order, as the opaque position a page continues from.

use serde_json::{json, Value};

use crate::search::SearchError;

/// The search order: relevance, ties by newest, then id so no two hits tie; `backwards`, the
/// same reversed (a page before a cursor is read nearest first).
pub(super) fn sort_json(backwards: bool) -> Value {
    let way = if backwards { "asc" } else { "desc" };
    json!([{ "_score": way }, { "occurred_at": way }, { "id": way }])
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

    /// Continues from just above this score (`backwards`, in ascending order, from just below
    /// it), so every hit of an equal score comes again and the tie is broken here, exactly.
    /// Handing a score back as the server printed it is not exact everywhere: a server may rank
    /// with more precision than it prints (osmem-server does), and would then skip or repeat
    /// equally relevant hits.
    pub(super) fn search_after(&self, backwards: bool) -> Value {
        let bits = self.score.to_bits();
        let next = if !backwards {
            f32::from_bits(bits + 1)
        } else if self.score > 0.0 {
            f32::from_bits(bits - 1)
        } else {
            -f32::MIN_POSITIVE
        };
        json!([f64::from(next), self.occurred_at, self.id])
    }

    /// Whether `hit` is of this position's score and on the side of it already passed: not older
    /// going forwards (it came at or before), not newer going backwards (at or after).
    pub(super) fn served(&self, hit: &Value, backwards: bool) -> bool {
        SortPosition::of(hit).is_some_and(|p| {
            let at = (p.occurred_at, p.id.as_str());
            let here = (self.occurred_at, self.id.as_str());
            p.score == self.score && if backwards { at <= here } else { at >= here }
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
        assert!(at.served(&hit(0.5, 100, "m"), false));
        assert!(at.served(&hit(0.5, 100, "z"), false));
        assert!(at.served(&hit(0.5, 200, "a"), false));
        assert!(!at.served(&hit(0.5, 100, "a"), false));
        assert!(!at.served(&hit(0.5, 50, "z"), false));
        assert!(!at.served(&hit(0.25, 300, "z"), false));
        let after = at.search_after(false);
        assert!(after[0].as_f64().unwrap() > 0.5);
        assert_eq!(after[1], 100);
        // Backwards the other side of the tie was served: the cursor and what ranks below it.
        assert!(at.served(&hit(0.5, 100, "m"), true));
        assert!(at.served(&hit(0.5, 100, "a"), true));
        assert!(at.served(&hit(0.5, 50, "z"), true));
        assert!(!at.served(&hit(0.5, 100, "z"), true));
        assert!(!at.served(&hit(0.5, 200, "a"), true));
        assert!(!at.served(&hit(0.75, 10, "a"), true));
        assert!(at.search_after(true)[0].as_f64().unwrap() < 0.5);
    }
}
