//! `LocalLlm` backed by llama.cpp: loading (after file checks), chat templating, and the
//! decode loop with grammar-constrained sampling.
//!
//! Constrained sampling uses "sample first, mask only when rejected": the token is drawn from
//! the unconstrained sampler chain and checked against the grammar alone; only when the grammar
//! rejects it is the grammar applied to the whole vocabulary (49k entries for SmolLM2) and the
//! token redrawn. Masking the full vocabulary every step costs 3-10x, and a model that follows
//! the prompt's instructions is mostly grammatical already.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::{
    schema_rewrite, schema_violations, verify_model_file, Completion, GrammarStrategy,
    LocalLlmError, LocalLlmOptions,
};

/// Attempts per constrained answer before giving up on one that keeps breaking a schema rule
/// the grammar cannot express (numeric `minimum`/`maximum`).
pub const MAX_SCHEMA_ATTEMPTS: usize = 3;

/// Retries sample at least this hot, so that a greedy (temperature 0) run can change its answer.
const RETRY_MIN_TEMPERATURE: f32 = 0.7;

/// Unconstrained sampling keeps the 40 most likely tokens with 95 % of the mass, llama.cpp's
/// defaults: they cut the long tail a small model would otherwise wander into.
const TOP_K: i32 = 40;
const TOP_P: f32 = 0.95;

/// Prompt tokens decoded per llama.cpp batch.
const PROMPT_BATCH: usize = 512;

/// llama.cpp's backend may be initialised once per process; every model shares it.
static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

fn backend() -> Result<&'static LlamaBackend, LocalLlmError> {
    BACKEND
        .get_or_init(|| {
            LlamaBackend::init()
                .map(|mut backend| {
                    // llama.cpp logs every tensor it loads to stderr; the CLI reports errors itself.
                    if std::env::var_os("PROFAGENT_LLAMA_LOG").is_none() {
                        backend.void_logs();
                    }
                    backend
                })
                .map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|reason| LocalLlmError::Inference {
            reason: format!("backend initialisation failed: {reason}"),
        })
}

/// An embedded GGUF chat model.
pub struct LocalLlm {
    model: LlamaModel,
    path: PathBuf,
    options: LocalLlmOptions,
    /// Chat calls so far: varies the seed between calls so repeated questions get fresh samples
    /// while a whole session stays reproducible from `options.seed`.
    calls: u32,
}

impl std::fmt::Debug for LocalLlm {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LocalLlm")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// One generation's outcome before schema checking.
struct Generated {
    text: String,
    tokens: usize,
    seconds: f64,
    finished: bool,
}

impl LocalLlm {
    /// Verifies the file (exists, GGUF magic, pinned sha256 for known models) and loads it.
    pub fn load(path: &Path, mut options: LocalLlmOptions) -> Result<Self, LocalLlmError> {
        options.validate()?;
        verify_model_file(path, options.expected_sha256.as_deref())?;
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|error| LocalLlmError::Load {
                path: path.to_path_buf(),
                reason: error.to_string(),
            })?;
        // A window beyond what the model was trained on gives it positions it never saw.
        let trained = model.n_ctx_train() as usize;
        if trained > options.max_tokens && trained < options.context {
            options.context = trained;
        }
        // Fail at load, not at the first question, when the model cannot chat.
        model
            .chat_template(None)
            .map_err(|error| LocalLlmError::ChatTemplate {
                path: path.to_path_buf(),
                reason: format!("{error} (the GGUF carries no tokenizer.chat_template)"),
            })?;
        Ok(Self {
            model,
            path: path.to_path_buf(),
            options,
            calls: 0,
        })
    }

