//! One check for every string a request passes as an argument, however deep in an input object
//! or list and whether written inline or sent as a variable: text PostgreSQL cannot hold (NUL)
//! is refused as BAD_USER_INPUT naming the argument's path (`filter.actorIds.1`), before any
//! resolver runs, instead of failing in the database as an internal error.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, Name, Pos, Positioned, ServerResult, Variables};
use async_graphql_value::{ConstValue, Value};

use super::error::ApiError;

pub struct StorableArguments;

impl ExtensionFactory for StorableArguments {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(StorableArgumentsExtension)
    }
}

struct StorableArgumentsExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for StorableArgumentsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let check = Check { variables };
        for (_, operation) in document.operations.iter() {
            check.selection(&operation.node.selection_set, 0)?;
        }
        for fragment in document.fragments.values() {
            check.selection(&fragment.node.selection_set, 0)?;
        }
        Ok(document)
    }
}

/// Selection sets nested deeper than this are refused by the depth limit anyway.
const MAX_NESTING: usize = 64;

struct Check<'a> {
    variables: &'a Variables,
}

impl Check<'_> {
    fn selection(&self, set: &Positioned<SelectionSet>, depth: usize) -> ServerResult<()> {
        if depth > MAX_NESTING {
            return Ok(());
        }
        for item in &set.node.items {
            match &item.node {
                Selection::Field(field) => {
                    for (name, value) in &field.node.arguments {
                        self.value(&value.node, name.node.to_string(), value.pos)?;
                    }
                    self.selection(&field.node.selection_set, depth + 1)?;
                }
                Selection::InlineFragment(fragment) => {
                    self.selection(&fragment.node.selection_set, depth + 1)?;
                }
                // Fragments are checked once each, on their own.
                Selection::FragmentSpread(_) => {}
            }
        }
        Ok(())
    }

    fn value(&self, value: &Value, path: String, pos: Pos) -> ServerResult<()> {
        match value {
            Value::Variable(name) => match self.variables.get(&Name::new(name)) {
                Some(value) => const_value(value, path, pos),
                None => Ok(()),
            },
            Value::String(text) => text_ok(text, &path, pos),
            Value::List(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| self.value(item, format!("{path}.{i}"), pos)),
            Value::Object(fields) => fields
                .iter()
                .try_for_each(|(key, item)| self.value(item, format!("{path}.{key}"), pos)),
            _ => Ok(()),
        }
    }
}

fn const_value(value: &ConstValue, path: String, pos: Pos) -> ServerResult<()> {
    match value {
        ConstValue::String(text) => text_ok(text, &path, pos),
        ConstValue::List(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| const_value(item, format!("{path}.{i}"), pos)),
        ConstValue::Object(fields) => fields
            .iter()
            .try_for_each(|(key, item)| const_value(item, format!("{path}.{key}"), pos)),
        _ => Ok(()),
    }
}

fn text_ok(text: &str, path: &str, pos: Pos) -> ServerResult<()> {
    if !text.contains('\0') {
        return Ok(());
    }
    let error = ApiError::bad_input(path, "must not contain NUL characters (\\u0000)");
    Err(error.extend().into_server_error(pos))
}
