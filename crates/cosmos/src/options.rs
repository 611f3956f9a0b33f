//! A package's options: the defaults its `config` schema declares, merged with what the user
//! sends, checked against the schema (JSON Schema draft 4, as Universe writes it).
//!
//! As Cosmos does it: the defaults are the `default` of every property, descending into
//! object properties; the user's options are merged over them key by key (objects merge,
//! anything else replaces); the merged document must validate, and a mismatch answers
//! `JsonSchemaMismatch` with one entry per error.

use serde_json::{json, Map, Value};

use crate::error::CosmosError;

/// Deepest object nesting read for defaults (a hostile schema cannot recurse further).
const MAX_DEPTH: usize = 32;

/// The defaults a schema declares, as an options document.
pub fn defaults(schema: &Value) -> Map<String, Value> {
    defaults_at(schema, 0)
}

fn defaults_at(schema: &Value, depth: usize) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return out;
    };
    if depth >= MAX_DEPTH {
        return out;
    }
    for (name, property) in properties {
        if let Some(default) = property.get("default") {
            out.insert(name.clone(), default.clone());
        } else if property.get("properties").is_some() {
            let nested = defaults_at(property, depth + 1);
            if !nested.is_empty() {
                out.insert(name.clone(), Value::Object(nested));
            }
        }
    }
    out
}

/// `over` merged onto `base`: objects key by key, anything else replaced.
pub fn merge(base: &Map<String, Value>, over: &Map<String, Value>) -> Map<String, Value> {
    let mut out = base.clone();
    for (key, value) in over {
        let merged = match (out.get(key), value) {
            (Some(Value::Object(b)), Value::Object(o)) => Value::Object(merge(b, o)),
            _ => value.clone(),
        };
        out.insert(key.clone(), merged);
    }
    out
}

/// The user's options as an object (`null` or absent is none).
pub fn user_options(options: Option<&Value>) -> Result<Map<String, Value>, CosmosError> {
    match options {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(mismatch(vec![json!({
            "instance": {"pointer": ""},
            "keyword": "type",
            "message": "the options are not a JSON object",
        })])),
    }
}

fn mismatch(errors: Vec<Value>) -> CosmosError {
    CosmosError::new("JsonSchemaMismatch", "Options JSON failed validation")
        .data(json!({"errors": errors}))
}

/// One validation error as Cosmos reports it (the fields of its JSON schema library's
/// reports, which the DC/OS CLI prints: `found`, `expected`, `minimum`, `missing`,
/// `unwanted`, and the option's `instance.pointer`).
fn report(schema: &Value, error: &jsonschema::ValidationError<'_>) -> Value {
    use jsonschema::error::ValidationErrorKind as Kind;
    let schema_pointer = error.schema_path().as_str().to_string();
    let mut entry = json!({
        "level": "error",
        "domain": "validation",
        "keyword": error.kind().keyword(),
        "schema": {"loadingURI": "#", "pointer": schema_pointer},
        "instance": {"pointer": error.instance_path().as_str()},
        "message": error.to_string(),
    });
    match error.kind() {
        Kind::Type { .. } => {
            entry["found"] = json!(dcos_serve::json::type_name(error.instance()));
            let expected = match schema.pointer(&schema_pointer) {
                Some(Value::String(t)) => vec![Value::String(t.clone())],
                Some(Value::Array(types)) => types.clone(),
                _ => Vec::new(),
            };
            entry["expected"] = Value::Array(expected);
        }
        Kind::Required { property } => entry["missing"] = json!([property]),
        Kind::AdditionalProperties { unexpected } => entry["unwanted"] = json!(unexpected),
        Kind::Minimum { limit } | Kind::ExclusiveMinimum { limit } => {
            entry["minimum"] = limit.clone();
            entry["found"] = error.instance().as_ref().clone();
        }
        Kind::Maximum { limit } | Kind::ExclusiveMaximum { limit } => {
            entry["maximum"] = limit.clone();
            entry["found"] = error.instance().as_ref().clone();
        }
        _ => {}
    }
    entry
}

