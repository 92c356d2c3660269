//! A BERT-style text classifier built from seeded random weights, laid out as an optimum ONNX
//! export: `model.onnx` (inputs `input_ids`, `attention_mask`, `token_type_ids`, dynamic batch
//! and sequence), `config.json`, a WordPiece `tokenizer.json` over a small vocabulary, and a
//! few sentences (`sentences.txt`, and `sentences.jsonl` with labels).
//!
//! The graph follows what `torch.onnx` writes for Hugging Face's `BertForSequenceClassification`
//! (eager attention, opset 17): word + position + token-type embeddings and LayerNorm; per
//! layer separate query/key/value `MatMul + Add`, each reshaped to `[batch, seq, heads,
//! head_size]` through a run-time `Shape → Gather → Unsqueeze → Concat`, transposed to heads,
//! `q·kᵀ / √d` plus the additive mask `(1 − mask) · finfo.min`, Softmax, `·v`, heads merged,
//! output projection, residual + LayerNorm, an erf-GELU MLP, residual + LayerNorm; the pooler
//! (first token, dense, tanh) and a classifier.
//!
//! Used by the CLI tests and by `cargo run -p profagent --example make_bert_fixture -- DIR`.
#![allow(dead_code)]
use std::path::{Path, PathBuf};

use profagent_onnx::attr;
use profagent_onnx::builder::{value_info, value_info_typed, GraphBuilder};
use profagent_onnx::proto::{tensor_proto::DataType, tensor_shape_proto::dimension::Value};
use profagent_onnx::proto::{type_proto, ValueInfoProto};
use profagent_onnx::ExternalData;

/// The size of the encoder: 4 layers, hidden 256, 4 heads, MLP 1024 unless told otherwise.
#[derive(Debug, Clone, Copy)]
pub struct BertConfig {
    pub layers: usize,
    pub hidden: i64,
    pub heads: i64,
    pub mlp: i64,
    pub vocab: i64,
    pub max_positions: i64,
    pub classes: i64,
}

impl Default for BertConfig {
    fn default() -> Self {
        BertConfig {
            layers: 4,
            hidden: 256,
            heads: 4,
            mlp: 1024,
            vocab: 1024,
            max_positions: 512,
            classes: 3,
        }
    }
}

/// The files written by `write_fixture`.
#[derive(Debug, Clone)]
pub struct BertFixture {
    pub folder: PathBuf,
    pub model: PathBuf,
    pub tokenizer: PathBuf,
    pub sentences: PathBuf,
    pub labelled: PathBuf,
}

/// Writes the model folder (model.onnx, config.json, tokenizer.json) and the sentence files
/// into `dir`.
pub fn write_fixture(dir: &Path, config: &BertConfig, sentences: usize) -> BertFixture {
    std::fs::create_dir_all(dir).unwrap();
    let vocab = vocabulary();
    assert!(
        vocab.len() as i64 <= config.vocab,
        "vocabulary over the embedding table"
    );
    let model = dir.join("model.onnx");
    bert_model(config).save(&model, ExternalData::Auto).unwrap();
    let tokenizer = dir.join("tokenizer.json");
    std::fs::write(&tokenizer, tokenizer_json(&vocab)).unwrap();
    std::fs::write(dir.join("config.json"), config_json(config)).unwrap();
    let lines = sentence_lines(sentences);
    let sentences_path = dir.join("sentences.txt");
    std::fs::write(&sentences_path, lines.join("\n") + "\n").unwrap();
    let labelled = dir.join("sentences.jsonl");
    let jsonl: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, text)| {
            serde_json::json!({"text": text, "label": i as i64 % config.classes}).to_string()
        })
        .collect();
    std::fs::write(&labelled, jsonl.join("\n") + "\n").unwrap();
    BertFixture {
        folder: dir.to_path_buf(),
        model,
        tokenizer,
        sentences: sentences_path,
        labelled,
    }
}

