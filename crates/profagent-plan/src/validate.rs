//! Validation of a plan against a `PlanContext`.
//!
//! Every problem becomes a `PlanIssue` that names the decision (`pruning[2]`), the offending
//! value and, for unknown names, the closest known ones, so an LLM can repair its plan from
//! the message alone. Only `validate` builds a `ValidatedPlan`, and appliers take a
//! `ValidatedPlan`: a plan with errors cannot be applied by construction.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::context::{GroupInfo, PlanContext};
use crate::error::PlanError;
use crate::keep::kept_after;
use crate::types::{
    CompressionPlan, ImportanceCriterion, PruneDecision, PruneUnit, QuantMode, QuantSetting,
    PLAN_SCHEMA_VERSION,
};

/// How many "did you mean" names an unknown-name issue lists.
const SUGGESTIONS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The plan cannot be applied.
    Error,
    /// Applied, but probably not what the planner meant.
    Warning,
}

/// The kinds of problems a plan can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueCode {
    SchemaVersion,
    UnknownTarget,
    AmbiguousTarget,
    NotPrunable,
    Protected,
    RatioOutOfRange,
    DuplicateTarget,
    HeadsUnsupported,
    NothingLeft,
    RoundTo,
    NoEffect,
    UnknownLayer,
    ModeUnavailable,
    LayerNotQuantizable,
    MixedModes,
    DuplicateLayer,
    MissingRationale,
    TooManyDecisions,
}

/// One problem found in a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanIssue {
    pub severity: Severity,
    pub code: IssueCode,
    /// Where in the plan: `pruning[1]`, `quantization.layers[0]`, `schema_version`.
    pub location: String,
    pub message: String,
}

impl std::fmt::Display for PlanIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level} at {}: {}", self.location, self.message)
    }
}

/// A pruning decision resolved to its group, with exact channel counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedPrune {
    pub group: String,
    pub unit: PruneUnit,
    pub criterion: ImportanceCriterion,
    pub ratio: f64,
    pub round_to: u32,
    /// Channels (or heads) before and after.
    pub current: usize,
    pub keep: usize,
    /// Channels per counted unit (`GroupInfo::unit_channels`): a group a grouped convolution
    /// reads counts whole conv groups; 1 otherwise.
    #[serde(
        default = "crate::context::one",
        skip_serializing_if = "crate::context::is_one"
    )]
    pub unit_channels: usize,
}

impl ResolvedPrune {
    /// "current→keep", with the unit when it is not one channel or head ("6→5 groups of 8
    /// channels"): what a person reads in tables and progress lines.
    pub fn counts(&self) -> String {
        let (current, keep) = (self.current, self.keep);
        match self.unit_channels {
            width if width > 1 => format!("{current}→{keep} groups of {width} channels"),
            _ => format!("{current}→{keep}"),
        }
    }
}

/// A plan that passed validation, with every decision resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidatedPlan {
    plan: CompressionPlan,
    pruning: Vec<ResolvedPrune>,
    /// Non-float quantization per layer (float layers are absent); `None` when the plan
    /// keeps the current quantization choice.
    quantization: Option<BTreeMap<String, QuantSetting>>,
    warnings: Vec<PlanIssue>,
}

impl ValidatedPlan {
    pub fn plan(&self) -> &CompressionPlan {
        &self.plan
    }
    pub fn pruning(&self) -> &[ResolvedPrune] {
        &self.pruning
    }
    pub fn quantization(&self) -> Option<&BTreeMap<String, QuantSetting>> {
        self.quantization.as_ref()
    }
    pub fn warnings(&self) -> &[PlanIssue] {
        &self.warnings
    }
    /// The non-float modes the plan uses.
    pub fn quant_modes(&self) -> BTreeSet<QuantMode> {
        self.quantization
            .iter()
            .flat_map(|m| m.values().map(|s| s.mode))
            .collect()
    }
}

/// Checks `plan` against `context`; returns every issue, errors and warnings, in plan order.
pub fn check(plan: &CompressionPlan, context: &PlanContext) -> Vec<PlanIssue> {
    let mut issues = Vec::new();
    let _ = resolve(plan, context, &mut issues);
    issues
}

