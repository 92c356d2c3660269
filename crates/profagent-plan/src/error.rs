//! The error type of this crate: a plan that cannot be read, or one that breaks the rules.
use crate::validate::PlanIssue;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The text is not a JSON plan of the expected shape.
    #[error("the answer is not a valid plan: {reason}")]
    Parse { reason: String },
    /// The plan parsed but breaks rules of the model (unknown names, ratios out of range, ...).
    #[error("the plan was rejected ({} error(s)):\n{}", errors(issues).len(), render(issues))]
    Rejected { issues: Vec<PlanIssue> },
}

fn errors(issues: &[PlanIssue]) -> Vec<&PlanIssue> {
    issues
        .iter()
        .filter(|i| i.severity == crate::validate::Severity::Error)
        .collect()
}

fn render(issues: &[PlanIssue]) -> String {
    issues
        .iter()
        .map(|i| format!("  - {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl PlanError {
    /// The issues of a rejected plan (empty for parse errors).
    pub fn issues(&self) -> &[PlanIssue] {
        match self {
            PlanError::Rejected { issues } => issues,
            PlanError::Parse { .. } => &[],
        }
    }
}