/// `[batch, sequence]` int64 with both dims symbolic.
fn token_input(name: &str) -> ValueInfoProto {
    let mut info = value_info_typed(name, &[-1, -1], DataType::Int64);
    if let Some(type_proto::Value::TensorType(t)) = info.r#type.as_mut().unwrap().value.as_mut() {
        let dims = &mut t.shape.as_mut().unwrap().dim;
        dims[0].value = Some(Value::DimParam("batch_size".into()));
        dims[1].value = Some(Value::DimParam("sequence_length".into()));
    }
    info
}

/// The ONNX graph.
pub fn bert_model(c: &BertConfig) -> profagent_onnx::Model {
    let mut b = GraphBuilder::new(17);
    for name in ["input_ids", "attention_mask", "token_type_ids"] {
        b.graph.input.push(token_input(name));
    }
    let x = embeddings(&mut b, c);
    let mask = additive_mask(&mut b);
    let mut x = x;
    for layer in 0..c.layers {
        let scope = format!("/bert/encoder/layer.{layer}");
        x = encoder_layer(&mut b, &scope, &x, &mask, c);
    }
    let index = b.init_i64("/bert/pooler/first_token", &[], &[0]);
    let first = b.node(
        "Gather",
        "/bert/pooler/Gather",
        &[&x, &index],
        1,
        vec![attr::int("axis", 1)],
    );
    let pooled = b.linear("/bert/pooler/dense", &first, c.hidden, c.hidden);
    let pooled = b.unary("Tanh", "/bert/pooler/activation", &pooled);
    let logits = b.linear("/classifier", &pooled, c.hidden, c.classes);
    let logits = b.node("Identity", "logits", &[&logits], 1, vec![]);
    let mut out = value_info(&logits, &[-1, c.classes]);
    if let Some(type_proto::Value::TensorType(t)) = out.r#type.as_mut().unwrap().value.as_mut() {
        t.shape.as_mut().unwrap().dim[0].value = Some(Value::DimParam("batch_size".into()));
    }
    b.graph.output.push(out);
    b.finish()
}

/// Word + position + token-type embeddings, then LayerNorm. Positions are a slice of a
/// `[1, max_positions]` buffer up to the run-time sequence length, as transformers exports it.
fn embeddings(b: &mut GraphBuilder, c: &BertConfig) -> String {
    let words = b.weight(
        "bert.embeddings.word_embeddings.weight",
        &[c.vocab, c.hidden],
    );
    let positions = b.weight(
        "bert.embeddings.position_embeddings.weight",
        &[c.max_positions, c.hidden],
    );
    let types = b.weight(
        "bert.embeddings.token_type_embeddings.weight",
        &[2, c.hidden],
    );
    let ids: Vec<i64> = (0..c.max_positions).collect();
    let position_ids = b.init_i64("bert.embeddings.position_ids", &[1, c.max_positions], &ids);
    let scope = "/bert/embeddings";
    let shape = b.node(
        "Shape",
        &format!("{scope}/Shape"),
        &["input_ids"],
        1,
        vec![],
    );
    let one = b.const_i64(scope, &[], &[1]);
    let length = b.node(
        "Gather",
        &format!("{scope}/Gather"),
        &[&shape, &one],
        1,
        vec![attr::int("axis", 0)],
    );
    let axis0 = b.const_i64(scope, &[1], &[0]);
    let end = b.node(
        "Unsqueeze",
        &format!("{scope}/Unsqueeze"),
        &[&length, &axis0],
        1,
        vec![],
    );
    let start = b.const_i64(scope, &[1], &[0]);
    let axis1 = b.const_i64(scope, &[1], &[1]);
    let sliced = b.node(
        "Slice",
        &format!("{scope}/Slice"),
        &[&position_ids, &start, &end, &axis1],
        1,
        vec![],
    );
    let gather = |b: &mut GraphBuilder, name: &str, table: &str, index: &str| {
        b.node(
            "Gather",
            &format!("{scope}/{name}/Gather"),
            &[table, index],
            1,
            vec![],
        )
    };
    let w = gather(b, "word_embeddings", &words, "input_ids");
    let t = gather(b, "token_type_embeddings", &types, "token_type_ids");
    let p = gather(b, "position_embeddings", &positions, &sliced);
    let x = b.binary("Add", scope, &w, &t);
    let x = b.binary("Add", &format!("{scope}/add_1"), &x, &p);
    b.layernorm(&format!("{scope}/LayerNorm"), &x, c.hidden)
}

