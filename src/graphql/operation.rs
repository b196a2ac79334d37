//! Which operation a request runs: whether it writes or reads (for rate limits) and a name for
//! its audit event. HTTP requests are charged before the schema runs; operations sent over a
//! websocket are charged by the `SocketRates` extension here, against the connection's caller.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection,
};
use async_graphql::{ErrorExtensions, Pos, Request, ServerResult};

use super::error::ApiError;
use crate::auth::Principal;
use crate::ratelimit::{RateLimiter, RequestKind};

/// What a request runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub kind: RequestKind,
    /// The operation's name, else its first field.
    pub name: String,
    pub subscription: bool,
}

impl Operation {
    /// A read named `name`: what a query counts as when its operation cannot be told.
    fn read(name: &str) -> Self {
        Self {
            kind: RequestKind::Read,
            name: name.to_owned(),
            subscription: false,
        }
    }
}

/// Classifies the operation `operation_name` picks from a parsed query. A query that does not
/// parse (`None`) counts as a read; the schema then answers why it does not parse.
pub fn classify(document: Option<&ExecutableDocument>, operation_name: Option<&str>) -> Operation {
    let Some(document) = document else {
        return Operation::read("unparsable");
    };
    let operation = match &document.operations {
        DocumentOperations::Single(op) => Some((None, op)),
        DocumentOperations::Multiple(ops) => match operation_name {
            Some(name) => ops.iter().find(|(n, _)| n.as_str() == name),
            None => ops.iter().next(),
        }
        .map(|(name, op)| (Some(name.to_string()), op)),
    };
    let Some((name, op)) = operation else {
        return Operation::read("unknown");
    };
    let name = name.or_else(|| {
        op.node
            .selection_set
            .node
            .items
            .iter()
            .find_map(|item| match &item.node {
                Selection::Field(field) => Some(field.node.name.node.to_string()),
                _ => None,
            })
    });
    Operation {
        kind: match op.node.ty {
            OperationType::Mutation => RequestKind::Write,
            OperationType::Query | OperationType::Subscription => RequestKind::Read,
        },
        name: name.unwrap_or_else(|| "anonymous".to_owned()),
        subscription: op.node.ty == OperationType::Subscription,
    }
}

/// In a websocket connection's data: whose budget its queries and mutations draw on.
pub struct SocketCharge {
    pub principal: Principal,
    pub limiter: Arc<RateLimiter>,
}

/// Charges queries and mutations sent over a websocket (subscriptions are capped instead).
pub struct SocketRates;

impl ExtensionFactory for SocketRates {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SocketRatesExtension)
    }
}

struct SocketRatesExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for SocketRatesExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Some(charge) = ctx.data_opt::<SocketCharge>() {
            // Parsed here once: the schema goes on with this parse.
            let name = request.operation_name.clone();
            let operation = classify(request.parsed_query().ok(), name.as_deref());
            if !operation.subscription {
                if let Err(wait) = charge
                    .limiter
                    .check(&charge.principal, operation.kind)
                    .await
                {
                    let seconds = crate::ratelimit::whole_seconds(wait);
                    let error = ApiError::RateLimited {
                        message: format!("rate limit reached for this key; retry in {seconds} s"),
                        retry_after_seconds: seconds,
                    };
                    return Err(error.extend().into_server_error(Pos::default()));
                }
            }
        }
        next.run(ctx, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_text(query: &str, operation_name: Option<&str>) -> Operation {
        let document = async_graphql::parser::parse_query(query).ok();
        classify(document.as_ref(), operation_name)
    }

    #[test]
    fn classifies_reads_writes_and_subscriptions_by_the_chosen_operation() {
        let op = classify_text("{ auditEvents { edges { cursor } } }", None);
        assert_eq!(
            (op.kind, op.name.as_str()),
            (RequestKind::Read, "auditEvents")
        );
        let op = classify_text("mutation { recordEvent(input: {}) { id } }", None);
        assert_eq!(
            (op.kind, op.name.as_str()),
            (RequestKind::Write, "recordEvent")
        );
        let two = "query Look { auditEvents { edges { cursor } } } mutation Write { recordEvent(input: {}) { id } }";
        let op = classify_text(two, Some("Write"));
        assert_eq!((op.kind, op.name.as_str()), (RequestKind::Write, "Write"));
        assert!(classify_text("subscription { eventRecorded { id } }", None).subscription);
        let op = classify_text("{", None);
        assert_eq!(
            (op.kind, op.name.as_str()),
            (RequestKind::Read, "unparsable")
        );
    }
}