/// Validates and resolves a plan. Errors reject it (`PlanError::Rejected` lists every issue);
/// warnings travel with the `ValidatedPlan`.
pub fn validate(plan: &CompressionPlan, context: &PlanContext) -> Result<ValidatedPlan, PlanError> {
    let mut issues = Vec::new();
    let (pruning, quantization) = resolve(plan, context, &mut issues);
    if issues.iter().any(|i| i.severity == Severity::Error) {
        return Err(PlanError::Rejected { issues });
    }
    Ok(ValidatedPlan {
        plan: plan.clone(),
        pruning,
        quantization,
        warnings: issues,
    })
}

type Resolved = (Vec<ResolvedPrune>, Option<BTreeMap<String, QuantSetting>>);

fn resolve(plan: &CompressionPlan, context: &PlanContext, issues: &mut Vec<PlanIssue>) -> Resolved {
    if plan.schema_version != PLAN_SCHEMA_VERSION {
        issues.push(error(
            IssueCode::SchemaVersion,
            "schema_version",
            format!(
                "schema_version is {}, this tool reads version {PLAN_SCHEMA_VERSION}",
                plan.schema_version
            ),
        ));
    }
    if plan.pruning.len() > crate::types::MAX_PRUNING_DECISIONS {
        issues.push(error(
            IssueCode::TooManyDecisions,
            "pruning",
            format!(
                "{} pruning decisions; a plan holds at most {} (pick the most valuable groups, later rounds can take more)",
                plan.pruning.len(),
                crate::types::MAX_PRUNING_DECISIONS
            ),
        ));
    }
    if let Some(q) = &plan.quantization {
        if q.layers.len() > crate::types::MAX_LAYER_OVERRIDES {
            issues.push(error(
                IssueCode::TooManyDecisions,
                "quantization.layers",
                format!(
                    "{} per-layer overrides; a plan holds at most {} (set `default` and override the exceptions)",
                    q.layers.len(),
                    crate::types::MAX_LAYER_OVERRIDES
                ),
            ));
        }
    }
    let mut pruning = Vec::new();
    let mut seen_groups: BTreeMap<String, usize> = BTreeMap::new();
    for (i, decision) in plan.pruning.iter().enumerate() {
        let location = format!("pruning[{i}]");
        if let Some(resolved) = resolve_prune(decision, context, &location, issues) {
            if let Some(first) = seen_groups.insert(resolved.group.clone(), i) {
                issues.push(error(
                    IssueCode::DuplicateTarget,
                    &location,
                    format!(
                        "group '{}' is already pruned by pruning[{first}]; a group gets one decision per plan (layers of one group are pruned together)",
                        resolved.group
                    ),
                ));
                continue;
            }
            pruning.push(resolved);
        }
    }
    let quantization = plan
        .quantization
        .as_ref()
        .map(|q| resolve_quantization(q, context, issues));
    (pruning, quantization)
}