/// The defaults of `schema` with `user` merged over them, checked against `schema`
/// (unless there is nothing to check, as in Cosmos). A package without a schema takes no
/// options: `OptionsNotAllowed`.
pub fn resolve(
    schema: Option<&Value>,
    user: &Map<String, Value>,
) -> Result<Map<String, Value>, CosmosError> {
    let Some(schema) = schema else {
        if user.is_empty() {
            return Ok(Map::new());
        }
        return Err(CosmosError::new(
            "OptionsNotAllowed",
            "No options are allowed for this package",
        ));
    };
    let merged = merge(&defaults(schema), user);
    if merged.is_empty() {
        return Ok(merged);
    }
    // Universe names its meta-schema `http://json-schema.org/schema#`, which is draft 4 by
    // its keywords but no draft by its URI: the draft is set, not looked up.
    let mut schema = schema.clone();
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
    }
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&schema)
        .map_err(|e| {
            CosmosError::new(
                "JsonSchemaMismatch",
                format!("The package's option schema is not a valid JSON schema: {e}"),
            )
        })?;
    let instance = Value::Object(merged);
    let errors: Vec<Value> = validator
        .iter_errors(&instance)
        .map(|e| report(&schema, &e))
        .collect();
    if !errors.is_empty() {
        return Err(mismatch(errors));
    }
    let Value::Object(merged) = instance else {
        unreachable!("built as an object above")
    };
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "$schema": "http://json-schema.org/schema#",
            "type": "object",
            "properties": {
                "service": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "default": "web", "pattern": "^[a-z]+$"},
                        "cpus": {"type": "number", "default": 0.1, "minimum": 0.01},
                        "extra": {"type": "object", "properties": {"x": {"type": "integer", "default": 1}}}
                    },
                    "required": ["name"],
                    "additionalProperties": false
                },
                "plain": {"type": "string"}
            }
        })
    }

    #[test]
    fn defaults_descend_into_objects() {
        assert_eq!(
            Value::Object(defaults(&schema())),
            json!({"service": {"name": "web", "cpus": 0.1, "extra": {"x": 1}}})
        );
    }

    #[test]
    fn user_options_merge_over_defaults_and_are_checked() {
        let user = json!({"service": {"cpus": 2, "extra": {"x": 5}}});
        let merged = resolve(Some(&schema()), user.as_object().unwrap()).unwrap();
        assert_eq!(
            Value::Object(merged),
            json!({"service": {"name": "web", "cpus": 2, "extra": {"x": 5}}})
        );
        let bad = json!({"service": {"cpus": 0, "name": "BAD", "nope": true}});
        let err = resolve(Some(&schema()), bad.as_object().unwrap()).unwrap_err();
        assert_eq!(err.kind, "JsonSchemaMismatch");
        let errors = err.data.unwrap()["errors"].as_array().unwrap().clone();
        let at = |pointer: &str| {
            errors
                .iter()
                .find(|e| e["instance"]["pointer"] == pointer)
                .unwrap_or_else(|| panic!("no error at {pointer}: {errors:?}"))
                .clone()
        };
        assert_eq!(at("/service/cpus")["minimum"], 0.01);
        assert_eq!(at("/service/cpus")["found"], 0);
        assert_eq!(at("/service/name")["keyword"], "pattern");
        assert_eq!(at("/service")["unwanted"], json!(["nope"]));
        let wrong_type = json!({"service": {"cpus": "many"}});
        let err = resolve(Some(&schema()), wrong_type.as_object().unwrap()).unwrap_err();
        let entry = &err.data.unwrap()["errors"][0];
        assert_eq!(
            (entry["found"].as_str(), &entry["expected"]),
            (Some("string"), &json!(["number"]))
        );
    }

    #[test]
    fn packages_without_a_schema_take_no_options() {
        assert!(resolve(None, &Map::new()).unwrap().is_empty());
        let user = json!({"a": 1});
        assert_eq!(
            resolve(None, user.as_object().unwrap()).unwrap_err().kind,
            "OptionsNotAllowed"
        );
        assert_eq!(
            user_options(Some(&json!([1]))).unwrap_err().kind,
            "JsonSchemaMismatch"
        );
        assert!(user_options(Some(&Value::Null)).unwrap().is_empty());
    }

    #[test]
    fn a_schema_that_is_not_one_is_an_error_not_a_panic() {
        let user = json!({"a": 1});
        let user = user.as_object().unwrap();
        let bad = json!({"type": "object", "properties": {"a": {"type": 5}}});
        assert_eq!(
            resolve(Some(&bad), user).unwrap_err().kind,
            "JsonSchemaMismatch"
        );
        let remote = json!({"$ref": "http://127.0.0.1:1/schema.json"});
        assert!(resolve(Some(&remote), user).is_err());
        // Nothing to check (no defaults, no options): no validation, as in Cosmos.
        assert!(resolve(Some(&bad), &Map::new()).unwrap().is_empty());
    }
}
