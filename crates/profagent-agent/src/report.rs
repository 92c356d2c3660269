//! `report.json`: the record of a compression run, one object. Its types live in
//! `profagent-record` (shared with the renderers of `profagent-report`) and are re-exported
//! here; the loop (`compressor`) fills one `RunReport` and is its only writer.
pub use profagent_record::{
    Decision, FinalResult, LayerRow, ModelInfo, ReplayInfo, RoundRecord, RunReport, StopReason,
    REPORT_FORMAT,
};

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