/// `(1 − mask[:, None, None, :]) · finfo(float32).min`, broadcast over heads and queries.
fn additive_mask(b: &mut GraphBuilder) -> String {
    let scope = "/bert/extended_attention_mask";
    let axes = b.const_i64(scope, &[2], &[1, 2]);
    let mask = b.node(
        "Unsqueeze",
        &format!("{scope}/Unsqueeze"),
        &["attention_mask", &axes],
        1,
        vec![],
    );
    let mask = b.node(
        "Cast",
        &format!("{scope}/Cast"),
        &[&mask],
        1,
        vec![attr::int("to", DataType::Float as i64)],
    );
    let one = b.init_f32("/bert/extended_attention_mask/one", &[], &[1.0]);
    let inverted = b.binary("Sub", scope, &one, &mask);
    let lowest = b.init_f32("/bert/extended_attention_mask/min", &[], &[f32::MIN]);
    b.binary("Mul", scope, &inverted, &lowest)
}

/// `[d0, d1] ++ tail` with `d0, d1` read from `x`'s shape at run time.
fn runtime_shape(b: &mut GraphBuilder, scope: &str, x: &str, tail: &[i64]) -> String {
    let shape = b.node("Shape", &format!("{scope}/Shape"), &[x], 1, vec![]);
    let axis0 = b.const_i64(scope, &[1], &[0]);
    let mut parts = Vec::new();
    for k in 0..2 {
        let index = b.const_i64(scope, &[], &[k]);
        let dim = b.node(
            "Gather",
            &format!("{scope}/Gather_{k}"),
            &[&shape, &index],
            1,
            vec![attr::int("axis", 0)],
        );
        parts.push(b.node(
            "Unsqueeze",
            &format!("{scope}/Unsqueeze_{k}"),
            &[&dim, &axis0],
            1,
            vec![],
        ));
    }
    parts.push(b.const_i64(scope, &[tail.len() as i64], tail));
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    b.node(
        "Concat",
        &format!("{scope}/Concat"),
        &refs,
        1,
        vec![attr::int("axis", 0)],
    )
}

fn transpose(b: &mut GraphBuilder, name: &str, x: &str, perm: &[i64]) -> String {
    b.node("Transpose", name, &[x], 1, vec![attr::ints("perm", perm)])
}

