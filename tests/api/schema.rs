//! The committed schema is the one the code serves, and it covers the public contract.

use std::collections::{BTreeMap, BTreeSet};

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

/// Every name in the contract, with the shape clients rely on: `Type.field(arg: T!): R!`,
/// input fields with their defaults, and enum values.
fn surface(sdl: &str) -> BTreeMap<String, String> {
    let document = parse_schema(sdl).expect("valid SDL");
    let mut surface = BTreeMap::new();
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let ty = ty.node;
        let name = ty.name.node.to_string();
        match ty.kind {
            TypeKind::Scalar => {
                surface.insert(name, "scalar".into());
            }
            TypeKind::Object(object) => {
                surface.insert(name.clone(), "type".into());
                for field in object.fields {
                    let field = field.node;
                    surface.insert(
                        format!("{name}.{}", field.name.node),
                        field.ty.node.to_string(),
                    );
                    for arg in field.arguments {
                        let arg = arg.node;
                        let default = arg
                            .default_value
                            .map(|d| format!(" = {}", d.node))
                            .unwrap_or_default();
                        surface.insert(
                            format!("{name}.{}({})", field.name.node, arg.name.node),
                            format!("{}{default}", arg.ty.node),
                        );
                    }
                }
            }
            TypeKind::InputObject(input) => {
                surface.insert(name.clone(), "input".into());
                for field in input.fields {
                    let field = field.node;
                    let default = field
                        .default_value
                        .map(|d| format!(" = {}", d.node))
                        .unwrap_or_default();
                    surface.insert(
                        format!("{name}.{}", field.name.node),
                        format!("{}{default}", field.ty.node),
                    );
                }
            }
            TypeKind::Enum(e) => {
                let values: BTreeSet<String> = e
                    .values
                    .iter()
                    .map(|v| v.node.value.node.to_string())
                    .collect();
                surface.insert(name, format!("enum {values:?}"));
            }
            other => {
                surface.insert(name, format!("{other:?}"));
            }
        }
    }
    surface
}

#[test]
fn committed_schema_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql is committed");
    assert!(
        committed == traceledger::graphql::sdl(),
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
}

/// The project's own copy of the public contract: tests need nothing outside the repository.
const CONTRACT: &str = include_str!("../contract/api-contract.graphql");

#[test]
fn schema_covers_the_public_contract() {
    let ours = surface(&traceledger::graphql::sdl());
    let required = surface(CONTRACT);
    assert!(
        required.len() > 50,
        "the contract parsed to too little: {required:?}"
    );
    let mismatches: Vec<String> = required
        .iter()
        .filter(|(name, shape)| ours.get(*name) != Some(shape))
        .map(|(name, shape)| format!("{name}: contract {shape}, ours {:?}", ours.get(name)))
        .collect();
    assert!(
        mismatches.is_empty(),
        "schema differs from the contract:\n{}",
        mismatches.join("\n")
    );
}

/// Where the shared contract sits beside the project (as in the founders' layout), the copy must
/// still be the same text; a clone anywhere else has only the copy, and that is enough.
#[test]
fn the_contract_copy_matches_the_shared_contract_where_there_is_one() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/contract/api-contract.graphql");
    if let Ok(text) = std::fs::read_to_string(&shared) {
        assert_eq!(
            text,
            CONTRACT,
            "tests/contract/api-contract.graphql differs from {}: copy the shared one over",
            shared.display()
        );
    }
}

#[test]
fn the_check_notices_a_missing_name() {
    let contract = "type Query { a(x: Int! = 1): String! }";
    let required = surface(contract);
    let ours = surface("type Query { a(x: Int!): String! }");
    assert_ne!(required, ours, "a dropped default must be noticed");
}
