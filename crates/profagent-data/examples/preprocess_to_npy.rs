//! Preprocesses a dataset slice and writes it as `OUT.npy` (+ `OUT.labels.npy`), the form
//! `Dataset::open` reads back as a tensor dataset. Used to check our pixels against PIL +
//! torchvision from Python (scripts/check_preprocess.py) and to freeze a calibration set.
//!
//! usage: preprocess_to_npy DATA PRESET|CONFIG.json OUT.npy [LIMIT] [OFFSET] [SEED]
use std::path::Path;

use profagent_data::{npy, Dataset, Preprocess};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err(
            "usage: preprocess_to_npy DATA PRESET|CONFIG.json OUT.npy [LIMIT] [OFFSET] [SEED]"
                .into(),
        );
    }
    let preprocess = if args[2].ends_with(".json") {
        Preprocess::from_file(Path::new(&args[2]))?
    } else {
        Preprocess::preset(&args[2])?
    };
    let limit = args.get(4).map(|v| v.parse()).transpose()?;
    let offset = args.get(5).map(|v| v.parse()).transpose()?.unwrap_or(0);
    let seed = args.get(6).map(|v| v.parse()).transpose()?;
    let dataset = Dataset::open(Path::new(&args[1]), &preprocess)?.subset(offset, limit, seed)?;
    let batch = dataset.load_batch(0..dataset.len())?;
    let out = Path::new(&args[3]);
    let values = batch.input.as_f32().ok_or("not f32")?;
    std::fs::write(out, npy::encode_npy_f32(&batch.input.shape, values))?;
    if let Some(labels) = &batch.labels {
        let labels: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
        std::fs::write(
            out.with_extension("labels.npy"),
            npy::encode_npy_i64(&[labels.len()], &labels),
        )?;
    }
    let names = batch.items.join("\n");
    std::fs::write(out.with_extension("items.txt"), names)?;
    eprintln!(
        "wrote {} samples of shape {:?} to {}",
        batch.items.len(),
        &batch.input.shape[1..],
        out.display()
    );
    Ok(())
}