    /// The GGUF file this model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers a conversation of `(role, content)` pairs ("system", "user", "assistant").
    /// With `json_schema`, decoding is constrained to JSON matching it and the answer is checked
    /// against the rules the grammar cannot enforce, resampling up to [`MAX_SCHEMA_ATTEMPTS`].
    pub fn chat(
        &mut self,
        messages: &[(String, String)],
        json_schema: Option<&serde_json::Value>,
    ) -> Result<Completion, LocalLlmError> {
        let started = Instant::now();
        let call_seed = self
            .options
            .seed
            .wrapping_add(self.calls.wrapping_mul(7919));
        self.calls = self.calls.wrapping_add(1);
        let prompt = self.render_prompt(messages)?;
        let prompt_tokens = self.model.vocab().tokenize(prompt.as_bytes(), true, true);
        let budget = prompt_tokens.len() + self.options.max_tokens;
        if budget > self.options.context {
            return Err(LocalLlmError::PromptTooLong {
                prompt_tokens: prompt_tokens.len(),
                context: self.options.context,
                max_tokens: self.options.max_tokens,
            });
        }
        let grammar = json_schema
            .map(|schema| {
                let schema = schema_rewrite::with_single_all_of_inlined(schema);
                match self.options.max_string_chars {
                    Some(limit) => {
                        schema_grammar(&schema_rewrite::with_string_limit(&schema, limit))
                    }
                    None => schema_grammar(&schema),
                }
            })
            .transpose()?;
        let mut last_violations = Vec::new();
        let mut last_text = String::new();
        let attempts = if grammar.is_some() {
            MAX_SCHEMA_ATTEMPTS
        } else {
            1
        };
        for attempt in 0..attempts {
            let temperature = if attempt == 0 {
                self.options.temperature
            } else {
                self.options.temperature.max(RETRY_MIN_TEMPERATURE)
            };
            let seed = call_seed.wrapping_add(attempt as u32);
            let generated = self.generate(&prompt_tokens, grammar.as_deref(), seed, temperature)?;
            let completion = |generated: Generated| Completion {
                prompt_tokens: prompt_tokens.len(),
                completion_tokens: generated.tokens,
                seconds: started.elapsed().as_secs_f64(),
                generation_seconds: generated.seconds,
                attempts: attempt + 1,
                truncated: !generated.finished,
                text: generated.text,
            };
            let Some(schema) = json_schema else {
                return Ok(completion(generated));
            };
            if !generated.finished {
                return Err(LocalLlmError::TokenLimit {
                    max_tokens: self.options.max_tokens,
                    partial: generated.text,
                });
            }
            last_violations = match serde_json::from_str::<serde_json::Value>(&generated.text) {
                Ok(value) => schema_violations(schema, &value),
                Err(error) => vec![format!("not JSON: {error}")],
            };
            if last_violations.is_empty() {
                return Ok(completion(generated));
            }
            last_text = generated.text;
        }
        Err(LocalLlmError::SchemaViolation {
            attempts,
            violations: last_violations,
            text: last_text,
        })
    }

