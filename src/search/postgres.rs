//! The PostgreSQL backend: the store's full-text query, with `ts_rank` scores and `ts_headline`
//! highlights, paginated on (score, occurred_at, id) both ways.

use chrono::DateTime;
use uuid::Uuid;

use super::{escape_html, SearchBackend, SearchError, SearchHit, SearchPage, SearchRequest};
use crate::domain::{ScoredPosition, EXACT_TOTAL_UP_TO};
use crate::store::{ScoredHit, Store, FRAGMENT_BREAK, MATCH_END, MATCH_START};

pub struct PostgresSearch {
    store: Store,
}

impl PostgresSearch {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl SearchBackend for PostgresSearch {
    async fn search(&self, request: &SearchRequest<'_>) -> Result<SearchPage, SearchError> {
        let after = request.after.map(decode_position).transpose()?;
        let limit = i64::try_from(request.first).unwrap_or(i64::MAX - 1) + 1;
        let (mut hits, total) = tokio::try_join!(
            self.store.search_events(
                request.tenant,
                request.query,
                request.filter,
                after,
                request.backwards,
                limit
            ),
            self.store.count_search_matches(
                request.tenant,
                request.query,
                request.filter,
                EXACT_TOTAL_UP_TO
            ),
        )?;
        let has_more = hits.len() > request.first;
        hits.truncate(request.first);
        if request.backwards {
            hits.reverse();
        }
        Ok(SearchPage {
            hits: hits.into_iter().map(to_hit).collect(),
            has_more,
            total,
        })
    }
}

fn to_hit(hit: ScoredHit) -> SearchHit {
    let p = hit.position;
    SearchHit {
        id: p.id,
        score: Some(f64::from(p.score)),
        // The score's exact bits: the keyset comparison must see the same float again.
        cursor: format!(
            "{:08x}:{}:{}",
            p.score.to_bits(),
            p.occurred_at.timestamp_micros(),
            p.id.simple()
        ),
        highlights: hit.headline.as_deref().map(highlights).unwrap_or_default(),
    }
}

fn decode_position(payload: &str) -> Result<ScoredPosition, SearchError> {
    let mut parts = payload.splitn(3, ':');
    let (Some(score), Some(micros), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SearchError::BadCursor);
    };
    let score = u32::from_str_radix(score, 16).map_err(|_| SearchError::BadCursor)?;
    let micros: i64 = micros.parse().map_err(|_| SearchError::BadCursor)?;
    Ok(ScoredPosition {
        score: f32::from_bits(score),
        occurred_at: DateTime::from_timestamp_micros(micros).ok_or(SearchError::BadCursor)?,
        id: Uuid::try_parse(id).map_err(|_| SearchError::BadCursor)?,
    })
}

/// The headline's fragments that hold a match, escaped, with the matches in `<em>…</em>`.
fn highlights(headline: &str) -> Vec<String> {
    headline
        .split(FRAGMENT_BREAK)
        .filter(|fragment| fragment.contains(MATCH_START))
        .map(|fragment| {
            let mut out = String::with_capacity(fragment.len() + 16);
            for (i, part) in fragment.trim().split([MATCH_START, MATCH_END]).enumerate() {
                // Odd parts sit between a start and an end marker.
                if i % 2 == 1 {
                    out.push_str("<em>");
                    escape_html(part, &mut out);
                    out.push_str("</em>");
                } else {
                    escape_html(part, &mut out);
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_exactly() {
        let hit = ScoredHit {
            position: ScoredPosition {
                score: 0.060_792_7,
                occurred_at: DateTime::from_timestamp_micros(1_763_800_000_123_456).unwrap(),
                id: Uuid::now_v7(),
            },
            headline: None,
        };
        let position = hit.position;
        let cursor = to_hit(hit).cursor;
        assert_eq!(decode_position(&cursor).unwrap(), position);
        assert!(decode_position("zz:1:2").is_err());
    }

    #[test]
    fn headlines_become_escaped_fragments_with_matches() {
        let headline = format!(
            "paid by {MATCH_START}alice{MATCH_END} <now>{FRAGMENT_BREAK}no match here{FRAGMENT_BREAK}{MATCH_START}alice{MATCH_END} & bob"
        );
        assert_eq!(
            highlights(&headline),
            vec![
                "paid by <em>alice</em> &lt;now&gt;".to_owned(),
                "<em>alice</em> &amp; bob".to_owned()
            ]
        );
    }
}
