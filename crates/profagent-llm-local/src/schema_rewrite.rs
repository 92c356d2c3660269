//! Schema rewrites applied before grammar conversion, to tighten what the grammar allows while
//! keeping every answer valid against the caller's schema.
//!
//! Numeric ranges: llama.cpp's schema-to-grammar conversion ignores them for
//! `"type": "number"` (it bounds integers only).
//!
//! Each bounded number in the schema is swapped for a unique string constant before conversion;
//! in the resulting grammar that constant's literal is replaced by a rule spelling exactly the
//! decimals in range with at most [`DECIMALS`] fraction digits (`0`, `0.5`, `0.35`, ...). A
//! plan's `prune_ratio` in [0, 0.9] can then never be sampled as `7.5`. Ranges we cannot spell
//! compactly (negative bounds, exclusive bounds, over [`MAX_INTEGER_PARTS`] integer values) are
//! left to the post-generation schema check.

use serde_json::Value;

/// Fraction digits the range rule allows: two are plenty for ratios and keep the rule small.
pub const DECIMALS: u32 = 2;

/// Ranges spanning more integer values than this are not rewritten.
pub const MAX_INTEGER_PARTS: i64 = 100;

const SCALE: f64 = 10_i64.pow(DECIMALS) as f64;

/// A bounded number replaced by a placeholder constant.
#[derive(Debug, Clone, PartialEq)]
pub struct Placeholder {
    /// The GBNF literal the converter emits for the placeholder constant.
    pub literal: String,
    /// The GBNF expression (parenthesised) spelling the range.
    pub expression: String,
}

/// Returns a copy of `schema` with every rewritable bounded number replaced by a placeholder
/// constant, and the placeholders to substitute in the converted grammar.
pub fn with_placeholders(schema: &Value) -> (Value, Vec<Placeholder>) {
    let mut copy = schema.clone();
    let mut placeholders = Vec::new();
    replace(&mut copy, &mut placeholders);
    (copy, placeholders)
}

/// Annotation keywords that may sit beside a single-element `allOf` (schemars writes
/// `{"allOf": [{"$ref": ...}], "description": ..., "default": ...}` to describe a reference).
const ANNOTATIONS: &[&str] = &["description", "default", "title", "examples"];

/// Returns a copy of `schema` with every `{"allOf": [X], <annotations>}` replaced by X. llama.cpp's
/// converter turns that shape into a grammar that admits `{}` (seen with the plan schema's
/// `"unit"` field), which then fails to deserialize; X alone converts correctly.
pub fn with_single_all_of_inlined(schema: &Value) -> Value {
    let mut copy = schema.clone();
    inline_all_of(&mut copy);
    copy
}

