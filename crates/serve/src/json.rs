//! What the APIs share in answering a JSON body that has the wrong shape.

use serde_json::Value;

/// A JSON value's type, as JSON Schema names it (`integer` for whole numbers).
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_schema_names() {
        let names: Vec<&str> = serde_json::from_str::<Vec<serde_json::Value>>(
            r#"[null, true, 1, -1, 1.5, "s", [], {}]"#,
        )
        .unwrap()
        .iter()
        .map(super::type_name)
        .collect();
        assert_eq!(
            names,
            ["null", "boolean", "integer", "integer", "number", "string", "array", "object"]
        );
    }
}
