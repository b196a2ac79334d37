//! Errors as GraphQL clients see them: every error carries `extensions.code` from the contract,
//! and `extensions.field` for bad input where there is one. Internal details are logged, not
//! sent. The errors themselves are the application layer's (`app::ApiError`).

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest};
use async_graphql::{ErrorExtensions, Response, ServerError};

pub use crate::app::{ingest_error, ApiError};

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", self.code());
            match self {
                ApiError::BadInput { field, .. } => ext.set("field", field.as_str()),
                ApiError::Unavailable(_) => {
                    ext.set("retryAfterSeconds", crate::app::RETRY_AFTER_SECONDS)
                }
                ApiError::RateLimited {
                    retry_after_seconds,
                    ..
                } => ext.set("retryAfterSeconds", *retry_after_seconds),
                ApiError::SlowConsumer { cursor, .. } => ext.set("cursor", cursor.as_str()),
                _ => {}
            }
        })
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
    // unless it is an argument that failed to parse (or an explicit null for a non-null one).
    let bad_argument = ["Failed to parse", "Expected input type"]
        .iter()
        .any(|prefix| error.message.starts_with(prefix));
    if !error.path.is_empty() && !bad_argument {
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