fn resolve_prune(
    decision: &PruneDecision,
    context: &PlanContext,
    location: &str,
    issues: &mut Vec<PlanIssue>,
) -> Option<ResolvedPrune> {
    if decision.rationale.trim().is_empty() {
        issues.push(warning(
            IssueCode::MissingRationale,
            location,
            format!("no rationale for pruning '{}'", decision.target),
        ));
    }
    let (group_id, group) = find_group(&decision.target, context, location, issues)?;
    if let Some(reason) = &group.not_prunable {
        issues.push(error(
            IssueCode::NotPrunable,
            location,
            format!("group '{group_id}' cannot be pruned: {reason}"),
        ));
        return None;
    }
    if let Some(layer) = context.group_is_protected(group) {
        issues.push(error(
            IssueCode::Protected,
            location,
            format!(
                "group '{group_id}' prunes the outputs of protected layer '{layer}', which must keep them"
            ),
        ));
        return None;
    }
    let ratio = decision.ratio;
    if decision.keep.is_some() && ratio != 0.0 {
        issues.push(error(
            IssueCode::RatioOutOfRange,
            location,
            format!(
                "'{}' gives both a ratio ({ratio}) and keep ({}): give one of them",
                decision.target,
                decision.keep.unwrap_or_default()
            ),
        ));
        return None;
    }
    if decision.keep.is_none()
        && (!ratio.is_finite() || ratio <= 0.0 || ratio > context.max_prune_ratio)
    {
        issues.push(error(
            IssueCode::RatioOutOfRange,
            location,
            format!(
                "ratio {ratio} for '{}' is out of range: it must be above 0 and at most {} (the fraction of channels to remove; 1.0 would remove the whole group)",
                decision.target, context.max_prune_ratio
            ),
        ));
        return None;
    }
    if decision.round_to == 0 {
        issues.push(error(
            IssueCode::RoundTo,
            location,
            "round_to must be at least 1 (1 = no rounding)".to_string(),
        ));
        return None;
    }
    let (current, round_to) = match decision.unit {
        PruneUnit::Channels => (group.channels, decision.round_to as usize),
        PruneUnit::Heads => match group.heads {
            Some(heads) => (heads, 1),
            None => {
                issues.push(error(
                    IssueCode::HeadsUnsupported,
                    location,
                    format!("unit 'heads' needs an attention group, and '{group_id}' has no heads; use unit 'channels'"),
                ));
                return None;
            }
        },
    };
    if decision.unit == PruneUnit::Heads && decision.round_to > 1 {
        issues.push(warning(
            IssueCode::RoundTo,
            location,
            "round_to is ignored when pruning heads".to_string(),
        ));
    }
    let (keep, ratio) = match decision.keep {
        None => (kept_after(current, ratio, round_to), ratio),
        Some(keep) => {
            let removed = current.saturating_sub(keep) as f64 / current.max(1) as f64;
            if keep > current || removed > context.max_prune_ratio + 1e-9 {
                issues.push(error(
                    IssueCode::RatioOutOfRange,
                    location,
                    format!(
                        "keep {keep} for '{}' is out of range: the group has {current} {}, and at most {} of them may be removed in one round",
                        decision.target,
                        unit_name(decision.unit),
                        context.max_prune_ratio
                    ),
                ));
                return None;
            }
            (keep, removed)
        }
    };
    let minimum = match decision.unit {
        PruneUnit::Channels => group.min_channels.max(1),
        PruneUnit::Heads => 1,
    };
    if keep < minimum {
        issues.push(error(
            IssueCode::NothingLeft,
            location,
            format!("removing {ratio} of the {current} {} of '{group_id}' keeps {keep}, fewer than the minimum {minimum}", unit_name(decision.unit)),
        ));
        return None;
    }
    if keep == current {
        issues.push(warning(
            IssueCode::NoEffect,
            location,
            format!(
                "ratio {ratio} with round_to {round_to} removes nothing from the {current} {} of '{group_id}'",
                unit_name(decision.unit)
            ),
        ));
    }
    Some(ResolvedPrune {
        group: group_id.to_string(),
        unit: decision.unit,
        criterion: decision.criterion,
        ratio,
        round_to: round_to as u32,
        current,
        keep,
        unit_channels: match decision.unit {
            PruneUnit::Channels => group.unit_channels.max(1),
            PruneUnit::Heads => 1,
        },
    })
}

fn unit_name(unit: PruneUnit) -> &'static str {
    match unit {
        PruneUnit::Channels => "channels",
        PruneUnit::Heads => "heads",
    }
}

/// A target is a group id, or a layer that belongs to exactly one group.
fn find_group<'c>(
    target: &str,
    context: &'c PlanContext,
    location: &str,
    issues: &mut Vec<PlanIssue>,
) -> Option<(&'c str, &'c GroupInfo)> {
    if let Some((id, group)) = context.groups.get_key_value(target) {
        return Some((id.as_str(), group));
    }
    let owners = context.groups_of_layer(target);
    match owners.as_slice() {
        [one] => context
            .groups
            .get_key_value(*one)
            .map(|(k, v)| (k.as_str(), v)),
        [] => {
            let known: Vec<&str> = context.groups.keys().map(String::as_str).collect();
            let why = if context.layers.contains_key(target) {
                format!("layer '{target}' belongs to no prunable group")
            } else {
                format!("'{target}' is neither a group id nor a layer of this model")
            };
            issues.push(error(
                IssueCode::UnknownTarget,
                location,
                format!("{why}{}", did_you_mean(target, &known)),
            ));
            None
        }
        many => {
            issues.push(error(
                IssueCode::AmbiguousTarget,
                location,
                format!(
                    "layer '{target}' belongs to several groups ({}); name the group id instead",
                    many.join(", ")
                ),
            ));
            None
        }
    }
}

