//! The one error type of the pruning crate. Every variant names the group, layer or node at
//! fault and what to do about it.
use profagent_onnx::OnnxError;

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("ratio {ratio} for {target} is out of range: use a value in [0, 1)")]
    BadRatio { target: String, ratio: f64 },
    #[error("invalid layer pattern '{pattern}': {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("pattern '{pattern}' matches no prunable group or layer; run `profagent prune --list` to see group and layer names")]
    PatternMatchesNothing { pattern: String },
    #[error("a keep rule names group '{group}', which this model does not have; run `profagent prune --list` to see group ids")]
    UnknownGroup { group: String },
    #[error("group '{group}' has {units} units: keeping {keep} is impossible (keep 1 to {units})")]
    BadKeep {
        group: String,
        keep: usize,
        units: usize,
    },
    #[error("ratio {ratio} leaves no unit of the {units} of group '{group}': use a smaller ratio")]
    NothingLeft {
        group: String,
        ratio: f64,
        units: usize,
    },
    #[error("--round-to must be at least 1 (got {0})")]
    BadRoundTo(usize),
    #[error("importance '{importance}' needs {what}: {hint}")]
    ImportanceUnavailable {
        importance: String,
        what: String,
        hint: String,
    },
    #[error("calibration failed: {0}")]
    Calibration(String),
    #[error("group '{group}': {reason}")]
    Group { group: String, reason: String },
    #[error("the input model cannot be profiled ({0}), and the pruner needs its MACs; nothing was written. Check the model with `profagent profile MODEL --runs 0`")]
    InputProfile(String),
    #[error("the pruned graph is invalid ({0}); nothing was written. This is a bug in the pruner: please report it with the model")]
    InvalidResult(String),
}

pub type Result<T, E = PruneError> = std::result::Result<T, E>;
