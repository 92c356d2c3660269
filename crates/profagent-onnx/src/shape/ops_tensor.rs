//! Inference for data-movement ops (Reshape, Flatten, Transpose, Concat, Split, Slice,
//! Gather, Unsqueeze/Squeeze, Expand, Tile, Range, Pad) and reductions, carrying folded
//! integer values through where exporters compute shapes with them.
use std::collections::HashMap;
use std::sync::OnceLock;

use super::ops_values::one;
use super::util::{
    broadcast, dims_of, dtype_of, ints_input, ints_input_or_attr, invalid, need, normalize_axis,
    product,
};
use super::{Dim, Fail, InferFn, InferResult, ValueFact, MAX_FOLDED_ELEMENTS};
use crate::attr;
use crate::proto::{tensor_proto::DataType, NodeProto};

const INT64: i32 = DataType::Int64 as i32;

pub(super) fn lookup(op: &str) -> Option<InferFn> {
    static REGISTRY: OnceLock<HashMap<&'static str, InferFn>> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| {
        let table: &[(&'static str, InferFn)] = &[
            ("Reshape", reshape),
            ("Flatten", flatten),
            ("Transpose", transpose),
            ("Concat", concat),
            ("Split", split),
            ("Slice", slice),
            ("Gather", gather),
            ("Unsqueeze", unsqueeze),
            ("Squeeze", squeeze),
            ("Expand", expand),
            ("Tile", tile),
            ("Range", range),
            ("Pad", pad),
            ("ScatterND", like_data),
            ("ScatterElements", like_data),
            ("Scatter", like_data),
            ("ReduceMean", reduce),
            ("ReduceSum", reduce),
            ("ReduceMax", reduce),
            ("ReduceMin", reduce),
            ("ReduceProd", reduce),
            ("ReduceL1", reduce),
            ("ReduceL2", reduce),
            ("ReduceSumSquare", reduce),
            ("ReduceLogSumExp", reduce),
            ("ArgMax", arg_reduce),
            ("ArgMin", arg_reduce),
        ];
        table.iter().copied().collect()
    });
    registry.get(op).copied()
}

/// Scatter ops write updates into a copy of `data`: same type and shape (its values, if
/// folded, are not carried: the updates change them).
fn like_data(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    Ok(vec![ValueFact::new(
        dtype_of(inputs, 0),
        dims_of(inputs, 0)?,
    )])
}

/// Splits dims into (product of known ones, list of symbols).
fn factor(dims: &[Dim]) -> (i64, Vec<String>) {
    let mut known = 1i64;
    let mut symbols = Vec::new();
    for d in dims {
        match d {
            Dim::Known(v) => known = known.saturating_mul(*v),
            Dim::Symbolic(s) => symbols.push(s.clone()),
        }
    }
    (known, symbols)
}

fn reshape(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let input = dims_of(inputs, 0)?;
    let target = need(inputs.get(1).and_then(|f| f.value.clone()))?;
    let allow_zero = attr::get_int(node, "allowzero").unwrap_or(0) != 0;
    let mut out: Vec<Dim> = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, d) in target.iter().enumerate() {
        match d {
            Dim::Known(0) if !allow_zero => out.push(need(input.get(i).cloned())?),
            Dim::Known(-1) => {
                if infer_at.replace(i).is_some() {
                    return invalid("more than one -1 in the target shape");
                }
                out.push(Dim::Known(1));
            }
            Dim::Known(v) if *v < 0 => return invalid(format!("target dim {v} is negative")),
            other => out.push(other.clone()),
        }
    }
    let (in_known, mut in_symbols) = factor(&input);
    let (out_known, out_symbols) = factor(&out);
    // Cancel symbols that appear on both sides; what remains must balance.
    let mut unmatched_out = Vec::new();
    for s in out_symbols {
        match in_symbols.iter().position(|x| *x == s) {
            Some(p) => {
                in_symbols.remove(p);
            }
            None => unmatched_out.push(s),
        }
    }
    match infer_at {
        Some(i) => {
            if !unmatched_out.is_empty() {
                return Err(Fail::Unknown);
            }
            if out_known == 0 {
                return invalid("cannot infer -1 next to a zero dim");
            }
            if in_known % out_known != 0 {
                return invalid(format!(
                    "input {} does not divide into target {}",
                    show(&input),
                    show(&target)
                ));
            }
            let mut remaining = vec![Dim::Known(in_known / out_known)];
            remaining.extend(in_symbols.into_iter().map(Dim::Symbolic));
            out[i] = product(&remaining);
        }
        None => {
            if unmatched_out.is_empty() && in_symbols.is_empty() && in_known != out_known {
                return invalid(format!(
                    "cannot reshape {} ({in_known} elements) to {}",
                    show(&input),
                    show(&out)
                ));
            }
        }
    }
    let mut fact = ValueFact::new(dtype_of(inputs, 0), out);
    fact.value = inputs[0].value.clone();
    one(fact)
}

