//! Reading a plan out of an LLM's answer.
//!
//! Models wrap JSON in code fences or add a sentence before it even when asked not to; we
//! take the first balanced top-level JSON object in the text and parse that strictly (unknown
//! fields are errors, so typos come back to the planner instead of being ignored).
use crate::error::PlanError;
use crate::types::CompressionPlan;

/// How much of a bad answer an error message quotes.
const EXCERPT_CHARS: usize = 160;

/// Parses a plan from free text that contains one JSON object.
pub fn parse_plan(text: &str) -> Result<CompressionPlan, PlanError> {
    let json = extract_json_object(text).ok_or_else(|| PlanError::Parse {
        reason: format!(
            "no JSON object found in the answer (it starts with: {:?}); answer with one JSON object only",
            excerpt(text)
        ),
    })?;
    serde_json::from_str(json).map_err(|e| PlanError::Parse {
        reason: format!(
            "{e} (in the JSON object that starts with: {:?})",
            excerpt(json)
        ),
    })
}

fn excerpt(text: &str) -> String {
    let trimmed = text.trim();
    let mut out: String = trimmed.chars().take(EXCERPT_CHARS).collect();
    if trimmed.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

/// The first balanced `{...}` in `text`, skipping braces inside JSON strings. When the object
/// is never closed, returns the rest of the text so serde reports where it ends.
pub fn extract_json_object(text: &str) -> Option<&str> {
    let start = text.find('{')?;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, ch) in text[start..].char_indices() {
        if in_string {
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_string = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[start..start + offset + 1]);
                }
            }
            _ => {}
        }
    }
    Some(&text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_object_inside_fences_and_prose() {
        let text = "Here is the plan:\n```json\n{\"rationale\": \"a } in a string\", \"pruning\": []}\n```\nDone.";
        let plan = parse_plan(text).unwrap();
        assert_eq!(plan.rationale, "a } in a string");
        assert!(plan.is_noop());
    }

    #[test]
    fn truncated_json_is_a_parse_error_naming_the_problem() {
        let err = parse_plan("{\"pruning\": [{\"target\": \"a\", \"ratio\": 0.2").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("EOF"), "{message}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = parse_plan("{\"prunning\": []}").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `prunning`"),
            "{err}"
        );
    }

    #[test]
    fn prose_without_json_is_a_parse_error() {
        let err = parse_plan("I would prune layer1 by 20%.").unwrap_err();
        assert!(err.to_string().contains("no JSON object"), "{err}");
    }
}
