//! Planners: the `Planner` trait, the LLM analysis agent (prompt → answer → parse → validate
//! → bounded repair; models that call tools may ask `estimate_plan` about candidate plans
//! first), and the recorded-plan planner used by `--replay` of built-in runs.
use serde::{Deserialize, Serialize};

use profagent_plan::{parse_plan, validate, PlanContext, PlanError, PlanIssue, ValidatedPlan};

use crate::error::AgentError;
use crate::facts::{GroupSensitivity, PlanningInput};
use crate::prompt::{build_prompt, repair_prompt, SYSTEM_PROMPT};
use crate::provider::{ChatMessage, ChatRequest, Completion, Provider, Role, ToolSpec};
use crate::rundir::ToolExchange;
use crate::rundir::TranscriptEntry;

/// Repairs after the first answer before a round's plan is given up.
pub const DEFAULT_MAX_REPAIRS: usize = 2;
/// Name given to the plan schema in structured-output requests.
pub const SCHEMA_NAME: &str = "compression_plan";
/// Tool calls a model may make per round before it must answer.
pub const MAX_TOOL_CALLS: usize = 4;

/// A planner's outcome for one round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    /// The plan to apply; `None` when no valid plan came out (nothing is applied then).
    pub plan: Option<ValidatedPlan>,
    /// What went wrong when `plan` is `None`.
    pub failure: Option<String>,
    /// Answers that were tried (1 + repairs).
    pub attempts: usize,
    /// The validator's errors on the answers that were rejected before the last one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_issues: Vec<PlanIssue>,
    /// Whose plan `plan` is when it is not the planner's own answer (the guardrail replaced
    /// it: "builtin (guardrail: why)"); `None`: the planner's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<String>,
}

impl Proposal {
    /// A round whose LLM call failed (`AgentError::is_llm_call_failure`): no plan, the error
    /// as its failure.
    pub fn failed_call(error: &AgentError) -> Self {
        Proposal {
            plan: None,
            failure: Some(format!("the LLM call failed: {error}")),
            attempts: 1,
            rejected_issues: Vec::new(),
            used: None,
        }
    }
}

/// Where planners record each exchange.
pub type Recorder<'a> = dyn FnMut(&TranscriptEntry) -> Result<(), AgentError> + 'a;

pub trait Planner {
    /// "builtin", "openai:gpt-4o", ...
    fn describe(&self) -> String;
    /// The plan for `round`; `measure` answers what the planner may ask for while it plans
    /// (the `compress` loop passes its own, others `NoMeasure`; planners that cannot ask
    /// ignore it).
    fn propose(
        &mut self,
        round: usize,
        input: &PlanningInput,
        context: &PlanContext,
        record: &mut Recorder<'_>,
        measure: &mut dyn Measure,
    ) -> Result<Proposal, AgentError>;
}

/// Measurements a planner may ask for before it answers, without spending a round (the
/// `probe_group` tool of LLM planners).
pub trait Measure {
    /// False where nothing can be measured (the tool is then not offered).
    fn available(&self) -> bool {
        true
    }
    /// Prunes `group` alone by `ratio` of its current units on the current model and measures
    /// what that costs on the feedback slice.
    fn probe(&mut self, group: &str, ratio: f64) -> Result<GroupSensitivity, String>;
}

/// No measurements (a planner called outside the `compress` loop, or a replay).
pub struct NoMeasure;

impl Measure for NoMeasure {
    fn available(&self) -> bool {
        false
    }
    fn probe(&mut self, _group: &str, _ratio: f64) -> Result<GroupSensitivity, String> {
        Err("no measurements are available here".into())
    }
}

/// The LLM analysis agent.
pub struct AnalysisAgent {
    provider: Box<dyn Provider>,
    max_repairs: usize,
    schema: serde_json::Value,
    /// The tools (offered where the provider has tool calling): the estimate, and the probe
    /// when measurements are available.
    tools: Vec<ToolSpec>,
}

impl AnalysisAgent {
    pub fn new(provider: Box<dyn Provider>) -> Self {
        let schema = profagent_plan::plan_json_schema();
        AnalysisAgent {
            provider,
            max_repairs: DEFAULT_MAX_REPAIRS,
            tools: vec![
                crate::estimate::estimate_tool_spec(&schema),
                probe_tool_spec(),
            ],
            schema,
        }
    }

    pub fn with_max_repairs(mut self, repairs: usize) -> Self {
        self.max_repairs = repairs;
        self
    }
}

impl Planner for AnalysisAgent {
    fn describe(&self) -> String {
        self.provider.describe()
    }

