//! The final check: the loop's choice measured again where it was never tuned.
//!
//! The feedback slice chose the model, so its numbers are optimistic (a plan judged −0.40 on
//! 1,000 feedback images was −1.12 on 5,000 held ones). Here the chosen model and the input
//! are evaluated on the holdout slice (paired, the same images), and timed against each other
//! interleaved on holdout inputs. A model that the holdout shows over the accuracy or fidelity
//! bound, or that is measurably slower than the input without a memory target that asks for
//! size at any speed, is replaced by the latest earlier accepted model that holds, down to the
//! input itself; the report says which and why. `final_check` is the live check (the
//! `Workbench::final_check` default; a replay answers from its recording); `finish` writes and
//! describes whatever the check chose.
use profagent_onnx::Model;

use super::{FinalCheck, Kept, Progress, Split, State, StopReason, Workbench};
use crate::error::AgentError;
use crate::facts::{Budget, Evaluation, SpeedVerdict};
use crate::judge::{describe_accuracy, targets_reached};
use crate::report::{sha256_hex, FinalResult, LayerRow};
use crate::rundir::{RunDir, MODEL_FILE};

/// A memory or MACs target asks for a smaller model even if it runs slower.
fn size_at_any_speed(budget: &Budget) -> bool {
    budget.target_memory_bytes.is_some() || budget.target_macs_fraction.is_some()
}

/// Why `evaluation` breaks a bound on the holdout (its paired top-1 drop over the budget, its
/// output cosine below `--min-cosine`), or `None` when it holds.
fn bounds_objection(budget: &Budget, evaluation: &Evaluation) -> Option<String> {
    if let Some(drop) = evaluation.drop_points() {
        if drop > budget.max_acc_drop {
            return Some(format!(
                "its holdout {} is over the budget of {:.2} points",
                describe_accuracy(evaluation, budget.acc_confidence),
                budget.max_acc_drop
            ));
        }
    }
    if !budget.fidelity_kept(evaluation) {
        return Some(format!(
            "its holdout output cosine {} is below the bound {:.4}",
            evaluation
                .cosine
                .map(|c| format!("{c:.5}"))
                .unwrap_or_else(|| "(not measured)".into()),
            budget.min_cosine.unwrap_or_default()
        ));
    }
    None
}

/// Why a model timed against the input with `verdict` may not be kept, or `None`.
fn speed_objection(budget: &Budget, verdict: SpeedVerdict) -> Option<String> {
    (verdict == SpeedVerdict::Slower && !size_at_any_speed(budget)).then(|| {
        "it is measurably slower than the input model and no memory or MACs target asks for size at any speed".into()
    })
}

