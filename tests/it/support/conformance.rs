//! Checks HTTP answers against an OpenAPI 3.0 document: LaunchDarkly's (for
//! the simulator) and our own served one (for the internal API). An answer
//! whose status the operation does not list, or whose body does not fit the
//! schema given for that status, fails the test.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use crate::simulator::Answer;

/// OpenAPI 3.0 schema → JSON Schema draft 7: component refs point into
/// `definitions`, `nullable` becomes a `null` type, documentation-only keywords go.
fn to_json_schema(schema: &Value, strict: bool) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                match key.as_str() {
                    "$ref" => {
                        let target = value.as_str().unwrap();
                        let name = target
                            .strip_prefix("#/components/schemas/")
                            .unwrap_or_else(|| panic!("unexpected $ref {target}"));
                        out.insert(key.clone(), json!(format!("#/definitions/{name}")));
                    }
                    "example" | "examples" | "nullable" | "discriminator" | "xml"
                    | "externalDocs" | "deprecated" => {}
                    _ => {
                        out.insert(key.clone(), to_json_schema(value, strict));
                    }
                }
            }
            let nullable = map
                .get("nullable")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            // Strict: an object that lists its properties has no others.
            if strict && out.contains_key("properties") && !out.contains_key("additionalProperties")
            {
                out.insert("additionalProperties".to_owned(), json!(false));
            }
            if !nullable {
                return Value::Object(out);
            }
            match out.get("type").cloned() {
                Some(Value::String(t)) => {
                    out.insert("type".to_owned(), json!([t, "null"]));
                    Value::Object(out)
                }
                // `$ref` with `nullable` (or no type): either the schema or null.
                _ => json!({"anyOf": [Value::Object(out), {"type": "null"}]}),
            }
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| to_json_schema(i, strict)).collect())
        }
        other => other.clone(),
    }
}

/// Checks answers against the document and remembers which (operation, status)
/// pairs were seen.
pub struct Conformance {
    pub spec: Value,
    strict: bool,
    definitions: Value,
    operations: HashMap<String, Value>,
    seen: BTreeSet<(String, u16)>,
}

impl Conformance {
    /// Checks against `spec`, as it is (extra fields allowed, as in
    /// LaunchDarkly's document).
    pub fn new(spec: Value) -> Self {
        Self::build(spec, false)
    }

    /// Checks against `spec`, refusing fields an object schema does not list:
    /// for our own document, which must describe every field we send.
    pub fn strict(spec: Value) -> Self {
        Self::build(spec, true)
    }

    fn build(spec: Value, strict: bool) -> Self {
        let definitions = to_json_schema(&spec["components"]["schemas"], strict);
        let mut operations = HashMap::new();
        for (_, item) in spec["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                    operations.insert(id.to_owned(), op.clone());
                }
            }
        }
        Self {
            spec,
            strict,
            definitions,
            operations,
            seen: BTreeSet::new(),
        }
    }

    /// `answer` is a documented answer of `operation` and its body fits the schema.
    #[track_caller]
    pub fn check(&mut self, operation: &str, answer: &Answer) {
        let op = self
            .operations
            .get(operation)
            .unwrap_or_else(|| panic!("no operation {operation} in the spec"));
        let status = answer.status.as_u16();
        let Some(response) = op["responses"].get(status.to_string()) else {
            panic!(
                "{operation} answered {status}, which the spec does not list for it (documented: {:?}); body: {}",
                op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .collect::<Vec<_>>(),
                answer.body
            );
        };
        match response.pointer("/content/application~1json/schema") {
            None => assert_eq!(
                answer.body,
                Value::Null,
                "{operation} {status} has no body in the spec"
            ),
            Some(schema) => {
                let mut root = to_json_schema(schema, self.strict);
                root["definitions"] = self.definitions.clone();
                root["$schema"] = json!("http://json-schema.org/draft-07/schema#");
                let validator = jsonschema::draft7::new(&root).unwrap();
                let errors: Vec<String> = validator
                    .iter_errors(&answer.body)
                    .map(|e| format!("{} at {}", e, e.instance_path))
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{operation} {status} does not match the spec: {errors:#?}\nbody: {:#}",
                    answer.body
                );
                assert_eq!(
                    answer
                        .header("content-type")
                        .map(|c| c.starts_with("application/json")),
                    Some(true),
                    "{operation} {status} is JSON"
                );
            }
        }
        self.seen.insert((operation.to_owned(), status));
    }

    /// The errors of `value` against component schema `name` (none: it fits).
    /// For request bodies: what a client sends must fit the document too.
    pub fn schema_errors(&self, name: &str, value: &Value) -> Vec<String> {
        let mut root = json!({"$ref": format!("#/definitions/{name}")});
        root["definitions"] = self.definitions.clone();
        root["$schema"] = json!("http://json-schema.org/draft-07/schema#");
        let validator = jsonschema::draft7::new(&root).unwrap();
        validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect()
    }

    /// Every pair in `expected` was seen.
    #[track_caller]
    pub fn assert_covered(&self, expected: &[(&str, &[u16])]) {
        for (op, statuses) in expected {
            for status in *statuses {
                assert!(
                    self.seen.contains(&((*op).to_owned(), *status)),
                    "{op} {status} was never exercised; seen: {:?}",
                    self.seen
                );
            }
        }
    }
}
