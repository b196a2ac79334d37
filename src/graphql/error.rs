//! Errors as clients see them: every error carries `extensions.code` from the contract, and
//! `extensions.field` for bad input where there is one. Internal details are logged, not sent.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest};
use async_graphql::{ErrorExtensions, Response, ServerError};

use crate::ingest::IngestError;
use crate::ratelimit::{whole_seconds, Limited};
use crate::search::SearchError;
use crate::store::StoreError;

/// The hint given with UNAVAILABLE: long enough for a breaker to probe again.
const RETRY_AFTER_SECONDS: u64 = 5;

#[derive(Clone, Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadInput { field: String, message: String },
    #[error("missing or unknown API key")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_seconds: u64,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadInput { .. } => "BAD_USER_INPUT",
            ApiError::Unauthenticated => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Internal => "INTERNAL",
        }
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", self.code());
            match self {
                ApiError::BadInput { field, .. } => ext.set("field", field.as_str()),
                ApiError::Unavailable(_) => ext.set("retryAfterSeconds", RETRY_AFTER_SECONDS),
                ApiError::RateLimited {
                    retry_after_seconds,
                    ..
                } => ext.set("retryAfterSeconds", *retry_after_seconds),
                _ => {}
            }
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::Unavailable("the event store is unavailable; try again shortly".into())
        } else {
            tracing::error!(error = %e, "database error");
            ApiError::Internal
        }
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::BadCursor => ApiError::bad_input("after", e.to_string()),
            SearchError::CursorBackendUnavailable => ApiError::Unavailable(e.to_string()),
            SearchError::Store(e) => e.into(),
            SearchError::Elastic(_) => {
                tracing::error!(error = %e, "search failed");
                ApiError::Internal
            }
        }
    }
}

impl From<Limited> for ApiError {
    /// RATE_LIMITED with when to retry, or BAD_USER_INPUT naming the batch when retrying the same
    /// call could never succeed.
    fn from(limited: Limited) -> Self {
        match limited {
            Limited::Wait(wait) => {
                let seconds = whole_seconds(wait);
                ApiError::RateLimited {
                    message: format!("rate limit reached for this key; retry in {seconds} s"),
                    retry_after_seconds: seconds,
                }
            }
            Limited::TooLarge { cost, burst } => ApiError::bad_input(
                "inputs",
                format!(
                    "this request records {cost} events and this key may record at most {burst} at once: send smaller batches"
                ),
            ),
        }
    }
}

impl From<Arc<ApiError>> for ApiError {
    fn from(e: Arc<ApiError>) -> Self {
        (*e).clone()
    }
}

/// Maps an ingest failure for the argument `argument` (`input` or `inputs`).
pub fn ingest_error(argument: &str, e: IngestError) -> ApiError {
    match e {
        IngestError::Invalid { index, error } => {
            let field = if argument == "inputs" {
                format!("inputs.{index}.{}", error.field)
            } else {
                format!("input.{}", error.field)
            };
            ApiError::bad_input(field, error.message)
        }
        IngestError::TooMany => ApiError::bad_input(argument, e.to_string()),
        IngestError::Unavailable { .. } | IngestError::Interrupted => {
            tracing::error!(error = %e, "cannot record");
            ApiError::Unavailable("events cannot be recorded right now; retry shortly".into())
        }
    }
}

/// Gives the errors async-graphql raises itself (syntax, validation, unparsable arguments) the
/// contract's `BAD_USER_INPUT` code and, where the message names one, the offending argument.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for error in &mut response.errors {
            add_missing_code(error);
        }
        response
    }
}

fn add_missing_code(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_some() {
        return;
    }
    // An error with a path came from a resolver without a code of ours: a bug, not bad input,
    // unless it is an argument that failed to parse.
    if !error.path.is_empty() && !error.message.starts_with("Failed to parse") {
        tracing::error!(message = %error.message, "uncoded resolver error");
        extensions.set("code", "INTERNAL");
        return;
    }
    extensions.set("code", "BAD_USER_INPUT");
    if let Some(field) = argument_named_in(&error.message) {
        extensions.set("field", field);
    }
}

/// `Invalid value for argument "input.occurredAt", …` names the argument path in quotes.
fn argument_named_in(message: &str) -> Option<String> {
    let rest = message.split_once("argument \"")?.1;
    Some(rest.split_once('"')?.0.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_argument_path() {
        assert_eq!(
            argument_named_in(r#"Invalid value for argument "input.occurredAt", must be"#),
            Some("input.occurredAt".to_owned())
        );
        assert_eq!(argument_named_in("Unknown field \"x\""), None);
    }
}
