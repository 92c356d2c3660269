//! A compression-plan-shaped JSON schema and prompt shared by the SmolLM2 tests and the
//! `bench_local` example: nested arrays of objects, enums, numbers with ranges, bounded strings.

#![allow(dead_code)]

use serde_json::{json, Value};

/// Shaped like ProfAgent's plan schema (version, rationale, per-layer actions).
pub fn plan_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["version", "rationale", "layers"],
        "properties": {
            "version": {"const": "1"},
            "rationale": {"type": "string", "maxLength": 200},
            "layers": {
                "type": "array",
                "minItems": 1,
                "maxItems": 6,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "prune_ratio", "quant", "rationale"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 40},
                        "prune_ratio": {"type": "number", "minimum": 0, "maximum": 0.9},
                        "quant": {"enum": ["none", "dynamic", "static", "int4"]},
                        "rationale": {"type": "string", "maxLength": 120}
                    }
                }
            }
        }
    })
}

/// A system + user conversation asking for a plan, with a short layer profile.
pub fn plan_messages() -> Vec<(String, String)> {
    let system = "You are a model-compression planner. Answer with one JSON object: \
                  {\"version\":\"1\",\"rationale\":...,\"layers\":[{\"name\":...,\"prune_ratio\":0.0-0.9,\
                  \"quant\":\"none\"|\"dynamic\"|\"static\"|\"int4\",\"rationale\":...}]}. \
                  Prune and quantize the slowest layers; keep accuracy within 1 point.";
    let user = "Model: resnet20_cifar10 (0.27 M params). Latency budget: 0.6x. Layer profile \
                (name, params, MACs, share of latency):\n\
                layer1.0.conv1 2304 2.4M 6%\nlayer2.0.conv1 4608 1.2M 5%\n\
                layer3.0.conv1 18432 1.2M 8%\nlayer3.2.conv2 36864 2.4M 14%\n\
                fc 650 650 1%\nPropose a plan for the 3 most expensive layers.";
    vec![
        ("system".to_string(), system.to_string()),
        ("user".to_string(), user.to_string()),
    ]
}
