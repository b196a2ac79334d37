//! GraphQL over HTTP's two answer types, and which one a client's `Accept` header asks for:
//! `application/graphql-response+json`, whose status tells a request error (400) from an executed
//! one, or the older `application/json`, always 200 once the request could be read.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    GraphqlResponse,
    Json,
}

impl Answer {
    pub fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Answer::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Answer::Json => "application/json; charset=utf-8",
        })
    }

    /// The status of an answer whose operation never ran (unparsable, invalid, refused).
    pub fn request_error_status(self) -> StatusCode {
        match self {
            Answer::GraphqlResponse => StatusCode::BAD_REQUEST,
            Answer::Json => StatusCode::OK,
        }
    }
}

/// The answer type a client accepts, preferring the newer one where it is asked for at least as
/// much; `None` when it accepts neither. A client that sends no `Accept` is an older one and gets
/// `application/json`, as does one that accepts anything.
pub(super) fn answer_for(headers: &HeaderMap) -> Option<Answer> {
    let mut graphql_response = None;
    let (mut json, mut application_any, mut any) = (None, None, None);
    let mut ranges = 0;
    for range in accepted_ranges(headers) {
        ranges += 1;
        let (media, q) = range;
        let slot = match media.as_str() {
            GRAPHQL_RESPONSE => &mut graphql_response,
            JSON => &mut json,
            "application/*" => &mut application_any,
            "*/*" => &mut any,
            _ => continue,
        };
        *slot = Some(slot.map_or(q, |held: f32| held.max(q)));
    }
    if ranges == 0 {
        return Some(Answer::Json);
    }
    // The most specific range that names JSON decides its weight.
    let json = json.or(application_any).or(any).unwrap_or(0.0);
    let graphql_response = graphql_response.unwrap_or(0.0);
    if graphql_response > 0.0 && graphql_response >= json {
        Some(Answer::GraphqlResponse)
    } else if json > 0.0 {
        Some(Answer::Json)
    } else {
        None
    }
}

/// Whether a browser navigating to the URL asks for a page.
pub(super) fn wants_html(headers: &HeaderMap) -> bool {
    accepted_ranges(headers).any(|(media, q)| media == "text/html" && q > 0.0)
}

/// Each media range of the `Accept` headers, lower-cased, with its weight (1 unless given).
fn accepted_ranges(headers: &HeaderMap) -> impl Iterator<Item = (String, f32)> + '_ {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            if media.is_empty() {
                return None;
            }
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, q)| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            Some((
                media,
                if q.is_finite() {
                    q.clamp(0.0, 1.0)
                } else {
                    0.0
                },
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(accept: Option<&str>) -> Option<Answer> {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_str(accept).expect("a value"),
            );
        }
        answer_for(&headers)
    }

    #[test]
    fn the_newer_type_only_when_asked_for_and_json_otherwise() {
        assert_eq!(answer(None), Some(Answer::Json));
        assert_eq!(answer(Some("*/*")), Some(Answer::Json));
        assert_eq!(answer(Some("application/json")), Some(Answer::Json));
        assert_eq!(
            answer(Some(GRAPHQL_RESPONSE)),
            Some(Answer::GraphqlResponse)
        );
        // What Apollo Client and graphql-http's own client send.
        assert_eq!(
            answer(Some(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Some(Answer::GraphqlResponse)
        );
        assert_eq!(
            answer(Some(
                "application/graphql-response+json;q=0.5, application/json"
            )),
            Some(Answer::Json)
        );
        assert_eq!(
            answer(Some("application/json;q=0, */*")),
            None,
            "an explicit refusal of JSON outweighs the wildcard"
        );
        assert_eq!(answer(Some("text/html")), None);
        assert_eq!(answer(Some("text/html, */*;q=0.8")), Some(Answer::Json));
    }
}