fn show(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

fn flatten(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    let axis = attr::get_int(node, "axis").unwrap_or(1);
    let rank = dims.len() as i64;
    let a = if axis < 0 { axis + rank } else { axis };
    if !(0..=rank).contains(&a) {
        return invalid(format!("axis {axis} is out of range for rank {rank}"));
    }
    let (head, tail) = dims.split_at(a as usize);
    one(ValueFact::new(
        dtype_of(inputs, 0),
        vec![product(head), product(tail)],
    ))
}

fn transpose(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    let perm =
        attr::get_ints(node, "perm").unwrap_or_else(|| (0..dims.len() as i64).rev().collect());
    if perm.len() != dims.len() {
        return invalid(format!("perm {perm:?} does not match rank {}", dims.len()));
    }
    let mut seen = vec![false; dims.len()];
    let mut out = Vec::with_capacity(dims.len());
    for &p in &perm {
        let axis = normalize_axis(p, dims.len())?;
        if std::mem::replace(&mut seen[axis], true) {
            return invalid(format!("perm {perm:?} repeats axis {p}"));
        }
        out.push(dims[axis].clone());
    }
    let mut fact = ValueFact::new(dtype_of(inputs, 0), out.clone());
    if let Some(v) = &inputs[0].value {
        fact.value = fold_by_index(&dims, v, &out, &|out_index, in_index| {
            for (k, &p) in perm.iter().enumerate() {
                in_index[normalize_axis(p, out_index.len()).ok()?] = out_index[k];
            }
            Some(())
        });
    }
    one(fact)
}

fn concat(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let axis = need(attr::get_int(node, "axis"))?;
    let first = dims_of(inputs, 0)?;
    let axis = normalize_axis(axis, first.len())?;
    let mut out = first.clone();
    let mut along = Vec::new();
    let mut values: Option<Vec<Dim>> = Some(Vec::new());
    for (k, f) in inputs.iter().enumerate() {
        let dims = dims_of(inputs, k)?;
        if dims.len() != first.len() {
            return invalid(format!(
                "input {k} has rank {}, input 0 has {}",
                dims.len(),
                first.len()
            ));
        }
        for (i, d) in dims.iter().enumerate() {
            if i != axis && matches!(out[i], Dim::Symbolic(_)) && d.known().is_some() {
                out[i] = d.clone();
            }
        }
        along.push(dims[axis].clone());
        values = match (values, &f.value) {
            (Some(mut acc), Some(v)) if first.len() == 1 => {
                acc.extend(v.iter().cloned());
                Some(acc)
            }
            _ => None,
        };
    }
    let total = along
        .iter()
        .try_fold(0i64, |acc, d| d.known().map(|v| acc.saturating_add(v)));
    out[axis] = match total {
        Some(v) => Dim::Known(v),
        None if along.len() == 1 => along[0].clone(),
        None => Dim::Symbolic(
            along
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("+"),
        ),
    };
    let mut fact = ValueFact::new(dtype_of(inputs, 0), out);
    fact.value = values;
    one(fact)
}

fn split(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    let axis = normalize_axis(attr::get_int(node, "axis").unwrap_or(0), dims.len())?;
    let outputs = node.output.len();
    let sizes = match ints_input_or_attr(node, inputs, 1, "split")? {
        Some(s) => s,
        None => {
            let total = need(dims[axis].known())?.max(0);
            let parts = attr::get_int(node, "num_outputs").unwrap_or(outputs as i64);
            if parts < 1 || parts as usize != outputs {
                return invalid(format!("num_outputs {parts} for {outputs} outputs"));
            }
            let chunk = total.saturating_add(parts - 1) / parts;
            (0..parts)
                .map(|k| {
                    total
                        .saturating_sub(k.saturating_mul(chunk))
                        .clamp(0, chunk)
                })
                .collect()
        }
    };
    if sizes.len() != outputs {
        return invalid(format!("{} split sizes for {outputs} outputs", sizes.len()));
    }
    if let Some(total) = dims[axis].known() {
        let sum = sizes.iter().fold(0i64, |acc, &s| acc.saturating_add(s));
        if sum != total || sizes.iter().any(|&s| s < 0) {
            return invalid(format!(
                "split sizes {sizes:?} do not add up to dim {total}"
            ));
        }
    }
    Ok(sizes
        .iter()
        .map(|&s| {
            let mut d = dims.clone();
            d[axis] = Dim::Known(s);
            ValueFact::new(dtype_of(inputs, 0), d)
        })
        .collect())
}

fn slice(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    let starts = need(ints_input_or_attr(node, inputs, 1, "starts")?)?;
    let ends = need(ints_input_or_attr(node, inputs, 2, "ends")?)?;
    let axes = ints_input_or_attr(node, inputs, 3, "axes")?
        .unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps =
        ints_input_or_attr(node, inputs, 4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return invalid("starts, ends, axes and steps differ in length");
    }
    let mut out = dims.clone();
    let mut ranges: Vec<(usize, i64, i64, i64)> = Vec::new();
    for k in 0..starts.len() {
        let axis = normalize_axis(axes[k], dims.len())?;
        let step = steps[k];
        if step == 0 {
            return invalid("slice step is 0");
        }
        let Some(size) = dims[axis].known() else {
            // A symbolic dim survives only an untouched full-range slice.
            if starts[k] == 0 && ends[k] >= i32::MAX as i64 && step == 1 {
                continue;
            }
            return Err(Fail::Unknown);
        };
        let (first, last) = slice_bounds(starts[k], ends[k], step, size.max(0));
        // i128: steps and bounds come from the file and may be extreme.
        let (first128, last128, step128) = (first as i128, last as i128, step as i128);
        let count = if step > 0 {
            ((last128 - first128).max(0) + step128 - 1) / step128
        } else {
            ((first128 - last128).max(0) - step128 - 1) / (-step128)
        } as i64;
        out[axis] = Dim::Known(count);
        ranges.push((axis, first, count, step));
    }
    let mut fact = ValueFact::new(dtype_of(inputs, 0), out.clone());
    if let Some(v) = &inputs[0].value {
        // Folded values of any rank (exporters slice [n, 2] pad tables backwards).
        fact.value = fold_by_index(&dims, v, &out, &|out_index, in_index| {
            in_index.copy_from_slice(out_index);
            for &(axis, first, _, step) in &ranges {
                in_index[axis] = first.checked_add(out_index[axis].checked_mul(step)?)?;
            }
            Some(())
        });
    }
    one(fact)
}

/// Writes the input index an output index reads (`None`: out of range).
type IndexMap<'a> = dyn Fn(&[i64], &mut [i64]) -> Option<()> + 'a;

/// Row-major values of an output whose element at each index is the input element at
/// `map(out_index)`: folds Slice and Transpose of small constant tensors. `None` when a dim is
/// not known or an index falls outside the input.
fn fold_by_index(
    in_dims: &[Dim],
    values: &[Dim],
    out_dims: &[Dim],
    map: &IndexMap<'_>,
) -> Option<Vec<Dim>> {
    let in_dims: Vec<i64> = in_dims.iter().map(Dim::known).collect::<Option<_>>()?;
    let out_dims: Vec<i64> = out_dims.iter().map(Dim::known).collect::<Option<_>>()?;
    let total: i64 = out_dims.iter().product();
    if total < 0
        || total as usize > MAX_FOLDED_ELEMENTS
        || in_dims.iter().product::<i64>() != values.len() as i64
    {
        return None;
    }
    let mut out_index = vec![0i64; out_dims.len()];
    let mut in_index = vec![0i64; in_dims.len()];
    let mut folded = Vec::with_capacity(total as usize);
    for _ in 0..total {
        map(&out_index, &mut in_index)?;
        let mut flat = 0i64;
        for (&i, &d) in in_index.iter().zip(&in_dims) {
            if !(0..d).contains(&i) {
                return None;
            }
            flat = flat * d + i;
        }
        folded.push(values.get(flat as usize)?.clone());
        // Next output index, row-major.
        for axis in (0..out_dims.len()).rev() {
            out_index[axis] += 1;
            if out_index[axis] < out_dims[axis] {
                break;
            }
            out_index[axis] = 0;
        }
    }
    Some(folded)
}

/// ONNX Slice clamping: returns the effective (start, end) for a dim of `size`.
fn slice_bounds(start: i64, end: i64, step: i64, size: i64) -> (i64, i64) {
    let norm = |v: i64| if v < 0 { v.saturating_add(size) } else { v };
    if step > 0 {
        (norm(start).clamp(0, size), norm(end).clamp(0, size))
    } else if size == 0 {
        (0, 0)
    } else {
        (
            norm(start).clamp(0, size - 1),
            norm(end).clamp(-1, size - 1),
        )
    }
}

fn gather(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let data = dims_of(inputs, 0)?;
    let indices = dims_of(inputs, 1)?;
    let axis = normalize_axis(attr::get_int(node, "axis").unwrap_or(0), data.len())?;
    let mut out = data[..axis].to_vec();
    out.extend(indices.iter().cloned());
    out.extend(data[axis + 1..].iter().cloned());
    let mut fact = ValueFact::new(dtype_of(inputs, 0), out);
    if data.len() == 1 {
        if let (Some(v), Some(idx)) = (&inputs[0].value, inputs[1].int_values()) {
            let n = v.len() as i64;
            fact.value = idx
                .iter()
                .map(|&i| {
                    v.get(usize::try_from(if i < 0 { i.checked_add(n)? } else { i }).ok()?)
                        .cloned()
                })
                .collect();
            if fact.value.is_none() {
                return invalid(format!("index out of range for {n} elements"));
            }
        }
    }
    one(fact)
}

fn unsqueeze(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    let axes = need(ints_input_or_attr(node, inputs, 1, "axes")?)?;
    let rank = dims.len() + axes.len();
    let mut inserted = vec![false; rank];
    for &a in &axes {
        let axis = normalize_axis(a, rank)?;
        if std::mem::replace(&mut inserted[axis], true) {
            return invalid(format!("axes {axes:?} repeat {a}"));
        }
    }
    let mut rest = dims.into_iter();
    let out = inserted
        .iter()
        .map(|&ins| {
            if ins {
                Some(Dim::Known(1))
            } else {
                rest.next()
            }
        })
        .collect::<Option<Vec<_>>>();
    let mut fact = ValueFact::new(dtype_of(inputs, 0), need(out)?);
    fact.value = inputs[0].value.clone();
    one(fact)
}

fn squeeze(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    let axes = ints_input_or_attr(node, inputs, 1, "axes")?;
    let remove: Vec<bool> = match axes {
        Some(axes) => {
            let mut r = vec![false; dims.len()];
            for a in axes {
                let axis = normalize_axis(a, dims.len())?;
                if dims[axis].known().is_some_and(|v| v != 1) {
                    return invalid(format!("cannot squeeze axis {a} of size {}", dims[axis]));
                }
                r[axis] = true;
            }
            r
        }
        None => dims
            .iter()
            .map(|d| d.known().map(|v| v == 1))
            .collect::<Option<_>>()
            .ok_or(Fail::Unknown)?,
    };
    let out = dims
        .into_iter()
        .zip(remove)
        .filter(|(_, r)| !r)
        .map(|(d, _)| d)
        .collect();
    let mut fact = ValueFact::new(dtype_of(inputs, 0), out);
    fact.value = inputs[0].value.clone();
    one(fact)
}

fn expand(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    let target = need(inputs.get(1).and_then(|f| f.value.clone()))?;
    one(ValueFact::new(
        dtype_of(inputs, 0),
        broadcast(&dims, &target)?,
    ))
}

fn tile(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    let repeats = need(inputs.get(1).and_then(ValueFact::int_values))?;
    if repeats.len() != dims.len() {
        return invalid(format!("{} repeats for rank {}", repeats.len(), dims.len()));
    }
    let out = dims
        .iter()
        .zip(&repeats)
        .map(|(d, &r)| product(&[d.clone(), Dim::Known(r)]))
        .collect();
    one(ValueFact::new(dtype_of(inputs, 0), out))
}

fn range(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dtype = dtype_of(inputs, 0);
    let scalar = |i: usize| {
        need(
            inputs
                .get(i)
                .and_then(ValueFact::int_values)
                .and_then(|v| v.first().copied()),
        )
    };
    let (Ok(start), Ok(limit), Ok(delta)) = (scalar(0), scalar(1), scalar(2)) else {
        return Err(Fail::Unknown);
    };
    if delta == 0 {
        return invalid("Range delta is 0");
    }
    // ceil((limit - start) / delta), in i128 so extreme operands cannot overflow.
    let (span, step) = (limit as i128 - start as i128, delta as i128);
    let count = ((span + step - step.signum()) / step).clamp(0, i64::MAX as i128) as i64;
    let mut fact = ValueFact::new(dtype, vec![Dim::Known(count)]);
    if count as usize <= MAX_FOLDED_ELEMENTS {
        fact.value = (0..count)
            .map(|k| Some(Dim::Known(start.checked_add(k.checked_mul(delta)?)?)))
            .collect();
    }
    one(fact)
}

fn pad(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    let pads = need(ints_input_or_attr(node, inputs, 1, "pads")?)?;
    let axes = match node.input.get(3).filter(|s| !s.is_empty()) {
        Some(_) => need(ints_input(inputs, 3)?)?
            .into_iter()
            .map(|a| normalize_axis(a, dims.len()))
            .collect::<Result<Vec<_>, _>>()?,
        None => (0..dims.len()).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return invalid(format!("{} pads for {} axes", pads.len(), axes.len()));
    }
    let mut out = dims.clone();
    for (k, &axis) in axes.iter().enumerate() {
        let extra = pads[k].saturating_add(pads[k + axes.len()]);
        out[axis] = match &dims[axis] {
            Dim::Known(v) => Dim::Known(v.saturating_add(extra)),
            d if extra == 0 => d.clone(),
            _ => return Err(Fail::Unknown),
        };
    }
    one(ValueFact::new(dtype_of(inputs, 0), out))
}

fn reduce_dims(node: &NodeProto, dims: &[Dim], axes: Option<Vec<i64>>) -> Result<Vec<Dim>, Fail> {
    let keep = attr::get_int(node, "keepdims").unwrap_or(1) != 0;
    let noop = attr::get_int(node, "noop_with_empty_axes").unwrap_or(0) != 0;
    let axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a
            .into_iter()
            .map(|x| normalize_axis(x, dims.len()))
            .collect::<Result<_, _>>()?,
        _ if noop => return Ok(dims.to_vec()),
        _ => (0..dims.len()).collect(),
    };
    Ok(dims
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match (axes.contains(&i), keep) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::Known(1)),
            (true, false) => None,
        })
        .collect())
}

fn reduce(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    let axes = ints_input_or_attr(node, inputs, 1, "axes")?;
    one(ValueFact::new(
        dtype_of(inputs, 0),
        reduce_dims(node, &dims, axes)?,
    ))
}

fn arg_reduce(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    let axis = attr::get_int(node, "axis").unwrap_or(0);
    one(ValueFact::new(
        Some(INT64),
        reduce_dims(node, &dims, Some(vec![axis]))?,
    ))
}