/// The live final check (see the module doc): the latest accepted model that holds on the
/// holdout slice, else the input; with the notes on models passed over, on a final model
/// slower than the input, and on a holdout too small to confirm the accuracy bound.
pub(super) fn final_check<B: Workbench + ?Sized>(
    bench: &mut B,
    input: &Model,
    baseline: &Evaluation,
    accepted: &[Kept<'_>],
    budget: &Budget,
    progress: &mut dyn Progress,
) -> Result<FinalCheck, AgentError> {
    let last_round = accepted.last().map(|s| s.round).unwrap_or(0);
    let mut notes: Vec<String> = Vec::new();
    progress.line("evaluating the input model on the holdout slice");
    let mut holdout_baseline = bench.evaluate(input, Split::Holdout)?;
    holdout_baseline.pair_with_itself();
    let mut picked = None;
    for state in accepted.iter().rev() {
        if state.round == 0 {
            break;
        }
        progress.line(&format!(
            "checking round {}'s model on the holdout slice (accuracy paired with the input, speed interleaved)",
            state.round
        ));
        let mut evaluation = bench.evaluate(state.model, Split::Holdout)?;
        evaluation.pair_with(&holdout_baseline);
        // Speed only matters once the bounds hold.
        if let Some(why) = bounds_objection(budget, &evaluation) {
            notes.push(format!("round {}'s model was not kept: {why}", state.round));
            progress.line(notes.last().map(String::as_str).unwrap_or_default());
            continue;
        }
        let speed = bench.compare_speed(input, state.model, Split::Holdout)?;
        evaluation.latency_ms = speed.candidate_ms.value;
        let verdict = speed.verdict();
        let reference_ms = speed.reference_ms;
        evaluation.speed = Some(speed);
        if let Some(why) = speed_objection(budget, verdict) {
            notes.push(format!("round {}'s model was not kept: {why}", state.round));
            progress.line(notes.last().map(String::as_str).unwrap_or_default());
            continue;
        }
        holdout_baseline.latency_ms = reference_ms;
        picked = Some((state.round, evaluation));
        break;
    }
    let (round, holdout_final) = match picked {
        Some(found) => found,
        None => {
            if last_round != 0 {
                notes.push("no accepted model held on the holdout slice: the input model is returned unchanged".into());
            }
            // The input itself: nothing to time against it (its A/A comparison on the
            // feedback slice stays in the baseline as the machine's noise).
            let mut same = holdout_baseline.clone();
            same.speed = None;
            same.latency_ms = baseline.latency_ms;
            holdout_baseline.latency_ms = baseline.latency_ms;
            (0, same)
        }
    };
    notes.extend(final_notes(budget, &holdout_final));
    Ok(FinalCheck {
        round,
        holdout_baseline: Some(holdout_baseline),
        holdout_final: Some(holdout_final),
        notes,
    })
}

/// Plain warnings on the final model's holdout evaluation: slower than the input (kept for a
/// size target), or a holdout too small to confirm the accuracy bound (with the images that
/// would decide it).
fn final_notes(budget: &Budget, final_eval: &Evaluation) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(s) = final_eval
        .speed
        .as_ref()
        .filter(|s| s.verdict() == SpeedVerdict::Slower)
    {
        notes.push(format!(
            "the final model is slower than the input: {} (kept because the memory or MACs target asks for size)",
            s.describe()
        ));
    }
    if let Some(change) = final_eval.accuracy_change {
        let bound = change.drop_upper_bound(budget.acc_confidence);
        if change.drop_points() <= budget.max_acc_drop && bound > budget.max_acc_drop {
            let needed = change
                .samples_needed(budget.max_acc_drop, budget.acc_confidence)
                .map(|n| format!("; about {n} holdout images would decide it"))
                .unwrap_or_default();
            notes.push(format!(
                "the holdout's {} images cannot confirm the accuracy bound: the drop is {:.2} points but its {:.0} % upper bound is {bound:.2}{needed}",
                change.samples,
                change.drop_points(),
                budget.acc_confidence * 100.0
            ));
        }
    }
    notes
}

