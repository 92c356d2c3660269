//! Recorded answers played back in order: `--replay` runs need no network and no model.
use super::{ChatRequest, Completion, Provider};
use crate::error::AgentError;

#[derive(Debug, Clone)]
pub struct ReplayProvider {
    label: String,
    /// Each recorded call: its answer, or the error it failed with.
    answers: std::collections::VecDeque<Result<String, String>>,
}

impl ReplayProvider {
    /// `label` is the provider the answers came from (shown in reports).
    pub fn new(label: impl Into<String>, answers: Vec<String>) -> Self {
        Self::recorded(label, answers.into_iter().map(Ok).collect())
    }

    /// Recorded calls in order, failed ones with their error: a replay fails them again
    /// (`AgentError::RecordedFailure`), so a guarded run that fell back to the built-in
    /// planner there does so again.
    pub fn recorded(label: impl Into<String>, answers: Vec<Result<String, String>>) -> Self {
        ReplayProvider {
            label: label.into(),
            answers: answers.into(),
        }
    }

    pub fn remaining(&self) -> usize {
        self.answers.len()
    }
}

impl Provider for ReplayProvider {
    fn describe(&self) -> String {
        format!("replay({})", self.label)
    }

    fn complete(&mut self, _request: &ChatRequest<'_>) -> Result<Completion, AgentError> {
        let text = self
            .answers
            .pop_front()
            .ok_or_else(|| {
                AgentError::Replay(
                    "the recording has no more answers: this run asked the planner more often than the recorded one (was the model or the data changed?)"
                        .to_string(),
                )
            })?
            .map_err(AgentError::RecordedFailure)?;
        Ok(Completion {
            text,
            structured: false,
            attempts: 1,
            seconds: 0.0,
            tool_calls: Vec::new(),
        })
    }
}
