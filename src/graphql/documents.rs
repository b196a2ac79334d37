//! Parsed GraphQL documents, kept by their text. Clients send the same few operations over and
//! over with new variables, and parsing the text is a large part of a small request's work (see
//! BENCHMARKS.md): a request parses its text at most once (to classify it, and the schema reuses
//! that parse), and a text seen before not at all. The schema gets a copy of the kept document:
//! it prunes `@skip`/`@include` selections in place, so it cannot share one.

use std::sync::Arc;

use async_graphql::parser::parse_query;
use async_graphql::parser::types::ExecutableDocument;

/// Documents kept at most; past this the least used go first, so no client can make it grow and
/// a burst of one-off texts does not push out the operations sent all day.
const MAX_DOCUMENTS: usize = 512;
/// Longer texts are parsed every time: they are rare, and would make the bound above a bound on
/// entries only.
const MAX_CACHED_QUERY_BYTES: usize = 8 * 1024;

pub struct DocumentCache {
    documents: quick_cache::sync::Cache<Box<str>, Arc<ExecutableDocument>>,
}

impl Default for DocumentCache {
    fn default() -> Self {
        Self {
            documents: quick_cache::sync::Cache::new(MAX_DOCUMENTS),
        }
    }
}

impl DocumentCache {
    /// The document `query` parses to, or `None` if it does not parse (the schema then parses it
    /// again to say why, with the usual error).
    pub fn parse(&self, query: &str) -> Option<ExecutableDocument> {
        if let Some(kept) = self.documents.get(query) {
            return Some(ExecutableDocument::clone(&kept));
        }
        let document = parse_query(query).ok()?;
        if query.len() <= MAX_CACHED_QUERY_BYTES {
            self.documents
                .insert(query.into(), Arc::new(document.clone()));
        }
        Some(document)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.documents.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::types::DocumentOperations;

    fn operation_names(document: &ExecutableDocument) -> Vec<String> {
        match &document.operations {
            DocumentOperations::Single(_) => vec![String::new()],
            DocumentOperations::Multiple(ops) => ops.keys().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn a_text_seen_before_gives_the_same_document_and_bad_texts_are_not_kept() {
        let cache = DocumentCache::default();
        let text = "query A { auditEvents { edges { cursor } } } query B { apiKeys { id } }";
        let first = cache.parse(text).expect("parses");
        let again = cache.parse(text).expect("parses from the cache");
        assert_eq!(operation_names(&first), operation_names(&again));
        assert_eq!(cache.len(), 1);
        assert!(cache.parse("{").is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_stays_bounded_and_long_texts_are_parsed_each_time() {
        let cache = DocumentCache::default();
        for i in 0..MAX_DOCUMENTS + 10 {
            assert!(cache
                .parse(&format!("query Q{i} {{ apiKeys {{ id }} }}"))
                .is_some());
        }
        assert!(cache.len() <= MAX_DOCUMENTS);
        let long = format!(
            "{{ apiKeys {{ id }} }} # {}",
            "x".repeat(MAX_CACHED_QUERY_BYTES)
        );
        let before = cache.len();
        assert!(cache.parse(&long).is_some());
        assert_eq!(cache.len(), before);
    }
}
