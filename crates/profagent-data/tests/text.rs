//! Text data: `.txt` and `.jsonl` sentences tokenized by a `tokenizer.json` into one array per
//! model input, padded and truncated to the sequence length, labels when every line has one.
use std::path::Path;

use profagent_data::text::{find_tokenizer, sequence_length, DEFAULT_SEQ_LEN};
use profagent_data::{Dataset, TextOptions};
use profagent_runtime::{IoInfo, TensorData};

/// BERT's uncased WordPiece pipeline over 9 tokens: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3, then
/// `the`=4 `cat`=5 `sat`=6 `s`=7 `##at`=8.
const TOKENIZER: &str = r###"{
  "version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [
    {"id": 0, "content": "[PAD]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "[UNK]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 2, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 3, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
  "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
    "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "the": 4, "cat": 5, "sat": 6, "s": 7, "##at": 8}}
}"###;

fn io(name: &str, shape: &[Option<usize>]) -> IoInfo {
    IoInfo {
        name: name.into(),
        elem_type: "int64".into(),
        shape: shape.to_vec(),
    }
}

fn encoder_inputs() -> Vec<IoInfo> {
    ["input_ids", "attention_mask", "token_type_ids"]
        .iter()
        .map(|n| io(n, &[None, None]))
        .collect()
}

fn ints(dataset: &Dataset, rows: usize, name: &str) -> Vec<i64> {
    let batch = dataset.load_batch(0..rows).unwrap();
    let (_, tensor) = batch.named.iter().find(|(n, _)| n == name).unwrap();
    match &tensor.data {
        TensorData::I64(v) => v.clone(),
        other => panic!("{name} is not int64: {other:?}"),
    }
}

fn options(dir: &Path, seq_len: usize) -> TextOptions {
    let tokenizer = dir.join("tokenizer.json");
    std::fs::write(&tokenizer, TOKENIZER).unwrap();
    TextOptions {
        tokenizer,
        seq_len,
        inputs: encoder_inputs(),
    }
}

#[test]
fn sentences_are_tokenized_padded_and_truncated_with_masks() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("s.txt");
    std::fs::write(&text, "The cat sat\n\nthe SAT cat the cat sat\n").unwrap();
    let dataset = Dataset::open_text(&text, &options(dir.path(), 6)).unwrap();
    assert_eq!(dataset.len(), 2, "blank lines are skipped");
    assert!(!dataset.has_labels());
    assert_eq!(
        ints(&dataset, 2, "input_ids"),
        vec![2, 4, 5, 6, 3, 0, /* truncated, [SEP] kept */ 2, 4, 6, 5, 4, 3]
    );
    assert_eq!(
        ints(&dataset, 2, "attention_mask"),
        vec![1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1]
    );
    assert_eq!(ints(&dataset, 2, "token_type_ids"), vec![0; 12]);
    let batch = dataset.load_batch(0..2).unwrap();
    assert_eq!(batch.named[0].1.shape, vec![2, 6]);
}

#[test]
fn jsonl_labels_are_all_or_nothing_and_unknown_words_become_unk() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path(), 5);
    let labelled = dir.path().join("l.jsonl");
    std::fs::write(
        &labelled,
        "{\"text\": \"sat\", \"label\": 1}\n{\"text\": \"cat sat\", \"label\": 0}\n",
    )
    .unwrap();
    let dataset = Dataset::open_text(&labelled, &options).unwrap();
    assert!(dataset.has_labels());
    assert_eq!(dataset.load_batch(0..2).unwrap().labels, Some(vec![1, 0]));
    let pieces = dir.path().join("p.jsonl");
    std::fs::write(&pieces, "{\"text\": \"sat dog\"}\n").unwrap();
    let dataset = Dataset::open_text(&pieces, &options).unwrap();
    // "sat" whole, "dog" unknown.
    assert_eq!(ints(&dataset, 1, "input_ids"), vec![2, 6, 1, 3, 0]);
    let mixed = dir.path().join("m.jsonl");
    std::fs::write(
        &mixed,
        "{\"text\": \"sat\", \"label\": 1}\n{\"text\": \"cat\"}\n",
    )
    .unwrap();
    let err = Dataset::open_text(&mixed, &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 of 2 lines have a label"), "{err}");
    let bad = dir.path().join("b.jsonl");
    std::fs::write(&bad, "{\"text\": \"sat\"}\nnot json\n").unwrap();
    let err = Dataset::open_text(&bad, &options).unwrap_err().to_string();
    assert!(err.contains("b.jsonl:2:"), "{err}");
}

#[test]
fn the_tokenizer_and_sequence_length_come_from_the_model_or_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("onnx").join("model.onnx");
    std::fs::create_dir_all(model.parent().unwrap()).unwrap();
    let err = find_tokenizer(&model, None).unwrap_err().to_string();
    assert!(err.contains("--tokenizer"), "{err}");
    std::fs::write(dir.path().join("tokenizer.json"), TOKENIZER).unwrap();
    assert_eq!(
        find_tokenizer(&model, None).unwrap(),
        dir.path().join("tokenizer.json")
    );
    let dynamic = encoder_inputs();
    assert_eq!(sequence_length(&dynamic, None).unwrap(), DEFAULT_SEQ_LEN);
    assert_eq!(sequence_length(&dynamic, Some(32)).unwrap(), 32);
    let fixed = vec![io("input_ids", &[Some(1), Some(64)])];
    assert_eq!(sequence_length(&fixed, None).unwrap(), 64);
    let err = sequence_length(&fixed, Some(32)).unwrap_err().to_string();
    assert!(err.contains("fixed sequence length of 64"), "{err}");
    let unknown = vec![io("input_ids", &[None, None]), io("pixel_values", &[None])];
    let text = dir.path().join("s.txt");
    std::fs::write(&text, "the cat\n").unwrap();
    let options = TextOptions {
        tokenizer: dir.path().join("tokenizer.json"),
        seq_len: 4,
        inputs: unknown,
    };
    let err = Dataset::open_text(&text, &options).unwrap_err().to_string();
    assert!(
        err.contains("'pixel_values' is not one a tokenizer fills"),
        "{err}"
    );
}
