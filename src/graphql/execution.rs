//! Running one request, and telling whether it reached execution: GraphQL over HTTP answers a
//! request error (a document that does not parse or validate, variables that do not coerce)
//! with no `data` and, to clients that accept `application/graphql-response+json`, a 400.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{Request, Response};

use super::AppSchema;

/// A request's answer, and whether its operation ran (errors it gave are then field errors).
pub struct Executed {
    pub response: Response,
    pub ran: bool,
}

pub async fn execute(schema: &AppSchema, mut request: Request) -> Executed {
    let reached = Reached::default();
    request.data.insert(reached.clone());
    let response = schema.execute(request).await;
    Executed {
        response,
        ran: reached.0.load(Ordering::Relaxed),
    }
}

/// Set once the schema starts executing the request it was put in.
#[derive(Clone, Default)]
struct Reached(Arc<AtomicBool>);

/// The extension that sets [`Reached`].
pub struct MarkExecution;

impl ExtensionFactory for MarkExecution {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(MarkExecution)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for MarkExecution {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let Some(reached) = ctx.data_opt::<Reached>() {
            reached.0.store(true, Ordering::Relaxed);
        }
        next.run(ctx, operation_name).await
    }
}
