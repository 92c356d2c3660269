//! Plain readings of a run record that every reader needs (which round was kept, what the
//! final model's pruning and quantization are, which slice the before/after numbers come
//! from). No decision is taken here: these only read what the loop wrote.
use std::collections::BTreeMap;

use crate::evaluation::Evaluation;
use crate::run::{FinalResult, RunReport};

/// The channels of one prunable group in the input and in the final model.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPruning {
    pub group: String,
    pub original: usize,
    pub kept: usize,
    /// Round(s) that pruned it.
    pub rounds: Vec<usize>,
}

impl GroupPruning {
    /// Fraction of the original channels removed.
    pub fn removed_fraction(&self) -> f64 {
        if self.original == 0 {
            0.0
        } else {
            1.0 - self.kept as f64 / self.original as f64
        }
    }
}

impl RunReport {
    /// A short model name: the input file's stem.
    pub fn model_name(&self) -> String {
        std::path::Path::new(&self.model.path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.model.path.clone())
    }

    /// The round whose candidate became the final model, if any round was accepted.
    pub fn chosen_round(&self) -> Option<usize> {
        let result = self.final_result.as_ref()?;
        result
            .chosen_round
            .or_else(|| result.accepted_rounds.last().copied())
            .or_else(|| {
                self.rounds
                    .iter()
                    .filter(|r| r.accepted)
                    .map(|r| r.round)
                    .next_back()
            })
    }

    /// Baseline and final evaluations for the before/after table, with the slice they were
    /// measured on: the holdout slice when the run measured both there, else the feedback slice.
    pub fn before_after(&self) -> (&Evaluation, Option<&Evaluation>, &'static str) {
        match &self.final_result {
            Some(FinalResult {
                holdout_baseline: Some(before),
                holdout_final: Some(after),
                ..
            }) => (before, Some(after), "holdout"),
            Some(result) => (&self.baseline, Some(&result.feedback), "feedback"),
            None => (&self.baseline, None, "feedback"),
        }
    }

    /// Channels per group in the final model: the accepted rounds' pruning, composed.
    pub fn final_pruning(&self) -> Vec<GroupPruning> {
        let mut groups: Vec<GroupPruning> = Vec::new();
        for round in self.rounds.iter().filter(|r| r.accepted) {
            for resolved in &round.resolved_pruning {
                match groups.iter_mut().find(|g| g.group == resolved.group) {
                    Some(group) => {
                        group.kept = resolved.keep;
                        group.rounds.push(round.round);
                    }
                    None => groups.push(GroupPruning {
                        group: resolved.group.clone(),
                        original: resolved.current,
                        kept: resolved.keep,
                        rounds: vec![round.round],
                    }),
                }
            }
        }
        groups
    }

    /// Quantization mode per layer of the final model (the chosen round's candidate).
    pub fn final_quantization(&self) -> BTreeMap<String, String> {
        let chosen = self.chosen_round();
        self.rounds
            .iter()
            .find(|r| Some(r.round) == chosen)
            .map(|r| r.quantization.clone())
            .unwrap_or_default()
    }
}
