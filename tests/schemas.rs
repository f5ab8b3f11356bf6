//! The checked-in JSON Schemas of the files the tool writes are the ones its types generate:
//! a change to a result type that is not also a change to `schemas/` fails here.

mod common;

use std::path::Path;

fn generated(of: &str) -> serde_json::Value {
    let out = common::bin(30)
        .args(["schema", "--of", of])
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn checked_in(file: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn the_checked_in_schemas_are_the_generated_ones() {
    for (of, file) in [
        ("result", "result.schema.json"),
        ("sweep-index", "sweep-index.schema.json"),
    ] {
        assert!(
            generated(of) == checked_in(file),
            "schemas/{file} is stale: run `cargo run -- schema --of {of} > schemas/{file}` and commit it"
        );
    }
}

#[test]
fn the_result_schema_rejects_what_is_not_a_result() {
    let schema = common::result_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(!validator.is_valid(&serde_json::json!({"hello": 1})));
    // A summary figure must be a number or null, never text.
    let bad = serde_json::json!({"summary": {"mean_ttft_ms": "fast"}});
    assert!(!validator.is_valid(&bad));
}
