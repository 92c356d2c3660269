//! An embedded chat LLM for ProfAgent's agent: a GGUF model run in-process by llama.cpp (through
//! the `llama-cpp-2` crate), with the model's own chat template and JSON-schema-constrained
//! decoding, so that every answer parses against the plan schema with no server and no network.
//!
//! llama.cpp is only compiled in with the `llama` feature (a slow C++ build needing cmake and
//! clang). Without it the types still exist and [`LocalLlm::load`] returns
//! [`LocalLlmError::NotCompiledIn`], so callers need no `cfg` of their own.
//!
//! The test model, SmolLM2-135M-Instruct (Q4_1), is pinned by sha256 in [`known`]; it writes
//! schema-valid JSON but plans poorly: a format-correct offline stand-in, not a planner.

mod error;
pub mod known;
pub mod schema_check;
#[cfg_attr(not(feature = "llama"), allow(dead_code))]
mod schema_rewrite;

#[cfg(feature = "llama")]
mod engine;
#[cfg(feature = "llama")]
pub use engine::LocalLlm;

#[cfg(not(feature = "llama"))]
mod disabled;
#[cfg(not(feature = "llama"))]
pub use disabled::LocalLlm;

pub use error::LocalLlmError;
pub use known::{
    find_test_model, resolve_model_spec, sha256_file, verify_model_file, KnownModel, KNOWN_MODELS,
};
pub use schema_check::schema_violations;

/// Whether this build links llama.cpp (the `llama` feature).
pub const COMPILED_IN: bool = cfg!(feature = "llama");

/// Machines with at most this many logical cores default to one inference thread: llama.cpp's
/// worker threads spin while waiting, and on 2 shared cores two of them were measured up to 50x
/// slower than one.
pub const SINGLE_THREAD_MAX_CORES: usize = 2;

/// Upper bound on the default thread count (beyond this a 135M-7B model gains little on CPU).
const MAX_DEFAULT_THREADS: usize = 8;

/// Default cap on free-text strings in constrained answers: a few sentences of rationale.
pub const DEFAULT_MAX_STRING_CHARS: usize = 160;

/// Default context window in tokens (SmolLM2's training context).
pub const DEFAULT_CONTEXT: usize = 8192;

/// How to run the model.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalLlmOptions {
    /// Inference threads; `None` picks [`default_threads`].
    pub threads: Option<usize>,
    /// Seed of the sampler's random generator: equal seeds and inputs give equal answers.
    pub seed: u32,
    /// Sampling temperature; 0 is greedy decoding.
    pub temperature: f32,
    /// Cap on generated tokens per answer.
    pub max_tokens: usize,
    /// Context window in tokens (prompt plus answer); at most the model's training context
    /// (`LocalLlm::load` lowers it to that). The default, 8192, holds `compress`'s prompt for
    /// resnet18 and vit_tiny (3,300-3,500 tokens) with the answer's 1,024.
    pub context: usize,
    /// Hex sha256 the file must have. `None` still verifies files whose name is in
    /// [`KNOWN_MODELS`] against their pinned digest.
    pub expected_sha256: Option<String>,
    /// How the grammar constrains sampling; the default is the fast one.
    pub grammar_strategy: GrammarStrategy,
    /// With a schema, free-text strings that set no `maxLength` are held to this many
    /// characters by the grammar (the answer stays valid against the schema): a small model
    /// otherwise can ramble inside a `rationale` until `max_tokens` cuts the JSON. `None`: no cap.
    pub max_string_chars: Option<usize>,
}

/// How JSON-schema constraints are applied while sampling. Both give grammar-valid output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GrammarStrategy {
    /// Draw from the unconstrained distribution and check only that token against the grammar;
    /// mask the whole vocabulary only when it is rejected (rare for a model following the
    /// prompt). The default.
    #[default]
    SampleFirst,
    /// Mask the whole vocabulary with the grammar before every draw: the textbook method, kept
    /// as the baseline that `bench_local` measures the default against.
    MaskAlways,
}

