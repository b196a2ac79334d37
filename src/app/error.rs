//! The one error every use case answers with, and what each failure below it becomes. Each
//! entrance maps it once: GraphQL to `extensions.code`, HTTP to a status, the CLI to a line.

use std::sync::Arc;

use crate::access::auth::{AuthError, Scope};
use crate::access::ratelimit::{whole_seconds, Limited};
use crate::app::own_trail::TrailError;
use crate::app::record::IngestError;
use crate::search::SearchError;
use crate::store::StoreError;

/// The hint given with UNAVAILABLE: long enough for a breaker to probe again.
pub const RETRY_AFTER_SECONDS: u64 = 5;

#[derive(Clone, Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadInput { field: String, message: String },
    #[error("{0}")]
    Unauthenticated(String),
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
    /// A durable subscription that fell too far behind, closed with where to resume.
    #[error("{message}")]
    SlowConsumer { message: String, cursor: String },
    /// An automatic persisted query's hash this server does not know, sent without its text:
    /// the client sends the text next (Apollo clients look for this message and code).
    #[error("PersistedQueryNotFound")]
    PersistedQueryNotFound,
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

    /// FORBIDDEN for a caller that lacks `scope`, naming it.
    pub fn missing_scope(scope: Scope) -> Self {
        ApiError::Forbidden(format!(
            "this needs a key with the {} scope",
            scope.as_str()
        ))
    }

    /// What a caller that presents no credentials is told.
    pub fn no_credentials() -> Self {
        ApiError::Unauthenticated(
            "missing API key: send \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\"".into(),
        )
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadInput { .. } => "BAD_USER_INPUT",
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::SlowConsumer { .. } => "SLOW_CONSUMER",
            ApiError::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            ApiError::Internal => "INTERNAL",
        }
    }
}

impl From<AuthError> for ApiError {
    /// The caller learns what it can act on; store details stay in the log.
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store(e) => {
                tracing::warn!(error = %e, "cannot verify credentials");
                ApiError::Unavailable(
                    "credentials cannot be verified right now; retry shortly".into(),
                )
            }
            AuthError::Unauthenticated | AuthError::Revoked(_) => {
                ApiError::Unauthenticated("unknown or revoked API key".into())
            }
            AuthError::InvalidToken(_) | AuthError::Expired { .. } => {
                ApiError::Unauthenticated(e.to_string())
            }
        }
    }
}

impl From<TrailError> for ApiError {
    /// The action is done, but its audit event could not be kept: the caller must know.
    fn from(e: TrailError) -> Self {
        tracing::error!(error = %e, "an admin action's audit event was not kept");
        ApiError::Unavailable(e.to_string())
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