    fn render_prompt(&self, messages: &[(String, String)]) -> Result<String, LocalLlmError> {
        let template_error = |reason: String| LocalLlmError::ChatTemplate {
            path: self.path.clone(),
            reason,
        };
        let template = self
            .model
            .chat_template(None)
            .map_err(|error| template_error(error.to_string()))?;
        let chat = messages
            .iter()
            .map(|(role, content)| {
                LlamaChatMessage::new(role.clone(), content.clone())
                    .map_err(|error| template_error(format!("message from {role:?}: {error}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.model
            .apply_chat_template(&template, &chat, true)
            .map_err(|error| template_error(error.to_string()))
    }

    /// Decodes the prompt, then samples until end-of-generation or `max_tokens`.
    fn generate(
        &self,
        prompt: &[LlamaToken],
        grammar: Option<&str>,
        seed: u32,
        temperature: f32,
    ) -> Result<Generated, LocalLlmError> {
        let threads = i32::try_from(self.options.effective_threads()).unwrap_or(i32::MAX);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.options.context as u32))
            .with_n_batch(PROMPT_BATCH as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let mut context = self
            .model
            .new_context(backend()?, params)
            .map_err(|error| inference(format!("context creation: {error}")))?;
        let mut chain = sampler_chain(seed, temperature);
        let mut grammar = grammar
            .map(|grammar| LlamaSampler::grammar(&self.model, grammar, "root"))
            .transpose()
            .map_err(|error| LocalLlmError::Schema {
                reason: format!("llama.cpp rejected the generated grammar: {error}"),
            })?;

        let mut batch = LlamaBatch::new(PROMPT_BATCH.max(1), 1);
        let mut position = 0i32;
        for chunk in prompt.chunks(PROMPT_BATCH) {
            batch.clear();
            for (offset, token) in chunk.iter().enumerate() {
                let is_last = position as usize + offset + 1 == prompt.len();
                batch
                    .add(*token, position + offset as i32, &[0], is_last)
                    .map_err(|error| inference(format!("prompt batch: {error}")))?;
            }
            context
                .decode(&mut batch)
                .map_err(|error| inference(format!("prompt decode: {error}")))?;
            position += chunk.len() as i32;
        }

        let started = Instant::now();
        let vocab = self.model.vocab();
        let mut bytes = Vec::new();
        let mut generated = 0usize;
        let mut logits_index = batch.n_tokens() - 1;
        let mut finished = false;
        while generated < self.options.max_tokens {
            let token = sample(
                &context,
                logits_index,
                &mut chain,
                grammar.as_mut(),
                self.options.grammar_strategy,
            )?;
            if vocab.is_eog(token) {
                finished = true;
                break;
            }
            bytes.extend(vocab.token_to_piece(token, false, None));
            generated += 1;
            batch.clear();
            batch
                .add(token, position, &[0], true)
                .map_err(|error| inference(format!("token batch: {error}")))?;
            context
                .decode(&mut batch)
                .map_err(|error| inference(format!("decode at position {position}: {error}")))?;
            position += 1;
            logits_index = 0;
        }
        Ok(Generated {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            tokens: generated,
            seconds: started.elapsed().as_secs_f64(),
            finished,
        })
    }
}

fn inference(reason: String) -> LocalLlmError {
    LocalLlmError::Inference { reason }
}

/// llama.cpp grammar (GBNF) text for a JSON schema, with bounded numbers spelled as ranges
/// (see `schema_rewrite`); falls back to the plain conversion if the rewrite does not apply.
fn schema_grammar(schema: &serde_json::Value) -> Result<String, LocalLlmError> {
    let (rewritten, placeholders) = schema_rewrite::with_placeholders(schema);
    if !placeholders.is_empty() {
        if let Some(grammar) = convert_schema(&rewritten)
            .ok()
            .and_then(|grammar| schema_rewrite::substitute(&grammar, &placeholders))
        {
            return Ok(grammar);
        }
    }
    convert_schema(schema)
}

fn convert_schema(schema: &serde_json::Value) -> Result<String, LocalLlmError> {
    llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|error| {
        LocalLlmError::Schema {
            reason: error.to_string(),
        }
    })
}

/// The unconstrained chain: greedy at temperature 0, else top-k, top-p, temperature, draw.
fn sampler_chain(seed: u32, temperature: f32) -> LlamaSampler {
    if temperature == 0.0 {
        return LlamaSampler::greedy();
    }
    LlamaSampler::chain_simple([
        LlamaSampler::top_k(TOP_K),
        LlamaSampler::top_p(TOP_P, 1),
        LlamaSampler::temp(temperature),
        LlamaSampler::dist(seed),
    ])
}

/// Draws the next token. With [`GrammarStrategy::SampleFirst`]: unconstrained first; only if
/// the grammar rejects that token is the grammar applied to the full vocabulary and the token
/// redrawn. Advances the grammar.
fn sample(
    context: &LlamaContext<'_>,
    logits_index: i32,
    chain: &mut LlamaSampler,
    mut grammar: Option<&mut LlamaSampler>,
    strategy: GrammarStrategy,
) -> Result<LlamaToken, LocalLlmError> {
    let mut candidates = context.token_data_array_ith(logits_index);
    if let (Some(grammar), GrammarStrategy::MaskAlways) = (grammar.as_deref_mut(), strategy) {
        candidates.apply_sampler(grammar);
    }
    candidates.apply_sampler(chain);
    let mut token = selected(&candidates)?;
    if let Some(grammar) = grammar {
        if !grammar_allows(grammar, token) {
            let mut masked = context.token_data_array_ith(logits_index);
            masked.apply_sampler(grammar);
            masked.apply_sampler(chain);
            token = selected(&masked)?;
            if !grammar_allows(grammar, token) {
                return Err(inference(
                    "the grammar allows no token here (schema unsatisfiable?)".to_string(),
                ));
            }
        }
        grammar
            .try_accept(token)
            .map_err(|error| inference(format!("grammar rejected token {}: {error}", token.0)))?;
    }
    chain.accept(token);
    Ok(token)
}

/// Whether the grammar, in its current state, accepts `token` next: applying it to a
/// one-candidate array sets the logit to -inf when rejected.
fn grammar_allows(grammar: &mut LlamaSampler, token: LlamaToken) -> bool {
    let mut single = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
    single.apply_sampler(grammar);
    single
        .data
        .first()
        .is_some_and(|candidate| candidate.logit() != f32::NEG_INFINITY)
}

fn selected(candidates: &LlamaTokenDataArray) -> Result<LlamaToken, LocalLlmError> {
    candidates
        .selected_token()
        .ok_or_else(|| inference("the sampler selected no token".to_string()))
}
