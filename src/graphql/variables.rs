//! Variables a client left out. GraphQL's rule (CoerceArgumentValues): an argument whose
//! variable was not provided is as if it were not given, so it takes its default; async-graphql
//! passes null instead, which a non-null argument with a default refuses. Clients leave out
//! variables they have no value for (Apollo Client drops `undefined` ones), so before a request
//! runs, every argument and input-object field whose value is a left-out, nullable variable
//! without a default of its own is taken out of the document, and so is the variable's
//! definition where nothing uses it any more.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Request, ServerResult, Variables};
use async_graphql_value::Value;

/// Takes out of `document` what the left-out variables `names` stood for.
fn omit_left_out(document: &mut ExecutableDocument, names: &HashSet<Name>) {
    // Every operation is stripped alike; only the one that runs is executed.
    let mut operations: Vec<&mut OperationDefinition> = match &mut document.operations {
        DocumentOperations::Single(op) => vec![&mut op.node],
        DocumentOperations::Multiple(ops) => ops.values_mut().map(|op| &mut op.node).collect(),
    };
    let mut stripped = HashSet::new();
    for op in operations.iter_mut() {
        strip_set(&mut op.selection_set.node, names, &mut stripped);
    }
    for fragment in document.fragments.values_mut() {
        strip_set(&mut fragment.node.selection_set.node, names, &mut stripped);
    }
    let mut used = HashSet::new();
    for op in &operations {
        uses_in_set(&op.selection_set.node, &mut used);
    }
    for fragment in document.fragments.values() {
        uses_in_set(&fragment.node.selection_set.node, &mut used);
    }
    for op in operations {
        op.variable_definitions
            .retain(|d| !stripped.contains(&d.node.name.node) || used.contains(&d.node.name.node));
    }
}

/// Every variable a selection set still refers to, in arguments and directives.
fn uses_in_set(set: &SelectionSet, used: &mut HashSet<Name>) {
    for item in &set.items {
        let (directives, inner) = match &item.node {
            Selection::Field(field) => {
                for (_, value) in &field.node.arguments {
                    uses_in_value(&value.node, used);
                }
                (&field.node.directives, Some(&field.node.selection_set.node))
            }
            Selection::InlineFragment(fragment) => (
                &fragment.node.directives,
                Some(&fragment.node.selection_set.node),
            ),
            Selection::FragmentSpread(spread) => (&spread.node.directives, None),
        };
        for directive in directives {
            for (_, value) in &directive.node.arguments {
                uses_in_value(&value.node, used);
            }
        }
        if let Some(inner) = inner {
            uses_in_set(inner, used);
        }
    }
}

fn uses_in_value(value: &Value, used: &mut HashSet<Name>) {
    match value {
        Value::Variable(name) => {
            used.insert(name.clone());
        }
        Value::Object(fields) => fields.values().for_each(|v| uses_in_value(v, used)),
        Value::List(items) => items.iter().for_each(|v| uses_in_value(v, used)),
        _ => {}
    }
}

/// The nullable variables without a default that the request did not provide, of the operation
/// that runs (`operation_name`, or the only one).
fn left_out(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) -> HashSet<Name> {
    let operation: Option<&OperationDefinition> = match &document.operations {
        DocumentOperations::Single(op) => Some(&op.node),
        DocumentOperations::Multiple(ops) => match operation_name {
            Some(name) => ops.get(name).map(|op| &op.node),
            None if ops.len() == 1 => ops.values().next().map(|op| &op.node),
            None => None,
        },
    };
    operation
        .map(|op| {
            op.variable_definitions
                .iter()
                .map(|d| &d.node)
                .filter(|d| {
                    d.default_value.is_none()
                        && d.var_type.node.nullable
                        && !variables.contains_key(&d.name.node)
                })
                .map(|d| d.name.node.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Takes out what stood for `names`, noting in `stripped` which it took.
fn strip_set(set: &mut SelectionSet, names: &HashSet<Name>, stripped: &mut HashSet<Name>) {
    for item in &mut set.items {
        match &mut item.node {
            Selection::Field(field) => {
                let field = &mut field.node;
                field.arguments.retain_mut(|(_, value)| {
                    strip_value(&mut value.node, names, stripped);
                    !take(&value.node, names, stripped)
                });
                strip_set(&mut field.selection_set.node, names, stripped);
            }
            Selection::InlineFragment(fragment) => {
                strip_set(&mut fragment.node.selection_set.node, names, stripped)
            }
            Selection::FragmentSpread(_) => {}
        }
    }
}

/// Input-object fields of left-out variables go; list items stay (they become null, as GraphQL
/// has it).
fn strip_value(value: &mut Value, names: &HashSet<Name>, stripped: &mut HashSet<Name>) {
    match value {
        Value::Object(fields) => {
            fields.retain(|_, v| !take(v, names, stripped));
            for v in fields.values_mut() {
                strip_value(v, names, stripped);
            }
        }
        Value::List(items) => {
            for item in items {
                strip_value(item, names, stripped);
            }
        }
        _ => {}
    }
}

/// Whether `value` is a left-out variable (noted as taken).
fn take(value: &Value, names: &HashSet<Name>, stripped: &mut HashSet<Name>) -> bool {
    match value {
        Value::Variable(name) if names.contains(name) => {
            stripped.insert(name.clone());
            true
        }
        _ => false,
    }
}

/// Applies [`omit_left_out`] to every request, over HTTP and websocket alike; the document is
/// copied only when something is to be taken out.
pub struct OmitLeftOutVariables;

impl ExtensionFactory for OmitLeftOutVariables {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OmitLeftOutVariables)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for OmitLeftOutVariables {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let name = request.operation_name.clone();
        let variables = std::mem::take(&mut request.variables);
        if let Ok(document) = request.parsed_query() {
            let names = left_out(document, name.as_deref(), &variables);
            if !names.is_empty() {
                let mut document = document.clone();
                omit_left_out(&mut document, &names);
                request.set_parsed_query(document);
            }
        }
        request.variables = variables;
        next.run(ctx, request).await
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn arguments(document: &ExecutableDocument) -> Vec<String> {
        let DocumentOperations::Single(op) = &document.operations else {
            panic!("one operation");
        };
        let Selection::Field(field) = &op.node.selection_set.node.items[0].node else {
            panic!("a field");
        };
        field
            .node
            .arguments
            .iter()
            .map(|(name, value)| format!("{}={}", name.node, value.node))
            .collect()
    }

    #[test]
    fn only_left_out_nullable_variables_without_defaults_go() {
        let text = "query($first: Int, $after: String, $given: Int, $deflt: Int = 3, $must: Int!, $f: String) \
                    { events(first: $first, after: $after, a: $given, b: $deflt, c: $must, filter: { x: $f, y: 1 }, list: [$f]) { id } }";
        let mut document = parse_query(text).unwrap();
        let variables = Variables::from_json(serde_json::json!({ "given": 1 }));
        let names = left_out(&document, None, &variables);
        omit_left_out(&mut document, &names);
        assert_eq!(
            arguments(&document),
            vec![
                "a=$given",
                "b=$deflt",
                "c=$must",
                "filter={y: 1}",
                "list=[$f]"
            ]
        );
    }
}
