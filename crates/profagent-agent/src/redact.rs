//! The one redaction filter: every string that may carry an API key (an endpoint echoes the
//! key it was sent in its error body) passes through `redact` before it reaches stderr, the
//! transcript, the run folder or a report.
//!
//! It masks the configured key values, the values of environment variables named like keys,
//! and tokens that look like keys whatever their source (`sk-…`, `Bearer …`).

/// What a masked secret reads as.
pub const REDACTED: &str = "[REDACTED]";
/// Shorter values are not treated as secrets (masking `abc` everywhere would garble text).
const MIN_SECRET_CHARS: usize = 8;
/// Configured key values shorter than this are not masked.
const MIN_CONFIGURED_SECRET_CHARS: usize = 4;
/// A key-like token needs at least this many characters after its prefix.
const MIN_TOKEN_CHARS: usize = 12;
/// Prefixes after which a run of token characters is a key (OpenAI `sk-`, `sk-proj-`,
/// Anthropic `sk-ant-`, HTTP `Bearer `, Hugging Face `hf_`).
const TOKEN_PREFIXES: [&str; 3] = ["sk-", "Bearer ", "hf_"];

/// Values of environment variables whose names mark them as credentials (`*API_KEY`,
/// `*_TOKEN`, `*_SECRET`, `*SECRET_KEY`), at least `MIN_SECRET_CHARS` long, that are not
/// paths or sentences.
pub fn secrets_from_env() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(name, _)| {
            let name = name.to_ascii_uppercase();
            ["API_KEY", "_TOKEN", "_SECRET", "SECRET_KEY"]
                .iter()
                .any(|suffix| name.ends_with(suffix))
        })
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| {
            value.chars().count() >= MIN_SECRET_CHARS
                && !value.starts_with('/')
                && !value.contains(char::is_whitespace)
        })
        .collect()
}

/// `text` with every secret in `secrets` and every key-like token replaced by `REDACTED`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    let mut sorted: Vec<&String> = secrets
        .iter()
        .filter(|s| s.chars().count() >= MIN_CONFIGURED_SECRET_CHARS)
        .collect();
    // Longest first, so a secret containing another is masked whole.
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in sorted {
        out = out.replace(secret.as_str(), REDACTED);
    }
    mask_tokens(&out)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Replaces `prefix` + a run of at least `MIN_TOKEN_CHARS` token characters (the prefix not
/// preceded by a token character) by `REDACTED`.
fn mask_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for prefix in TOKEN_PREFIXES {
            if !rest.starts_with(prefix) {
                continue;
            }
            let preceded = out.chars().next_back().is_some_and(is_token_char);
            let tail = &rest[prefix.len()..];
            let run = tail
                .char_indices()
                .find(|&(_, c)| !is_token_char(c))
                .map_or(tail.len(), |(i, _)| i);
            if !preceded && run >= MIN_TOKEN_CHARS {
                out.push_str(REDACTED);
                rest = &tail[run..];
                continue 'scan;
            }
        }
        let Some(c) = rest.chars().next() else { break };
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_key_in_an_error_body_is_masked() {
        let key = "sk-proj-Abc123Def456Ghi789Jkl";
        let body = format!(
            "{{\"error\": {{\"message\": \"Incorrect API key provided: {key}. You can find your API key at ...\"}}}}"
        );
        let masked = redact(&body, &[]);
        assert!(!masked.contains("Abc123Def456"), "{masked}");
        assert!(masked.contains("Incorrect API key provided: [REDACTED]."));
        // Configured values are masked whatever they look like.
        let masked = redact("key=plainsecretvalue!", &["plainsecretvalue".into()]);
        assert_eq!(masked, "key=[REDACTED]!");
        let masked = redact("Authorization: Bearer abcdefghijklmnop", &[]);
        assert_eq!(masked, "Authorization: [REDACTED]");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "task-1 and desk-top",
            "sk-short",
            "mask-rcnn-resnet50-fpn-coco is a model",
            "layer1.0.conv1: 12 % of latency",
        ] {
            assert_eq!(redact(text, &[]), text);
        }
    }
}