/// Asks the workbench for the final check, writes the chosen model and describes it (see the
/// module doc). `accepted`: every accepted state, oldest (the input) first. Returns the final
/// result, the per-layer table and the chosen model.
#[allow(clippy::too_many_arguments)]
pub(super) fn finish(
    input: &Model,
    baseline: &Evaluation,
    accepted: Vec<State>,
    budget: &Budget,
    stop_reason: StopReason,
    loop_met: bool,
    bench: &mut dyn Workbench,
    run_dir: &RunDir,
    progress: &mut dyn Progress,
) -> Result<(FinalResult, Vec<LayerRow>, Model), AgentError> {
    let kept: Vec<Kept<'_>> = accepted
        .iter()
        .map(|s| Kept {
            round: s.round,
            model: &s.deployed,
        })
        .collect();
    let interrupted = matches!(stop_reason, StopReason::Interrupted { .. });
    let check = if interrupted {
        // Stopped by the user: the best model so far, unconfirmed, and the report says so.
        let round = accepted.last().map(|s| s.round).unwrap_or(0);
        FinalCheck {
            round,
            holdout_baseline: None,
            holdout_final: None,
            notes: vec![format!(
                "interrupted: the holdout check was not run; model.onnx is round {round}'s model ({}), judged on the feedback slice only",
                if round == 0 { "the input, unchanged" } else { "the last accepted" }
            )],
        }
    } else {
        let _step = profagent_onnx::progress::step("final check on the holdout slice", None, "");
        bench.final_check(input, baseline, &kept, budget, progress)?
    };
    let chosen = accepted
        .iter()
        .rev()
        .find(|s| s.round == check.round)
        .or(accepted.last())
        .ok_or_else(|| AgentError::Step {
            step: "final".into(),
            reason: "no accepted model, not even the input".into(),
        })?;
    let final_bytes = chosen.deployed.to_bytes();
    let model_path = run_dir.path(MODEL_FILE);
    profagent_onnx::write_atomic(&model_path, &final_bytes)
        .map_err(|e| AgentError::run_dir(&model_path, e))?;
    let reference = check.holdout_baseline.as_ref().unwrap_or(baseline);
    let final_eval = check.holdout_final.as_ref().unwrap_or(&chosen.evaluation);
    let bounds = bounds_objection(budget, final_eval).is_none();
    // An interrupted run confirmed nothing on the holdout: its budget is not met.
    let budget_met = if interrupted {
        false
    } else if budget.any_target() {
        bounds && targets_reached(budget, reference, final_eval)
    } else {
        bounds
    };
    let speed = final_eval.speed.clone();
    let stop = if loop_met && !matches!(stop_reason, StopReason::BudgetMet { .. }) {
        format!("budget met ({stop_reason})")
    } else {
        stop_reason.to_string()
    };
    let layers = if interrupted {
        Vec::new()
    } else {
        bench.layer_rows(input, &chosen.deployed, progress)
    };
    let result = FinalResult {
        model_path: model_path.display().to_string(),
        sha256: sha256_hex(&final_bytes),
        feedback: chosen.evaluation.clone(),
        acc_drop: final_eval.drop_points(),
        drop_interval: final_eval
            .accuracy_change
            .map(|p| p.drop_interval(profagent_stats::REPORT_CONFIDENCE)),
        speedup: speed.as_ref().map(|s| s.speedup.value),
        speed,
        size_reduction: Some(
            1.0 - final_eval.model_bytes as f64 / reference.model_bytes.max(1) as f64,
        ),
        budget_met,
        holdout_baseline: check.holdout_baseline.clone(),
        holdout_final: check.holdout_final.clone(),
        stop_reason: stop,
        stop: Some(stop_reason),
        chosen_round: Some(chosen.round),
        fallback: check.notes,
        accepted_rounds: accepted
            .iter()
            .filter(|s| s.round > 0)
            .map(|s| s.round)
            .collect(),
    };
    Ok((result, layers, chosen.deployed.clone()))
}

/// Per-layer latency of the input and the final model (the runtime's profiler), joined by
/// layer name; empty when the workbench cannot profile.
pub(super) fn layer_rows<B: Workbench + ?Sized>(
    bench: &mut B,
    input: &Model,
    chosen: &Model,
    progress: &mut dyn Progress,
) -> Vec<LayerRow> {
    let (before, after) = match (bench.layer_latencies(input), bench.layer_latencies(chosen)) {
        (Ok(b), Ok(a)) => (b, a),
        (Err(e), _) | (_, Err(e)) => {
            progress.line(&format!("warning: per-layer latency not measured: {e}"));
            return Vec::new();
        }
    };
    let mut rows: Vec<LayerRow> = before
        .iter()
        .map(|(name, op, ms)| LayerRow {
            layer: name.clone(),
            op_type: op.clone(),
            before_ms: Some(*ms),
            after_ms: after
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, _, ms)| *ms),
        })
        .collect();
    for (name, op, ms) in &after {
        if !before.iter().any(|(n, _, _)| n == name) {
            rows.push(LayerRow {
                layer: name.clone(),
                op_type: op.clone(),
                before_ms: None,
                after_ms: Some(*ms),
            });
        }
    }
    rows
}
