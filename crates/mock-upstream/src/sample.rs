//! A value that fits a JSON Schema, for the echo model's forced tool calls and
//! structured answers: every property is filled (`enum`/`const` take their first value,
//! strings are `"mock"`, numbers 1, booleans true, arrays one item), `$ref`s into the
//! root's `$defs` are followed, unions take their first branch. Deterministic.

use serde_json::{json, Map, Value};

/// A value fitting `schema`.
pub(crate) fn sample(schema: &Value) -> Value {
    walk(schema, schema, 0)
}

fn walk(schema: &Value, root: &Value, depth: u32) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    if let Some(v) = schema.get("const") {
        return v.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let pointer = target.trim_start_matches('#');
        return match root.pointer(pointer) {
            Some(s) => walk(s, root, depth + 1),
            None => json!({}),
        };
    }
    for union in ["anyOf", "oneOf", "allOf"] {
        let branches = schema.get(union).and_then(Value::as_array);
        if let Some(first) = branches.and_then(|b| b.iter().find(|s| s["type"] != "null")) {
            return walk(first, root, depth + 1);
        }
    }
    let kind = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "object",
    };
    match kind {
        "string" => Value::from("mock"),
        "integer" => Value::from(1),
        "number" => Value::from(1.5),
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        "array" => {
            let items = schema
                .get("items")
                .cloned()
                .unwrap_or(json!({"type": "string"}));
            Value::Array(vec![walk(&items, root, depth + 1)])
        }
        _ => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, s) in props {
                    out.insert(name.clone(), walk(s, root, depth + 1));
                }
            }
            Value::Object(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_property() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "kind": {"enum": ["a", "b"]},
                "pet": {"$ref": "#/$defs/Pet"},
                "note": {"anyOf": [{"type": "null"}, {"type": "number"}]}
            },
            "$defs": {"Pet": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}
        });
        assert_eq!(
            sample(&schema),
            json!({"name": "mock", "age": 1, "tags": ["mock"], "kind": "a",
                   "pet": {"ok": true}, "note": 1.5})
        );
        assert_eq!(sample(&json!({"type": "object"})), json!({}));
    }
}