impl Default for LocalLlmOptions {
    fn default() -> Self {
        Self {
            threads: None,
            seed: 42,
            temperature: 0.3,
            max_tokens: 1024,
            context: DEFAULT_CONTEXT,
            expected_sha256: None,
            grammar_strategy: GrammarStrategy::default(),
            max_string_chars: Some(DEFAULT_MAX_STRING_CHARS),
        }
    }
}

impl LocalLlmOptions {
    /// Rejects options llama.cpp would misbehave on, naming the option.
    pub fn validate(&self) -> Result<(), LocalLlmError> {
        let invalid = |option, reason: &str| {
            Err(LocalLlmError::InvalidOption {
                option,
                reason: reason.to_string(),
            })
        };
        if self.threads == Some(0) {
            return invalid("threads", "must be at least 1 (or unset for the default)");
        }
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return invalid("temperature", "must be a finite number >= 0");
        }
        if self.max_tokens == 0 {
            return invalid("max_tokens", "must be at least 1");
        }
        if self.context <= self.max_tokens || u32::try_from(self.context).is_err() {
            return invalid(
                "context",
                &format!(
                    "{} must exceed max_tokens ({}) to leave room for the prompt, and fit in u32",
                    self.context, self.max_tokens
                ),
            );
        }
        Ok(())
    }

    /// The thread count that will actually be used.
    pub fn effective_threads(&self) -> usize {
        self.threads.unwrap_or_else(default_threads)
    }
}

/// One thread on machines with [`SINGLE_THREAD_MAX_CORES`] cores or fewer, else half the logical
/// cores (hyper-threads add little to matrix-vector work), at most 8.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    threads_for_cores(cores)
}

fn threads_for_cores(cores: usize) -> usize {
    if cores <= SINGLE_THREAD_MAX_CORES {
        1
    } else {
        (cores / 2).clamp(1, MAX_DEFAULT_THREADS)
    }
}

/// One answer and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The answer (JSON text when a schema was given).
    pub text: String,
    /// Tokens in the templated prompt.
    pub prompt_tokens: usize,
    /// Tokens generated for the returned answer.
    pub completion_tokens: usize,
    /// Wall time of the whole call, all attempts included.
    pub seconds: f64,
    /// Wall time spent generating the returned answer's tokens (excludes prompt processing).
    pub generation_seconds: f64,
    /// Generation attempts used: more than 1 when an answer broke a schema rule the grammar
    /// cannot enforce (numeric ranges) and was resampled.
    pub attempts: usize,
    /// True when generation stopped at `max_tokens` (only possible without a schema; with one,
    /// an unfinished answer is [`LocalLlmError::TokenLimit`]).
    pub truncated: bool,
}

impl Completion {
    /// Generated tokens per second of generation time.
    pub fn tokens_per_second(&self) -> f64 {
        if self.generation_seconds > 0.0 {
            self.completion_tokens as f64 / self.generation_seconds
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_cores_or_fewer_default_to_one_thread() {
        assert_eq!(threads_for_cores(1), 1);
        assert_eq!(threads_for_cores(2), 1);
        assert_eq!(threads_for_cores(4), 2);
        assert_eq!(threads_for_cores(64), MAX_DEFAULT_THREADS);
    }

    #[test]
    fn options_are_validated_by_name() {
        assert!(LocalLlmOptions::default().validate().is_ok());
        let cases = [
            (
                LocalLlmOptions {
                    threads: Some(0),
                    ..Default::default()
                },
                "threads",
            ),
            (
                LocalLlmOptions {
                    temperature: -1.0,
                    ..Default::default()
                },
                "temperature",
            ),
            (
                LocalLlmOptions {
                    temperature: f32::NAN,
                    ..Default::default()
                },
                "temperature",
            ),
            (
                LocalLlmOptions {
                    max_tokens: 0,
                    ..Default::default()
                },
                "max_tokens",
            ),
            (
                LocalLlmOptions {
                    context: 3,
                    ..Default::default()
                },
                "context",
            ),
        ];
        for (options, expected) in cases {
            match options.validate() {
                Err(LocalLlmError::InvalidOption { option, .. }) => assert_eq!(option, expected),
                other => panic!("{expected}: expected InvalidOption, got {other:?}"),
            }
        }
    }
}