    fn propose(
        &mut self,
        round: usize,
        input: &PlanningInput,
        context: &PlanContext,
        record: &mut Recorder<'_>,
        measure: &mut dyn Measure,
    ) -> Result<Proposal, AgentError> {
        let mut messages = vec![
            ChatMessage::new(Role::System, SYSTEM_PROMPT),
            ChatMessage::new(Role::User, build_prompt(input)),
        ];
        let mut last_problem = String::new();
        let mut rejected_issues = Vec::new();
        let mut tool_calls_left = MAX_TOOL_CALLS;
        for attempt in 1..=self.max_repairs + 1 {
            let mut turn = Turn {
                round,
                attempt,
                input,
                context,
                measure: &mut *measure,
            };
            let (completion, mut entry) =
                self.answer(&mut turn, &mut messages, &mut tool_calls_left, record)?;
            entry.answer = Some(completion.text.clone());
            entry.structured = completion.structured;
            entry.seconds = completion.seconds;
            let outcome = parse_plan(&completion.text).and_then(|plan| validate(&plan, context));
            match outcome {
                Ok(validated) => {
                    // Estimated before it is applied: a plan the measured sensitivities say
                    // cannot keep the accuracy budget goes back while repairs are left.
                    let over = crate::estimate::over_budget(
                        &crate::estimate::estimate(&validated, input, context),
                        input,
                    )
                    .filter(|_| attempt <= self.max_repairs);
                    if let Some(problem) = over {
                        entry.verdict = "over_budget".into();
                        entry.error = Some(problem.clone());
                        record(&entry)?;
                        messages.push(ChatMessage::new(Role::Assistant, completion.text));
                        messages.push(ChatMessage::new(Role::User, repair_prompt(&problem)));
                        last_problem = problem;
                        continue;
                    }
                    entry.verdict = "valid".into();
                    entry.issues = validated.warnings().to_vec();
                    record(&entry)?;
                    return Ok(Proposal {
                        plan: Some(validated),
                        failure: None,
                        attempts: attempt,
                        rejected_issues,
                        used: None,
                    });
                }
                Err(error) => {
                    entry.verdict = match &error {
                        PlanError::Parse { .. } => "parse_error".into(),
                        PlanError::Rejected { .. } => "rejected".into(),
                    };
                    entry.issues = error.issues().to_vec();
                    rejected_issues.extend(entry.issues.iter().cloned());
                    entry.error = Some(error.to_string());
                    record(&entry)?;
                    last_problem = error.to_string();
                    messages.push(ChatMessage::new(Role::Assistant, completion.text));
                    messages.push(ChatMessage::new(Role::User, repair_prompt(&last_problem)));
                }
            }
        }
        Ok(Proposal {
            plan: None,
            failure: Some(format!(
                "no valid plan after {} answer(s); the last problem: {last_problem}",
                self.max_repairs + 1
            )),
            attempts: self.max_repairs + 1,
            rejected_issues,
            used: None,
        })
    }
}

/// Where in a run an answer is asked for.
struct Turn<'a> {
    round: usize,
    attempt: usize,
    input: &'a PlanningInput,
    context: &'a PlanContext,
    measure: &'a mut dyn Measure,
}

impl AnalysisAgent {
    fn entry(&self, turn: &Turn<'_>, messages: &[ChatMessage]) -> TranscriptEntry {
        TranscriptEntry {
            round: turn.round,
            attempt: turn.attempt,
            planner: self.provider.describe(),
            messages: messages.to_vec(),
            answer: None,
            error: None,
            verdict: String::new(),
            issues: Vec::new(),
            structured: false,
            seconds: 0.0,
            tool_calls: Vec::new(),
        }
    }

