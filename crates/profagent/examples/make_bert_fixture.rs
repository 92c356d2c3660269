//! Writes the BERT-style test fixture (model.onnx, config.json, tokenizer.json,
//! sentences.txt, sentences.jsonl) into a folder:
//! `cargo run -p profagent --example make_bert_fixture -- DIR [SENTENCES]`.
#[path = "../tests/support/bert.rs"]
mod bert;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: make_bert_fixture DIR [SENTENCES]");
        std::process::exit(2);
    };
    let sentences = args.next().and_then(|n| n.parse().ok()).unwrap_or(64);
    let fixture = bert::write_fixture(
        std::path::Path::new(&dir),
        &bert::BertConfig::default(),
        sentences,
    );
    println!("wrote {}", fixture.folder.display());
}
