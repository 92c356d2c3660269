//! The guardrail for weak planners: each round an LLM's plan is compared, by estimate
//! (`crate::estimate`), with what the built-in planner would propose from the same facts, and
//! the better one is applied, so a weak model cannot end worse than the built-in planner by
//! proposing plans the measurements already say will fail (or by stopping early). The round
//! record names whose proposal was used and why.
//!
//! The comparison: a plan whose predicted top-1 drop exceeds this round's accuracy budget (the
//! budget left less the confidence margin the loop's bound needs, `estimate::round_budget`)
//! loses to one that fits; when both fit, the one that removes more of what the budget targets (MACs,
//! measured ms, or params) by estimate wins, the LLM's on a tie within `LLM_MARGIN`. Only
//! estimates over measured groups count: a built-in plan touching an unmeasured group never
//! replaces a valid LLM plan, and an LLM plan touching one is only replaced when its measured
//! part alone already exceeds the budget. Plans that
//! change quantization are not compared by estimate (their cost was measured by the probes):
//! the LLM's stands. An LLM that fails to give a valid plan, whose call fails
//! (`AgentError::is_llm_call_failure`), or that stops while the built-in planner still has a
//! plan that fits, is replaced for that round.
use profagent_plan::{validate, PlanContext, ValidatedPlan};

use crate::builtin::BuiltinPlanner;
use crate::error::AgentError;
use crate::estimate::{estimate, round_budget, PlanEstimate};
use crate::facts::{Objective, PlanningInput};
use crate::planner::{Measure, Planner, Proposal, Recorder};

/// How the guarded planner describes itself (`--replay` re-creates the guard from it).
pub const GUARD_SUFFIX: &str = " (guarded by builtin)";
/// The built-in proposal must promise this much more progress to replace a fitting LLM plan.
pub const LLM_MARGIN: f64 = 1.10;

/// An LLM planner whose every plan is checked against the built-in planner's.
pub struct GuardedPlanner {
    llm: Box<dyn Planner>,
    builtin: BuiltinPlanner,
}

impl GuardedPlanner {
    pub fn new(llm: Box<dyn Planner>) -> Self {
        GuardedPlanner {
            llm,
            builtin: BuiltinPlanner::new(),
        }
    }
}

/// What a plan makes progress on, by estimate, for the budget's objective.
fn progress(estimate: &PlanEstimate, input: &PlanningInput) -> f64 {
    match input.budget.objective() {
        Objective::Macs => estimate.macs_removed as f64,
        Objective::Speed => estimate
            .latency_saved_ms
            .unwrap_or(estimate.macs_removed as f64 * 1e-9),
        Objective::Size => estimate.params_removed as f64,
    }
}

fn changes_quantization(plan: &ValidatedPlan) -> bool {
    plan.quantization().is_some_and(|q| !q.is_empty())
}

/// `Some(reason)` when the built-in plan should replace the LLM's.
pub fn prefer_builtin(
    llm: Option<&ValidatedPlan>,
    builtin: &ValidatedPlan,
    input: &PlanningInput,
    context: &PlanContext,
) -> Option<String> {
    if builtin.plan().is_noop() {
        return None;
    }
    let budget = round_budget(input);
    let left = budget.points;
    let ours = estimate(builtin, input, context);
    let fits = |e: &PlanEstimate| input.baseline.top1.is_none() || e.expected_drop <= left;
    // Only a fully measured built-in plan replaces anything: an unmeasured group's cost is
    // unknown, not zero.
    if !ours.unmeasured.is_empty() && llm.is_some() {
        return None;
    }
    let Some(llm) = llm else {
        return Some("the LLM gave no valid plan".into());
    };
    if llm.plan().is_noop() {
        return (fits(&ours) && !changes_quantization(builtin)).then(|| {
            format!(
                "the LLM proposed no change while the built-in plan still fits: it {}",
                ours.describe()
            )
        });
    }
    if changes_quantization(llm) || changes_quantization(builtin) {
        return None;
    }
    let theirs = estimate(llm, input, context);
    match (fits(&theirs), fits(&ours)) {
        (false, true) => Some(format!(
            "the LLM plan {}, beyond the {left:.2} points of {}; the built-in plan {}",
            theirs.describe(),
            budget.describe(),
            ours.describe()
        )),
        (true, true)
            if theirs.unmeasured.is_empty()
                && progress(&ours, input) > LLM_MARGIN * progress(&theirs, input) =>
        {
            Some(format!(
                "both fit the {left:.2} points of this round's accuracy budget, and the built-in plan does more: the LLM plan {}; the built-in plan {}",
                theirs.describe(),
                ours.describe()
            ))
        }
        _ => None,
    }
}

impl Planner for GuardedPlanner {
    fn describe(&self) -> String {
        format!("{}{GUARD_SUFFIX}", self.llm.describe())
    }

    fn propose(
        &mut self,
        round: usize,
        input: &PlanningInput,
        context: &PlanContext,
        record: &mut Recorder<'_>,
        measure: &mut dyn Measure,
    ) -> Result<Proposal, AgentError> {
        // A failed LLM call (timeout, server error, a prompt too long for a local model) is
        // a round without an LLM plan, not the end of the run; setup errors still end it.
        let mut proposal = match self.llm.propose(round, input, context, record, measure) {
            Ok(proposal) => proposal,
            Err(e) if e.is_llm_call_failure() => Proposal::failed_call(&e),
            Err(e) => return Err(e),
        };
        // The built-in proposal from the same facts; not recorded (the transcript holds what
        // the LLM said; a replay recomputes this from the recorded measurements).
        let builtin = validate(&self.builtin.plan(input, context), context).ok();
        let reason = builtin
            .as_ref()
            .and_then(|b| prefer_builtin(proposal.plan.as_ref(), b, input, context));
        match (reason, builtin) {
            (Some(reason), Some(plan)) => {
                let why = match (&proposal.plan, &proposal.failure) {
                    (None, Some(failure)) => format!("{reason}: {failure}"),
                    _ => reason,
                };
                proposal.used = Some(format!("builtin (guardrail: {why})"));
                proposal.plan = Some(plan);
                proposal.failure = None;
            }
            _ => self.builtin.discard_last(),
        }
        Ok(proposal)
    }
}
