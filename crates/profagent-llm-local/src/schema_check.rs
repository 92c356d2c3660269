//! A small JSON-schema checker for the subset that plan schemas use, run on every constrained
//! answer.
//!
//! Why: llama.cpp's schema-to-grammar conversion enforces structure (objects, required keys,
//! arrays, enums, string lengths, integer ranges) but not the `minimum`/`maximum` of
//! `"type": "number"`, so a grammar-valid answer can still say `"prune_ratio": 7.5`. Checking
//! here lets `LocalLlm::chat` retry instead of handing out an answer that breaks the schema.
//! Keywords outside the subset are ignored (the caller's own validation still runs).

use serde_json::Value;

/// Every way `value` breaks `schema`, as `"/json/pointer: problem"` strings; empty when valid.
pub fn schema_violations(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, schema, value, "", &mut out);
    out
}

fn check(root: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        match resolve(root, reference) {
            Some(target) => check(root, target, value, at, out),
            None => out.push(format!("{at}: unresolvable $ref {reference}")),
        }
        return;
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let matches = options
                .iter()
                .any(|option| schema_violations_at(root, option, value).is_empty());
            if !matches {
                out.push(format!("{at}: matches none of {key}"));
            }
            return;
        }
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            check(root, part, value, at, out);
        }
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            out.push(format!("{at}: {value} is not the constant {constant}"));
        }
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            out.push(format!(
                "{at}: {value} is not one of {}",
                Value::from(options.clone())
            ));
        }
        return;
    }
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<&str> = match kind {
            Value::String(single) => vec![single.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !kinds.is_empty() && !kinds.iter().any(|kind| has_type(value, kind)) {
            out.push(format!(
                "{at}: expected {}, found {value}",
                kinds.join(" or ")
            ));
            return;
        }
    }
    match value {
        Value::Number(number) => check_number(schema, number.as_f64().unwrap_or(f64::NAN), at, out),
        Value::String(text) => check_length(
            schema,
            text.chars().count(),
            "minLength",
            "maxLength",
            at,
            out,
        ),
        Value::Array(items) => {
            check_length(schema, items.len(), "minItems", "maxItems", at, out);
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    check(root, item_schema, item, &format!("{at}/{index}"), out);
                }
            }
        }
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = name.as_str() {
                    if !fields.contains_key(name) {
                        out.push(format!("{at}: missing required property {name:?}"));
                    }
                }
            }
            for (name, field) in fields {
                let path = format!("{at}/{name}");
                match properties.and_then(|properties| properties.get(name)) {
                    Some(field_schema) => check(root, field_schema, field, &path, out),
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            out.push(format!("{path}: property not allowed"))
                        }
                        Some(extra @ Value::Object(_)) => check(root, extra, field, &path, out),
                        _ => {}
                    },
                }
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

fn schema_violations_at(root: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(root, schema, value, "", &mut out);
    out
}

/// Resolves a local `#/a/b` reference.
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    }
}

fn check_number(
    schema: &serde_json::Map<String, Value>,
    number: f64,
    at: &str,
    out: &mut Vec<String>,
) {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(minimum) = bound("minimum") {
        if number < minimum {
            out.push(format!("{at}: {number} is below the minimum {minimum}"));
        }
    }
    if let Some(maximum) = bound("maximum") {
        if number > maximum {
            out.push(format!("{at}: {number} is above the maximum {maximum}"));
        }
    }
    if let Some(minimum) = bound("exclusiveMinimum") {
        if number <= minimum {
            out.push(format!(
                "{at}: {number} is not above the exclusive minimum {minimum}"
            ));
        }
    }
    if let Some(maximum) = bound("exclusiveMaximum") {
        if number >= maximum {
            out.push(format!(
                "{at}: {number} is not below the exclusive maximum {maximum}"
            ));
        }
    }
}

fn check_length(
    schema: &serde_json::Map<String, Value>,
    length: usize,
    min_key: &str,
    max_key: &str,
    at: &str,
    out: &mut Vec<String>,
) {
    let count = |key: &str| schema.get(key).and_then(Value::as_u64);
    if let Some(minimum) = count(min_key) {
        if (length as u64) < minimum {
            out.push(format!(
                "{at}: length {length} is below {min_key} {minimum}"
            ));
        }
    }
    if let Some(maximum) = count(max_key) {
        if (length as u64) > maximum {
            out.push(format!(
                "{at}: length {length} is above {max_key} {maximum}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan_schema() -> Value {
        json!({
            "type": "object",
            "required": ["version", "layers"],
            "additionalProperties": false,
            "properties": {
                "version": {"const": "1"},
                "layers": {"type": "array", "maxItems": 2, "items": {
                    "type": "object",
                    "required": ["name", "prune_ratio", "quant"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 8},
                        "prune_ratio": {"type": "number", "minimum": 0, "maximum": 0.9},
                        "quant": {"enum": ["none", "int4"]}
                    }
                }}
            }
        })
    }

    #[test]
    fn accepts_a_valid_plan() {
        let plan = json!({"version": "1", "layers": [{"name": "conv1", "prune_ratio": 0.5, "quant": "int4"}]});
        assert_eq!(
            schema_violations(&plan_schema(), &plan),
            Vec::<String>::new()
        );
    }

    #[test]
    fn reports_every_broken_rule_with_its_path() {
        let plan = json!({"version": "2", "extra": 1, "layers": [
            {"name": "a_very_long_name", "prune_ratio": 1.5, "quant": "int8"},
            {"prune_ratio": "half", "quant": "none"},
            {"name": "x", "prune_ratio": 0, "quant": "none"}
        ]});
        let violations = schema_violations(&plan_schema(), &plan);
        let expected_fragments = [
            "/version: \"2\" is not the constant",
            "/extra: property not allowed",
            "/layers: length 3 is above maxItems 2",
            "/layers/0/name: length 16",
            "/layers/0/prune_ratio: 1.5 is above the maximum 0.9",
            "/layers/0/quant: \"int8\" is not one of",
            "/layers/1: missing required property \"name\"",
            "/layers/1/prune_ratio: expected number",
        ];
        for fragment in expected_fragments {
            assert!(
                violations
                    .iter()
                    .any(|violation| violation.starts_with(fragment)),
                "no violation starting with {fragment:?} in {violations:#?}"
            );
        }
        assert_eq!(
            violations.len(),
            expected_fragments.len(),
            "{violations:#?}"
        );
    }

    #[test]
    fn all_of_parts_are_all_checked() {
        let schema = json!({
            "definitions": {"unit": {"oneOf": [{"enum": ["channels"]}, {"enum": ["heads"]}]}},
            "properties": {"unit": {"allOf": [{"$ref": "#/definitions/unit"}], "default": "channels"}}
        });
        assert!(schema_violations(&schema, &json!({"unit": "heads"})).is_empty());
        let violations = schema_violations(&schema, &json!({"unit": {}}));
        assert_eq!(violations, vec!["/unit: matches none of oneOf".to_string()]);
    }

    #[test]
    fn follows_local_refs_and_any_of() {
        let schema = json!({
            "$defs": {"ratio": {"type": "number", "minimum": 0, "maximum": 1}},
            "anyOf": [{"$ref": "#/$defs/ratio"}, {"type": "null"}]
        });
        assert!(schema_violations(&schema, &json!(0.3)).is_empty());
        assert!(schema_violations(&schema, &Value::Null).is_empty());
        assert_eq!(schema_violations(&schema, &json!(3)).len(), 1);
    }
}