fn resolve_quantization(
    quantization: &crate::types::QuantizationPlan,
    context: &PlanContext,
    issues: &mut Vec<PlanIssue>,
) -> BTreeMap<String, QuantSetting> {
    let available =
        |mode: QuantMode| mode == QuantMode::None || context.quant_modes.contains(&mode);
    let default = quantization.default;
    if !available(default.mode) {
        issues.push(error(
            IssueCode::ModeUnavailable,
            "quantization.default",
            format!(
                "mode '{}' is not available here (available: {})",
                default.mode,
                mode_list(context)
            ),
        ));
    }
    let mut overrides: BTreeMap<&str, QuantSetting> = BTreeMap::new();
    let layer_names: Vec<&str> = context.layers.keys().map(String::as_str).collect();
    for (i, layer) in quantization.layers.iter().enumerate() {
        let location = format!("quantization.layers[{i}]");
        let setting = layer.setting();
        let Some(info) = context.layers.get(&layer.layer) else {
            issues.push(error(
                IssueCode::UnknownLayer,
                &location,
                format!(
                    "'{}' is not a layer of this model{}",
                    layer.layer,
                    did_you_mean(&layer.layer, &layer_names)
                ),
            ));
            continue;
        };
        if overrides.contains_key(layer.layer.as_str()) {
            issues.push(error(
                IssueCode::DuplicateLayer,
                &location,
                format!("layer '{}' has two quantization entries", layer.layer),
            ));
            continue;
        }
        if !available(setting.mode) {
            issues.push(error(
                IssueCode::ModeUnavailable,
                &location,
                format!(
                    "mode '{}' is not available here (available: {})",
                    setting.mode,
                    mode_list(context)
                ),
            ));
            continue;
        }
        if setting.mode != QuantMode::None && !info.quant_modes.contains(&setting.mode) {
            issues.push(error(
                IssueCode::LayerNotQuantizable,
                &location,
                format!(
                    "layer '{}' ({}) cannot be quantized with mode '{}'{}",
                    layer.layer,
                    info.op_types.join("/"),
                    setting.mode,
                    if info.quant_modes.is_empty() {
                        ": it has no quantizable op".to_string()
                    } else {
                        format!(
                            "; it supports {}",
                            info.quant_modes
                                .iter()
                                .map(|m| m.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ),
            ));
            continue;
        }
        overrides.insert(layer.layer.as_str(), setting);
    }
    let mut resolved = BTreeMap::new();
    for (name, info) in &context.layers {
        let setting = overrides.get(name.as_str()).copied().unwrap_or(default);
        if setting.mode != QuantMode::None && info.quant_modes.contains(&setting.mode) {
            resolved.insert(name.clone(), setting);
        }
    }
    let modes: BTreeSet<QuantMode> = resolved.values().map(|s| s.mode).collect();
    if modes.len() > 1 && !context.mixed_quant_modes {
        issues.push(error(
            IssueCode::MixedModes,
            "quantization",
            format!(
                "the plan mixes quantization modes ({}) and this applier quantizes a model with one mode; use one mode and 'none' for layers to keep in float",
                modes.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    resolved
}

fn mode_list(context: &PlanContext) -> String {
    let mut modes = vec!["none"];
    modes.extend(
        context
            .quant_modes
            .iter()
            .filter(|m| **m != QuantMode::None)
            .map(|m| m.as_str()),
    );
    modes.join(", ")
}

fn error(code: IssueCode, location: &str, message: String) -> PlanIssue {
    PlanIssue {
        severity: Severity::Error,
        code,
        location: location.to_string(),
        message,
    }
}

fn warning(code: IssueCode, location: &str, message: String) -> PlanIssue {
    PlanIssue {
        severity: Severity::Warning,
        code,
        location: location.to_string(),
        message,
    }
}

/// `; did you mean 'a', 'b'?` with the closest known names, or nothing.
fn did_you_mean(name: &str, known: &[&str]) -> String {
    let mut scored: Vec<(usize, &str)> =
        known.iter().map(|k| (edit_distance(name, k), *k)).collect();
    scored.sort();
    let limit = (name.len() / 2).max(3);
    let close: Vec<String> = scored
        .iter()
        .filter(|(d, _)| *d <= limit)
        .take(SUGGESTIONS)
        .map(|(_, k)| format!("'{k}'"))
        .collect();
    if close.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", close.join(", "))
    }
}

/// Levenshtein distance (names are short; O(n·m) is fine).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != cb);
            row[j + 1] = substitution.min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("layer1.0.conv1", "layer1.0.conv1"), 0);
        assert_eq!(edit_distance("layer1.0.conv1", "layer1.0.conv2"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            did_you_mean("layr1.0.conv1", &["layer1.0.conv1", "fc"]),
            "; did you mean 'layer1.0.conv1'?"
        );
    }
}