/// One encoder layer: self-attention with separate q/k/v, residual + LayerNorm, GELU MLP,
/// residual + LayerNorm.
fn encoder_layer(b: &mut GraphBuilder, scope: &str, x: &str, mask: &str, c: &BertConfig) -> String {
    let head_size = c.hidden / c.heads;
    let attention = format!("{scope}/attention/self");
    let mut heads = Vec::new();
    for part in ["query", "key", "value"] {
        let projected = b.linear(&format!("{attention}/{part}"), x, c.hidden, c.hidden);
        let shape = runtime_shape(
            b,
            &format!("{attention}/{part}/shape"),
            &projected,
            &[c.heads, head_size],
        );
        let split = b.node(
            "Reshape",
            &format!("{attention}/{part}/Reshape"),
            &[&projected, &shape],
            1,
            vec![],
        );
        heads.push(transpose(
            b,
            &format!("{attention}/{part}/Transpose"),
            &split,
            &[0, 2, 1, 3],
        ));
    }
    let key_t = transpose(
        b,
        &format!("{attention}/Transpose"),
        &heads[1],
        &[0, 1, 3, 2],
    );
    let scores = b.node(
        "MatMul",
        &format!("{attention}/MatMul"),
        &[&heads[0], &key_t],
        1,
        vec![],
    );
    let scale = b.init_f32(
        &format!("{attention}/scale"),
        &[],
        &[(head_size as f32).sqrt()],
    );
    let scores = b.binary("Div", &attention, &scores, &scale);
    let scores = b.binary("Add", &attention, &scores, mask);
    let probs = b.node(
        "Softmax",
        &format!("{attention}/Softmax"),
        &[&scores],
        1,
        vec![attr::int("axis", -1)],
    );
    let context = b.node(
        "MatMul",
        &format!("{attention}/MatMul_1"),
        &[&probs, &heads[2]],
        1,
        vec![],
    );
    let context = transpose(
        b,
        &format!("{attention}/Transpose_1"),
        &context,
        &[0, 2, 1, 3],
    );
    let merged_shape = runtime_shape(b, &format!("{attention}/merge"), &context, &[c.hidden]);
    let merged = b.node(
        "Reshape",
        &format!("{attention}/Reshape"),
        &[&context, &merged_shape],
        1,
        vec![],
    );
    let output = format!("{scope}/attention/output");
    let projected = b.linear(&format!("{output}/dense"), &merged, c.hidden, c.hidden);
    let residual = b.binary("Add", &output, &projected, x);
    let x = b.layernorm(&format!("{output}/LayerNorm"), &residual, c.hidden);
    let hidden = b.linear(&format!("{scope}/intermediate/dense"), &x, c.hidden, c.mlp);
    let hidden = gelu(
        b,
        &format!("{scope}/intermediate/intermediate_act_fn"),
        &hidden,
    );
    let out = format!("{scope}/output");
    let projected = b.linear(&format!("{out}/dense"), &hidden, c.mlp, c.hidden);
    let residual = b.binary("Add", &out, &projected, &x);
    b.layernorm(&format!("{out}/LayerNorm"), &residual, c.hidden)
}

/// `x · 0.5 · (1 + erf(x / √2))`, as torch exports `nn.GELU()`.
fn gelu(b: &mut GraphBuilder, scope: &str, x: &str) -> String {
    let root2 = b.init_f32(&format!("{scope}/sqrt2"), &[], &[std::f32::consts::SQRT_2]);
    let one = b.init_f32(&format!("{scope}/one"), &[], &[1.0]);
    let half = b.init_f32(&format!("{scope}/half"), &[], &[0.5]);
    let scaled = b.binary("Div", scope, x, &root2);
    let erf = b.unary("Erf", scope, &scaled);
    let shifted = b.binary("Add", scope, &erf, &one);
    let gated = b.binary("Mul", scope, x, &shifted);
    b.binary("Mul", &format!("{scope}/half"), &gated, &half)
}