    /// Asks for an answer; while the model calls the estimate tool instead (at most
    /// `tool_calls_left` calls in the round), answers each call, records the exchange
    /// (verdict "tool_call") and asks again. Returns the answer and its unfinished entry.
    fn answer(
        &mut self,
        turn: &mut Turn<'_>,
        messages: &mut Vec<ChatMessage>,
        tool_calls_left: &mut usize,
        record: &mut Recorder<'_>,
    ) -> Result<(Completion, TranscriptEntry), AgentError> {
        loop {
            let tools: &[ToolSpec] = match (*tool_calls_left > 0, turn.measure.available()) {
                (false, _) => &[],
                (true, true) => &self.tools,
                // Without measurements only the estimate (the first tool) is offered.
                (true, false) => &self.tools[..1],
            };
            let request = ChatRequest {
                messages,
                json_schema: Some(&self.schema),
                schema_name: SCHEMA_NAME,
                tools,
            };
            let mut entry = self.entry(turn, messages);
            let completion = match self.provider.complete(&request) {
                Ok(c) => c,
                Err(e) => {
                    entry.error = Some(e.to_string());
                    entry.verdict = "provider_error".into();
                    record(&entry)?;
                    return Err(e);
                }
            };
            entry.structured = completion.structured;
            entry.seconds = completion.seconds;
            if completion.tool_calls.is_empty() || tools.is_empty() {
                return Ok((completion, entry));
            }
            messages.push(ChatMessage::tool_calls(
                completion.text.clone(),
                completion.tool_calls.clone(),
            ));
            for call in &completion.tool_calls {
                let offered = tools.iter().any(|t| t.name == call.name);
                let result = match call.name.as_str() {
                    crate::estimate::ESTIMATE_TOOL => {
                        crate::estimate::estimate_tool(&call.arguments, turn.input, turn.context)
                    }
                    PROBE_TOOL if offered => probe_tool(&call.arguments, turn),
                    _ => serde_json::json!({"error": format!(
                        "unknown tool '{}': the tools are {}",
                        call.name,
                        tools.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
                    )})
                    .to_string(),
                };
                *tool_calls_left = tool_calls_left.saturating_sub(1);
                entry.tool_calls.push(ToolExchange {
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                    result: result.clone(),
                });
                messages.push(ChatMessage::tool_result(&call.id, result));
            }
            entry.verdict = "tool_call".into();
            record(&entry)?;
        }
    }
}

/// Name of the probe tool offered to LLM planners inside `compress`.
pub const PROBE_TOOL: &str = "probe_group";

fn probe_tool_spec() -> ToolSpec {
    ToolSpec {
        name: PROBE_TOOL,
        description:
            "Measure now, without spending a round, what pruning ONE group alone costs on \
            the current model: the group (its id from the group table) is pruned by `ratio` of \
            its current units (0 < ratio < 1; L1, aligned counts, with reconstruction, as plans \
            are applied) and evaluated on the feedback images; you get the top-1 drop, the loss \
            increase and the output cosine lost. Each probe takes a model rewrite and an \
            evaluation (seconds to minutes): ask for the few that decide your plan, e.g. a \
            deeper cut of a cheap group than the table measured.",
        parameters: serde_json::json!({
            "type": "object",
            "properties": {
                "group": {"type": "string", "description": "a prunable group id"},
                "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                          "description": "fraction of its current units to remove"}
            },
            "required": ["group", "ratio"],
            "additionalProperties": false
        }),
    }
}

/// What the probe tool answers for `arguments` (`{"group", "ratio"}` as JSON text).
fn probe_tool(arguments: &str, turn: &mut Turn<'_>) -> String {
    #[derive(Deserialize)]
    struct Args {
        group: String,
        ratio: f64,
    }
    let answer = match serde_json::from_str::<Args>(arguments) {
        Err(e) => serde_json::json!({"error": format!(
            "arguments must be {{\"group\": \"<group id>\", \"ratio\": <0..1>}}: {e}"
        )}),
        Ok(args) if !(args.ratio > 0.0 && args.ratio < 1.0) => serde_json::json!({"error": format!(
            "ratio must be between 0 and 1 (exclusive), not {}", args.ratio
        )}),
        Ok(args) => match turn.measure.probe(&args.group, args.ratio) {
            Ok(m) => serde_json::json!({
                "group": m.group,
                "units": format!("{} -> {}", m.current, m.keep),
                "top1_drop_points": m.drop,
                "feedback_images": m.images,
                "loss_increase_nats": m.loss_increase,
                "output_cosine_lost": m.cosine_loss,
            }),
            Err(e) => serde_json::json!({"error": e}),
        },
    };
    answer.to_string()
}

/// Replays a recorded run: its recorded answers go through the same parse / validate / repair
/// path as the original answers did, with no network.
pub fn replay_planner(run_dir: &std::path::Path) -> Result<AnalysisAgent, AgentError> {
    let entries = crate::rundir::read_transcript(run_dir)?;
    let label = entries
        .first()
        .map(|e| e.planner.clone())
        .unwrap_or_else(|| "empty".into());
    // Answers, and the calls that failed (a guarded run planned those rounds with the
    // built-in planner; the replay fails them again so it does the same).
    let answers: Vec<Result<String, String>> = entries
        .into_iter()
        .filter_map(|e| match (e.answer, e.verdict.as_str()) {
            (Some(answer), _) => Some(Ok(answer)),
            (None, "provider_error") => Some(Err(e.error.unwrap_or_default())),
            (None, _) => None,
        })
        .collect();
    Ok(AnalysisAgent::new(Box::new(
        crate::provider::replay::ReplayProvider::recorded(label, answers),
    )))
}
