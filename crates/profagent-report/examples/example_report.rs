//! Writes the example report (`fixture::example_report`) as report.json, report.html and
//! report.md into the directory given as the first argument, to look at the renderers' output:
//! `cargo run -p profagent-report --example example_report -- /tmp/example-run`.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: example_report OUT_DIR")?,
    );
    std::fs::create_dir_all(&dir)?;
    let report = profagent_report::fixture::example_report();
    let json = serde_json::to_string_pretty(&report)? + "\n";
    profagent_onnx::write_atomic(&dir.join(profagent_report::REPORT_JSON), json.as_bytes())?;
    let written = profagent_report::write_reports(&dir, &report)?;
    println!("{}\n{}", written.html.display(), written.markdown.display());
    Ok(())
}
