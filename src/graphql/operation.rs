//! Which operation a request runs: whether it writes or reads, how many events it records (for
//! rate limits and the per-request cap) and a name for its audit event. HTTP requests are
//! charged before the schema runs; operations sent over a websocket are charged by the
//! `SocketOperations` extension here, against the connection's caller, and recorded one by one.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextSubscribe,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::Response;
use async_graphql::{ErrorExtensions, Name, Pos, Positioned, Request, ServerResult, Variables};
use async_graphql_value::{ConstValue, Value};
use futures::stream::BoxStream;
use futures::StreamExt;

use super::error::ApiError;
use super::Services;
use crate::access::auth::{Credential, HeldCredential, Principal};
use crate::access::ratelimit::{RateLimiter, RequestKind};
use crate::app::own_trail::{OwnTrail, RequestNote, Transport};
use crate::domain::{Tenant, MAX_BATCH};

/// The status a websocket operation's audit note carries: it was answered over an open socket
/// (its outcome is in its error codes).
const OPERATION_STATUS: u16 = 200;
/// How deep fragments inside a mutation's top level are followed when counting its events; a
/// deeper (or cyclic) document is refused by validation anyway, and counts as the cap.
const MAX_FRAGMENT_DEPTH: usize = 8;

/// What a request runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub kind: RequestKind,
    /// The operation's name, else its first field.
    pub name: String,
    pub subscription: bool,
    /// Events its `recordEvent`/`recordEvents` fields record, all aliases together.
    pub events: usize,
}

impl Operation {
    /// A read named `name`: what a query counts as when its operation cannot be told.
    fn read(name: &str) -> Self {
        Self {
            kind: RequestKind::Read,
            name: name.to_owned(),
            subscription: false,
            events: 0,
        }
    }

    /// What it costs the caller's budget: a read or a write call counts once, a write that
    /// records events counts each event.
    pub fn cost(&self) -> u32 {
        u32::try_from(self.events.max(1)).unwrap_or(u32::MAX)
    }

    /// BAD_USER_INPUT if it records more events than one request may.
    pub fn check_event_cap(&self) -> Result<(), ApiError> {
        if self.events <= MAX_BATCH {
            return Ok(());
        }
        Err(ApiError::bad_input(
            "inputs",
            format!(
                "this request records {} events; at most {MAX_BATCH} per request, counted across all its fields",
                self.events
            ),
        ))
    }
}

/// Classifies the operation `operation_name` picks from a parsed query, counting the events it
/// records with the request's `variables`. A query that does not parse (`None`) counts as a
/// read; the schema then answers why it does not parse.
pub fn classify(
    document: Option<&ExecutableDocument>,
    operation_name: Option<&str>,
    variables: &Variables,
) -> Operation {
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
    let events = if op.node.ty == OperationType::Mutation {
        events_in(document, &op.node.selection_set, variables, 0)
    } else {
        0
    };
    Operation {
        kind: match op.node.ty {
            OperationType::Mutation => RequestKind::Write,
            OperationType::Query | OperationType::Subscription => RequestKind::Read,
        },
        name: name.unwrap_or_else(|| "anonymous".to_owned()),
        subscription: op.node.ty == OperationType::Subscription,
        events,
    }
}

/// Events recorded by the mutation fields of `selection` (fragments followed): one per
/// `recordEvent`, one per input of `recordEvents`, whatever their aliases.
fn events_in(
    document: &ExecutableDocument,
    selection: &Positioned<SelectionSet>,
    variables: &Variables,
    depth: usize,
) -> usize {
    if depth > MAX_FRAGMENT_DEPTH {
        return MAX_BATCH + 1;
    }
    selection
        .node
        .items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => match field.node.name.node.as_str() {
                "recordEvent" => 1,
                "recordEvents" => field
                    .node
                    .get_argument("inputs")
                    .map_or(0, |inputs| list_len(&inputs.node, variables)),
                _ => 0,
            },
            Selection::InlineFragment(fragment) => {
                events_in(document, &fragment.node.selection_set, variables, depth + 1)
            }
            Selection::FragmentSpread(spread) => document
                .fragments
                .get(&spread.node.fragment_name.node)
                .map_or(0, |fragment| {
                    events_in(document, &fragment.node.selection_set, variables, depth + 1)
                }),
        })
        .fold(0, usize::saturating_add)
}

/// How many items a list argument holds, written inline or passed as a variable (a single
/// value counts as a list of one, as GraphQL coerces it).
fn list_len(value: &Value, variables: &Variables) -> usize {
    match value {
        Value::List(items) => items.len(),
        Value::Variable(name) => match variables.get(&Name::new(name)) {
            Some(ConstValue::List(items)) => items.len(),
            Some(ConstValue::Null) | None => 0,
            Some(_) => 1,
        },
        Value::Null => 0,
        _ => 1,
    }
}

/// In a websocket connection's data: whose budget its queries and mutations draw on, the
/// credential it authenticated with (verified again before an operation once it has aged), and
/// where it connects from (for the audit note of each operation).
pub struct SocketCharge {
    pub principal: Principal,
    pub limiter: Arc<RateLimiter>,
    pub credential: Arc<HeldCredential>,
    pub client_ip: Option<IpAddr>,
}