/// Words the sentences are made of; each is one token.
const WORDS: &[&str] = &[
    "the",
    "a",
    "an",
    "this",
    "that",
    "movie",
    "film",
    "book",
    "story",
    "plot",
    "actor",
    "actors",
    "music",
    "scene",
    "ending",
    "food",
    "service",
    "room",
    "hotel",
    "staff",
    "was",
    "is",
    "were",
    "are",
    "be",
    "very",
    "really",
    "quite",
    "not",
    "so",
    "too",
    "good",
    "great",
    "bad",
    "awful",
    "boring",
    "fun",
    "funny",
    "sad",
    "slow",
    "fast",
    "long",
    "short",
    "loud",
    "quiet",
    "nice",
    "poor",
    "fine",
    "best",
    "worst",
    "i",
    "we",
    "you",
    "they",
    "it",
    "liked",
    "loved",
    "hated",
    "enjoyed",
    "watched",
    "read",
    "saw",
    "ate",
    "and",
    "but",
    "or",
    "with",
    "without",
    "of",
    "in",
    "on",
    "at",
    "for",
    "to",
    "again",
    "never",
    "always",
    "today",
    "yesterday",
    "night",
    "day",
    "time",
    "people",
    "friends",
    "family",
    "everyone",
    "nobody",
    "place",
    "price",
    "money",
    "worth",
    "waste",
    "better",
    "worse",
    "more",
    "less",
    "all",
];
const SPECIALS: &[&str] = &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Specials, whole words, single characters and `##` continuations (single letters and letter
/// pairs), so any lowercase word tokenizes.
pub fn vocabulary() -> Vec<String> {
    let mut vocab: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    let mut push = |token: String| {
        if !vocab.contains(&token) {
            vocab.push(token);
        }
    };
    WORDS.iter().for_each(|w| push(w.to_string()));
    let letters: Vec<char> = ('a'..='z').collect();
    for &l in &letters {
        push(l.to_string());
        push(format!("##{l}"));
    }
    for d in '0'..='9' {
        push(d.to_string());
        push(format!("##{d}"));
    }
    for p in [".", ",", "!", "?", "'", "-", ":", ";", "(", ")", "\""] {
        push(p.to_string());
    }
    for &first in &letters {
        for &second in &letters {
            push(format!("##{first}{second}"));
        }
    }
    vocab
}

/// A `tokenizers` JSON for BERT's uncased WordPiece pipeline over `vocab`.
pub fn tokenizer_json(vocab: &[String]) -> String {
    let id = |token: &str| vocab.iter().position(|t| t == token).unwrap();
    let added: Vec<serde_json::Value> = SPECIALS
        .iter()
        .map(|s| {
            serde_json::json!({"id": id(s), "content": s, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let vocab_map: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), serde_json::json!(i)))
        .collect();
    let special = |name: &str, type_id: u32| serde_json::json!({"SpecialToken": {"id": name, "type_id": type_id}});
    let sequence = |name: &str, type_id: u32| serde_json::json!({"Sequence": {"id": name, "type_id": type_id}});
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special("[CLS]", 0), sequence("A", 0), special("[SEP]", 0)],
            "pair": [special("[CLS]", 0), sequence("A", 0), special("[SEP]", 0),
                sequence("B", 1), special("[SEP]", 1)],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [id("[CLS]")], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [id("[SEP]")], "tokens": ["[SEP]"]}
            }
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab_map}
    });
    serde_json::to_string_pretty(&json).unwrap()
}

fn config_json(c: &BertConfig) -> String {
    let labels: serde_json::Map<String, serde_json::Value> = (0..c.classes)
        .map(|k| (k.to_string(), serde_json::json!(format!("LABEL_{k}"))))
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "hidden_size": c.hidden,
        "num_attention_heads": c.heads,
        "num_hidden_layers": c.layers,
        "intermediate_size": c.mlp,
        "vocab_size": c.vocab,
        "max_position_embeddings": c.max_positions,
        "type_vocab_size": 2,
        "id2label": labels
    }))
    .unwrap()
}

/// `count` sentences of 4 to 19 words drawn by a seeded generator (some with a word outside
/// the word list, which splits into `##` pieces).
pub fn sentence_lines(count: usize) -> Vec<String> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % n
    };
    (0..count)
        .map(|_| {
            let words = 4 + next(16);
            let mut line: Vec<String> = (0..words)
                .map(|_| WORDS[next(WORDS.len())].to_string())
                .collect();
            if next(3) == 0 {
                line.push("unbelievably".into());
            }
            let mut text = line.join(" ");
            text.push(if next(4) == 0 { '!' } else { '.' });
            text[..1].to_uppercase() + &text[1..]
        })
        .collect()
}