fn inline_all_of(node: &mut Value) {
    match node {
        Value::Object(fields) => {
            let single = match fields.get("allOf").and_then(Value::as_array) {
                Some(items) if items.len() == 1 && items[0].is_object() => {
                    let only_annotations = fields
                        .keys()
                        .all(|key| key == "allOf" || ANNOTATIONS.contains(&key.as_str()));
                    only_annotations.then(|| items[0].clone())
                }
                _ => None,
            };
            if let Some(inner) = single {
                *node = inner;
                inline_all_of(node);
            } else {
                fields.values_mut().for_each(inline_all_of);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(inline_all_of),
        _ => {}
    }
}

/// Returns a copy of `schema` in which every free-text string (no `maxLength`, `enum`, `const`,
/// `pattern` or `format`) gets `maxLength: limit`. Grammar-only: it keeps a small model from
/// rambling until `max_tokens` and leaving an unfinished answer; the output stays valid against
/// the original schema, which sets no limit.
pub fn with_string_limit(schema: &Value, limit: usize) -> Value {
    let mut copy = schema.clone();
    limit_strings(&mut copy, limit);
    copy
}

fn limit_strings(node: &mut Value, limit: usize) {
    match node {
        Value::Object(fields) => {
            let free_text = fields.get("type").and_then(Value::as_str) == Some("string")
                && ["maxLength", "enum", "const", "pattern", "format"]
                    .iter()
                    .all(|key| !fields.contains_key(*key));
            if free_text {
                fields.insert("maxLength".to_string(), Value::from(limit));
            }
            fields
                .values_mut()
                .for_each(|child| limit_strings(child, limit));
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|child| limit_strings(child, limit)),
        _ => {}
    }
}

/// Substitutes the placeholders in a converted grammar; `None` if one is missing (the converter
/// spelled constants differently), in which case the caller converts the original schema.
pub fn substitute(grammar: &str, placeholders: &[Placeholder]) -> Option<String> {
    let mut out = grammar.to_string();
    for placeholder in placeholders {
        if !out.contains(&placeholder.literal) {
            return None;
        }
        out = out.replace(&placeholder.literal, &placeholder.expression);
    }
    Some(out)
}

fn replace(node: &mut Value, placeholders: &mut Vec<Placeholder>) {
    match node {
        Value::Object(fields) => {
            let expression = (fields.get("type").and_then(Value::as_str) == Some("number"))
                .then(|| {
                    let bound = |key| fields.get(key).and_then(Value::as_f64);
                    range_expression(bound("minimum")?, bound("maximum")?)
                })
                .flatten();
            match expression {
                Some(expression) => {
                    let name = format!("__profagent_number_range_{}__", placeholders.len());
                    placeholders.push(Placeholder {
                        literal: format!("\"\\\"{name}\\\"\""),
                        expression,
                    });
                    *node = serde_json::json!({ "const": name });
                }
                None => fields
                    .values_mut()
                    .for_each(|child| replace(child, placeholders)),
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|child| replace(child, placeholders)),
        _ => {}
    }
}

/// GBNF for the decimals in `[minimum, maximum]` with at most [`DECIMALS`] fraction digits and
/// no exponent, e.g. `("0" ("." ("0" [0-9]? | ... ))?)`; `None` when not expressible compactly.
pub fn range_expression(minimum: f64, maximum: f64) -> Option<String> {
    if !(minimum.is_finite() && maximum.is_finite()) || minimum < 0.0 || maximum < minimum {
        return None;
    }
    let low = (minimum * SCALE - 1e-9).ceil() as i64;
    let high = (maximum * SCALE + 1e-9).floor() as i64;
    let scale = SCALE as i64;
    if low > high || high / scale - low / scale >= MAX_INTEGER_PARTS {
        return None;
    }
    let mut alternatives = Vec::new();
    for integer in low / scale..=high / scale {
        let first = (low - integer * scale).max(0);
        let last = (high - integer * scale).min(scale - 1);
        let fraction = fraction_expression(first, last);
        // Bare "3" means 3.00, allowed when a zero fraction is in range.
        let optional = if first == 0 { "?" } else { "" };
        alternatives.push(format!("\"{integer}\" (\".\" {fraction}){optional}"));
    }
    Some(format!("({})", alternatives.join(" | ")))
}

/// Fraction digit strings (one or two digits) whose hundredths value lies in `[first, last]`.
fn fraction_expression(first: i64, last: i64) -> String {
    let mut alternatives = Vec::new();
    for tens in first / 10..=last / 10 {
        let from = (first - tens * 10).max(0);
        let to = (last - tens * 10).min(9);
        // One digit "t" means t0 hundredths: allowed when unit 0 is.
        let units = if from == 0 {
            format!("[0-{to}]?")
        } else {
            format!("[{from}-{to}]")
        };
        alternatives.push(format!("\"{tens}\" {units}"));
    }
    format!("({})", alternatives.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Enumerates the strings a range expression admits, by brute force over candidate decimals,
    /// using a tiny matcher for exactly the constructs `range_expression` emits.
    fn admitted(minimum: f64, maximum: f64) -> Vec<String> {
        let expression = range_expression(minimum, maximum).unwrap();
        let mut out = Vec::new();
        for integer in 0..=3 {
            let mut candidates = vec![integer.to_string()];
            for fraction in 0..100 {
                candidates.push(format!("{integer}.{fraction:02}"));
                if fraction % 10 == 0 {
                    candidates.push(format!("{integer}.{}", fraction / 10));
                }
            }
            out.extend(
                candidates
                    .into_iter()
                    .filter(|text| matches(&expression, text)),
            );
        }
        out
    }

    /// Interprets the emitted GBNF subset by turning it into a regex.
    fn matches(expression: &str, text: &str) -> bool {
        let pattern = expression
            .replace("\"", "")
            .replace(' ', "")
            .replace('.', "\\.");
        regex::Regex::new(&format!("^{pattern}$"))
            .unwrap()
            .is_match(text)
    }

    #[test]
    fn ratio_range_admits_exactly_the_in_range_decimals() {
        let admitted = admitted(0.0, 0.9);
        for text in ["0", "0.0", "0.00", "0.5", "0.35", "0.9", "0.90", "0.05"] {
            assert!(
                admitted.contains(&text.to_string()),
                "{text} missing from {admitted:?}"
            );
        }
        for text in ["0.91", "0.95", "1", "1.0", "2.5"] {
            assert!(
                !admitted.contains(&text.to_string()),
                "{text} wrongly admitted"
            );
        }
        // 91 two-digit values 0.00..0.90, 10 one-digit 0.0..0.9, and the bare "0".
        assert_eq!(admitted.len(), 91 + 10 + 1);
    }

    #[test]
    fn ranges_crossing_integers_and_with_lower_bounds() {
        let admitted = admitted(0.25, 1.5);
        for text in ["0.25", "0.3", "0.99", "1", "1.0", "1.5", "1.49"] {
            assert!(admitted.contains(&text.to_string()), "{text} missing");
        }
        for text in ["0", "0.2", "0.24", "1.51", "1.6", "2"] {
            assert!(
                !admitted.contains(&text.to_string()),
                "{text} wrongly admitted"
            );
        }
        for text in &admitted {
            let value: f64 = text.parse().unwrap();
            assert!((0.25..=1.5).contains(&value), "{text}");
        }
    }

    #[test]
    fn single_all_of_with_annotations_is_inlined() {
        let schema = json!({"properties": {
            "unit": {"allOf": [{"$ref": "#/definitions/Unit"}], "default": "channels",
                     "description": "what is removed"},
            "both": {"allOf": [{"type": "string"}, {"maxLength": 3}]},
            "typed": {"allOf": [{"$ref": "#/definitions/Unit"}], "type": "string"}
        }});
        let inlined = with_single_all_of_inlined(&schema);
        assert_eq!(
            inlined["properties"]["unit"],
            json!({"$ref": "#/definitions/Unit"})
        );
        assert_eq!(inlined["properties"]["both"], schema["properties"]["both"]);
        assert_eq!(
            inlined["properties"]["typed"],
            schema["properties"]["typed"]
        );
    }

    #[test]
    fn only_free_text_strings_get_the_length_limit() {
        let schema = json!({"type": "object", "properties": {
            "free": {"type": "string", "description": "a string"},
            "bounded": {"type": "string", "maxLength": 5},
            "choice": {"type": "string", "enum": ["a", "b"]},
            "list": {"type": "array", "items": {"type": "string"}}
        }});
        let limited = with_string_limit(&schema, 300);
        let properties = &limited["properties"];
        assert_eq!(properties["free"]["maxLength"], json!(300));
        assert_eq!(properties["list"]["items"]["maxLength"], json!(300));
        assert_eq!(properties["bounded"]["maxLength"], json!(5));
        assert_eq!(properties["choice"].get("maxLength"), None);
    }

    #[test]
    fn unsupported_ranges_are_left_alone() {
        assert_eq!(range_expression(-1.0, 1.0), None);
        assert_eq!(range_expression(2.0, 1.0), None);
        assert_eq!(range_expression(0.0, 1e6), None);
        let schema = json!({"type": "number", "minimum": -5, "maximum": 5});
        assert_eq!(with_placeholders(&schema).1, Vec::new());
    }

    #[test]
    fn bounded_numbers_become_placeholders_and_are_substituted() {
        let schema = json!({"type": "object", "properties": {
            "ratio": {"type": "number", "minimum": 0, "maximum": 0.9},
            "free": {"type": "number"},
            "list": {"type": "array", "items": {"type": "number", "minimum": 1, "maximum": 2}}
        }});
        let (rewritten, placeholders) = with_placeholders(&schema);
        assert_eq!(placeholders.len(), 2);
        assert_eq!(rewritten["properties"]["free"], json!({"type": "number"}));
        // Object keys are visited in sorted order: "list" before "ratio".
        assert_eq!(
            rewritten["properties"]["ratio"],
            json!({"const": "__profagent_number_range_1__"})
        );
        assert_eq!(
            placeholders[1].expression,
            range_expression(0.0, 0.9).unwrap()
        );
        let grammar = format!("ratio ::= {} space\n", placeholders[1].literal);
        assert_eq!(
            substitute(&grammar, &placeholders),
            None,
            "first placeholder missing"
        );
        let grammar = format!("{grammar}item ::= {}\n", placeholders[0].literal);
        let substituted = substitute(&grammar, &placeholders).unwrap();
        assert!(!substituted.contains("__profagent"));
        assert!(substituted.contains(&placeholders[1].expression));
    }
}