/// For each operation sent over a websocket: checks the connection's credential, the event cap
/// and the caller's budget (subscriptions are capped instead), and records the operation in the
/// service's own trail with its outcome, as HTTP requests are. (Over HTTP the handler does all
/// of this before the schema runs.)
pub struct SocketOperations;

impl ExtensionFactory for SocketOperations {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SocketOperationsExtension::default())
    }
}

/// One operation's extension: the name its `prepare_request` found, for the note its stream
/// leaves when it ends.
#[derive(Default)]
struct SocketOperationsExtension {
    name: Arc<Mutex<Option<String>>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for SocketOperationsExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Some(charge) = ctx.data_opt::<SocketCharge>() {
            // Parsed here once: the schema goes on with this parse. The variables are set
            // aside meanwhile rather than copied (they may hold a whole batch).
            let name = request.operation_name.clone();
            let variables = std::mem::take(&mut request.variables);
            let operation = classify(request.parsed_query().ok(), name.as_deref(), &variables);
            request.variables = variables;
            *self.name.lock().unwrap_or_else(|p| p.into_inner()) = Some(operation.name.clone());
            let refused = match charge.credential.check().await {
                Err(reason) => Some(ApiError::Unauthenticated(reason)),
                Ok(()) => match operation.check_event_cap() {
                    Err(error) => Some(error),
                    Ok(()) if operation.subscription => None,
                    Ok(()) => charge
                        .limiter
                        .check(&charge.principal, operation.kind, operation.cost())
                        .await
                        .err()
                        .map(ApiError::from),
                },
            };
            if let Some(error) = refused {
                return Err(error.extend().into_server_error(Pos::default()));
            }
        }
        next.run(ctx, request).await
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let stream = next.run(ctx, stream);
        let (Some(charge), Some(services)) = (
            ctx.data_opt::<SocketCharge>(),
            ctx.data_opt::<Arc<Services>>(),
        ) else {
            return stream;
        };
        let mut note = OperationNote {
            trail: services.trail.clone(),
            name: Arc::clone(&self.name),
            caller: (
                charge.principal.tenant.clone(),
                charge.principal.credential.clone(),
            ),
            client_ip: charge.client_ip,
            started: Instant::now(),
            error_codes: Vec::new(),
        };
        stream.inspect(move |response| note.add(response)).boxed()
    }
}

/// What one websocket operation leaves in the trail, recorded when its stream ends: at once for
/// a query or mutation, when it is stopped (or its socket closes) for a subscription.
struct OperationNote {
    trail: OwnTrail,
    name: Arc<Mutex<Option<String>>>,
    caller: (Tenant, Credential),
    client_ip: Option<IpAddr>,
    started: Instant,
    error_codes: Vec<String>,
}

impl OperationNote {
    fn add(&mut self, response: &Response) {
        for error in &response.errors {
            let code = match error.extensions.as_ref().and_then(|x| x.get("code")) {
                Some(async_graphql::Value::String(code)) => code.clone(),
                _ => "INTERNAL".to_owned(),
            };
            if !self.error_codes.contains(&code) {
                self.error_codes.push(code);
            }
        }
    }
}

impl Drop for OperationNote {
    fn drop(&mut self) {
        let name = self.name.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.trail.request(RequestNote {
            transport: Transport::Websocket,
            operation: name.unwrap_or_else(|| "unknown".to_owned()),
            status: OPERATION_STATUS,
            duration: self.started.elapsed(),
            caller: Some(self.caller.clone()),
            refused_caller: None,
            error_codes: std::mem::take(&mut self.error_codes),
            client_ip: self.client_ip,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_text(query: &str, operation_name: Option<&str>) -> Operation {
        classify_with(query, operation_name, serde_json::json!({}))
    }

    fn classify_with(
        query: &str,
        operation_name: Option<&str>,
        variables: serde_json::Value,
    ) -> Operation {
        let document = async_graphql::parser::parse_query(query).ok();
        classify(
            document.as_ref(),
            operation_name,
            &Variables::from_json(variables),
        )
    }

    #[test]
    fn counts_the_events_of_every_alias_and_fragment() {
        let three = serde_json::json!({ "i": [{}, {}, {}] });
        let aliased = "mutation($i: [RecordEventInput!]!) { a: recordEvents(inputs: $i) { id } b: recordEvents(inputs: $i) { id } c: recordEvent(input: {}) { id } }";
        assert_eq!(classify_with(aliased, None, three.clone()).events, 7);
        let inline = "mutation { recordEvents(inputs: [{}, {}]) { id } ... on Mutation { x: recordEvents(inputs: [{}]) { id } } }";
        assert_eq!(classify_with(inline, None, three.clone()).events, 3);
        let spread = "mutation($i: [RecordEventInput!]!) { ...F ...F } fragment F on Mutation { recordEvents(inputs: $i) { id } }";
        assert_eq!(classify_with(spread, None, three.clone()).events, 6);
        let cyclic = "mutation { ...F } fragment F on Mutation { ...F }";
        assert!(classify_with(cyclic, None, three)
            .check_event_cap()
            .is_err());
        let op = classify_text("{ auditEvents { edges { cursor } } }", None);
        assert_eq!((op.events, op.cost()), (0, 1));
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
