//! Inference for elementwise, data-movement and shape-computing ops (the ones exporters use
//! to compute reshapes at run time), with constant folding of small integer values.
use std::collections::HashMap;
use std::sync::OnceLock;

use super::util::{
    broadcast, broadcast_all, broadcast_index, dims_of, dtype_of, ints_input, ints_input_or_attr,
    invalid, need, normalize_axis, product,
};
use super::{fact_from_tensor, Dim, Fail, InferFn, InferResult, ValueFact, MAX_FOLDED_ELEMENTS};
use crate::attr;
use crate::proto::{tensor_proto::DataType, NodeProto};

const INT64: i32 = DataType::Int64 as i32;
const BOOL: i32 = DataType::Bool as i32;
const FLOAT: i32 = DataType::Float as i32;

/// Ops whose single output has the shape and dtype of input 0.
const SAME_AS_INPUT: &[&str] = &[
    "Relu",
    "Clip",
    "Sigmoid",
    "HardSwish",
    "HardSigmoid",
    "Erf",
    "Gelu",
    "FastGelu",
    "Sqrt",
    "Exp",
    "Log",
    "Tanh",
    "Abs",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Round",
    "Sin",
    "Cos",
    "Not",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Softplus",
    "Softsign",
    "PRelu",
    "Mish",
    "Celu",
    "Sign",
    "Softmax",
    "LogSoftmax",
    "Hardmax",
    "InstanceNormalization",
    "LpNormalization",
    "LRN",
    "QuickGelu",
    "BiasGelu",
];

/// Broadcasting binary/variadic ops with the dtype of input 0 and a folding rule for ints.
const ARITHMETIC: &[(&str, FoldFn)] = &[
    ("Add", fold_add),
    ("Sub", fold_sub),
    ("Mul", fold_mul),
    ("Div", fold_div),
    ("Pow", fold_none),
    ("Mod", fold_none),
    ("Max", fold_none),
    ("Min", fold_none),
    ("Sum", fold_add),
    ("Mean", fold_none),
    ("BitShift", fold_none),
];

/// Broadcasting comparisons and logic ops: bool output.
const COMPARISONS: &[(&str, FoldFn)] = &[
    ("Equal", fold_equal),
    ("Less", fold_none),
    ("LessOrEqual", fold_none),
    ("Greater", fold_none),
    ("GreaterOrEqual", fold_none),
    ("And", fold_none),
    ("Or", fold_none),
    ("Xor", fold_none),
];

type FoldFn = fn(&Dim, &Dim) -> Option<Dim>;

pub(super) fn lookup(op: &str) -> Option<InferFn> {
    static REGISTRY: OnceLock<HashMap<&'static str, InferFn>> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| {
        let mut r: HashMap<&'static str, InferFn> = HashMap::new();
        for &op in SAME_AS_INPUT {
            r.insert(op, same_as_input);
        }
        for &(op, _) in ARITHMETIC {
            r.insert(op, arithmetic);
        }
        for &(op, _) in COMPARISONS {
            r.insert(op, comparison);
        }
        let table: &[(&'static str, InferFn)] = &[
            ("Identity", identity),
            ("Neg", neg),
            ("Cast", cast),
            ("Where", where_op),
            ("Constant", constant),
            ("Shape", shape),
            ("Size", size),
            ("ConstantOfShape", constant_of_shape),
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
        r.extend(table.iter().copied());
        r
    });
    registry.get(op).copied()
}

fn one(fact: ValueFact) -> InferResult {
    Ok(vec![fact])
}

fn same_as_input(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    one(ValueFact::new(dtype_of(inputs, 0), dims_of(inputs, 0)?))
}

fn identity(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    one(need(inputs.first().cloned())?)
}

fn neg(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let mut fact = ValueFact::new(dtype_of(inputs, 0), dims_of(inputs, 0)?);
    fact.value = inputs[0].int_values().map(|v| {
        v.into_iter()
            .map(|x| Dim::Known(x.saturating_neg()))
            .collect()
    });
    one(fact)
}

fn cast(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let to = need(attr::get_int(node, "to"))? as i32;
    let mut fact = ValueFact::new(Some(to), dims_of(inputs, 0)?);
    if !crate::tensor::is_float(to) && inputs[0].dtype.is_some_and(|d| !crate::tensor::is_float(d))
    {
        fact.value = inputs[0].value.clone();
    }
    one(fact)
}

fn fold_none(_: &Dim, _: &Dim) -> Option<Dim> {
    None
}

fn fold_add(a: &Dim, b: &Dim) -> Option<Dim> {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => Some(Dim::Known(x.saturating_add(*y))),
        (d, Dim::Known(0)) | (Dim::Known(0), d) => Some(d.clone()),
        _ => None,
    }
}

fn fold_sub(a: &Dim, b: &Dim) -> Option<Dim> {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => Some(Dim::Known(x.saturating_sub(*y))),
        (d, Dim::Known(0)) => Some(d.clone()),
        _ => None,
    }
}

fn fold_mul(a: &Dim, b: &Dim) -> Option<Dim> {
    Some(product(&[a.clone(), b.clone()]))
}

fn fold_div(a: &Dim, b: &Dim) -> Option<Dim> {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) if *y != 0 => Some(Dim::Known(x.checked_div(*y)?)),
        (d, Dim::Known(1)) => Some(d.clone()),
        _ => None,
    }
}

/// Dims are never negative, so a symbol never equals a negative constant (exporters test
/// shapes against -1 this way).
fn fold_equal(a: &Dim, b: &Dim) -> Option<Dim> {
    let truth = match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => x == y,
        (Dim::Symbolic(x), Dim::Symbolic(y)) if x == y => true,
        (Dim::Symbolic(_), Dim::Known(k)) | (Dim::Known(k), Dim::Symbolic(_)) if *k < 0 => false,
        _ => return None,
    };
    Some(Dim::Known(truth as i64))
}

/// Folds an elementwise op over the values of its inputs, broadcasting.
fn fold_values(
    inputs: &[&ValueFact],
    out_dims: &[Dim],
    f: impl Fn(&[&Dim]) -> Option<Dim>,
) -> Option<Vec<Dim>> {
    let out_shape: Vec<usize> = out_dims
        .iter()
        .map(|d| d.known().and_then(|v| usize::try_from(v).ok()))
        .collect::<Option<_>>()?;
    let count = out_shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    if count > MAX_FOLDED_ELEMENTS {
        return None;
    }
    let mut shapes = Vec::new();
    let mut values = Vec::new();
    for input in inputs {
        let shape: Vec<usize> = input
            .known_dims()?
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect::<Option<_>>()?;
        let v = input.value.as_ref()?;
        if shape.len() > out_shape.len() || v.len() != shape.iter().product::<usize>() {
            return None;
        }
        shapes.push(shape);
        values.push(v);
    }
    (0..count)
        .map(|flat| {
            let args: Vec<&Dim> = values
                .iter()
                .zip(&shapes)
                .map(|(v, s)| &v[broadcast_index(flat, &out_shape, s)])
                .collect();
            f(&args)
        })
        .collect()
}

fn fold_table(table: &[(&str, FoldFn)], op: &str) -> FoldFn {
    table
        .iter()
        .find(|(name, _)| *name == op)
        .map(|&(_, f)| f)
        .unwrap_or(fold_none)
}

fn binary_like(
    node: &NodeProto,
    inputs: &[ValueFact],
    dtype: Option<i32>,
    fold: FoldFn,
) -> InferResult {
    let present: Vec<&ValueFact> = node
        .input
        .iter()
        .zip(inputs)
        .filter(|(name, _)| !name.is_empty())
        .map(|(_, f)| f)
        .collect();
    let owned: Vec<ValueFact> = present.iter().map(|f| (*f).clone()).collect();
    let dims = broadcast_all(&owned)?;
    let mut fact = ValueFact::new(dtype, dims.clone());
    if present.len() >= 2 {
        fact.value = fold_values(&present, &dims, |args| {
            args[1..]
                .iter()
                .try_fold(args[0].clone(), |acc, next| fold(&acc, next))
        });
    }
    one(fact)
}

fn arithmetic(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dtype = dtype_of(inputs, 0).or(dtype_of(inputs, 1));
    binary_like(node, inputs, dtype, fold_table(ARITHMETIC, node.op_type()))
}

fn comparison(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    binary_like(
        node,
        inputs,
        Some(BOOL),
        fold_table(COMPARISONS, node.op_type()),
    )
}

fn where_op(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = broadcast_all(inputs.get(..3).ok_or(Fail::Unknown)?)?;
    let mut fact = ValueFact::new(dtype_of(inputs, 1).or(dtype_of(inputs, 2)), dims.clone());
    let refs: Vec<&ValueFact> = inputs.iter().take(3).collect();
    fact.value = fold_values(&refs, &dims, |args| match args[0] {
        Dim::Known(0) => Some(args[2].clone()),
        Dim::Known(_) => Some(args[1].clone()),
        Dim::Symbolic(_) => None,
    });
    one(fact)
}

fn constant(node: &NodeProto, _inputs: &[ValueFact]) -> InferResult {
    if let Some(t) = attr::get_tensor(node, "value") {
        return one(fact_from_tensor(t));
    }
    if let Some(v) = attr::get_int(node, "value_int") {
        let mut fact = ValueFact::new(Some(INT64), vec![]);
        fact.value = Some(vec![Dim::Known(v)]);
        return one(fact);
    }
    if let Some(a) = attr::get(node, "value_ints") {
        let mut fact = ValueFact::new(Some(INT64), vec![Dim::Known(a.ints.len() as i64)]);
        fact.value = Some(a.ints.iter().map(|&v| Dim::Known(v)).collect());
        return one(fact);
    }
    if attr::get(node, "value_float").is_some() {
        return one(ValueFact::new(Some(FLOAT), vec![]));
    }
    if let Some(a) = attr::get(node, "value_floats") {
        return one(ValueFact::new(
            Some(FLOAT),
            vec![Dim::Known(a.floats.len() as i64)],
        ));
    }
    Err(Fail::Unknown)
}

fn shape(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    let rank = dims.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let start = clamp(attr::get_int(node, "start").unwrap_or(0));
    let end = clamp(attr::get_int(node, "end").unwrap_or(rank));
    let value: Vec<Dim> = dims.get(start..end.max(start)).unwrap_or(&[]).to_vec();
    let mut fact = ValueFact::new(Some(INT64), vec![Dim::Known(value.len() as i64)]);
    fact.value = Some(value);
    one(fact)
}

fn size(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    let mut fact = ValueFact::new(Some(INT64), vec![]);
    fact.value = Some(vec![product(&dims)]);
    one(fact)
}

fn constant_of_shape(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = need(inputs.first().and_then(|f| f.value.clone()))?;
    if dims.iter().any(|d| d.known().is_some_and(|v| v < 0)) {
        return invalid("negative dimension in the requested shape");
    }
    let fill = attr::get_tensor(node, "value").map(fact_from_tensor);
    let dtype = fill.as_ref().and_then(|f| f.dtype).unwrap_or(FLOAT);
    let mut fact = ValueFact::new(Some(dtype), dims.clone());
    if let Some(fill_value) = fill.and_then(|f| f.value).and_then(|v| v.first().cloned()) {
        if let Some(count) = fact
            .elements()
            .filter(|&n| n as usize <= MAX_FOLDED_ELEMENTS)
        {
            fact.value = Some(vec![fill_value; count as usize]);
        }
    }
    one(fact)
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
    one(ValueFact::new(dtype_of(inputs, 0), out))
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
            let total = need(dims[axis].known())?;
            let parts = attr::get_int(node, "num_outputs")
                .unwrap_or(outputs as i64)
                .max(1);
            let chunk = (total + parts - 1) / parts;
            (0..parts)
                .map(|k| (total - k * chunk).clamp(0, chunk))
                .collect()
        }
    };
    if sizes.len() != outputs {
        return invalid(format!("{} split sizes for {outputs} outputs", sizes.len()));
    }
    if let Some(total) = dims[axis].known() {
        if sizes.iter().sum::<i64>() != total || sizes.iter().any(|&s| s < 0) {
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
        let (first, last) = slice_bounds(starts[k], ends[k], step, size);
        let count = if step > 0 {
            ((last - first).max(0) + step - 1) / step
        } else {
            ((first - last).max(0) + (-step) - 1) / (-step)
        };
        out[axis] = Dim::Known(count);
        ranges.push((axis, first, count, step));
    }
    let mut fact = ValueFact::new(dtype_of(inputs, 0), out);
    if dims.len() == 1 {
        if let Some(v) = &inputs[0].value {
            let (first, count, step) =
                ranges
                    .first()
                    .map(|r| (r.1, r.2, r.3))
                    .unwrap_or((0, v.len() as i64, 1));
            fact.value = (0..count)
                .map(|i| v.get(usize::try_from(first + i * step).ok()?).cloned())
                .collect();
        }
    }
    one(fact)
}

/// ONNX Slice clamping: returns the effective (start, end) for a dim of `size`.
fn slice_bounds(start: i64, end: i64, step: i64, size: i64) -> (i64, i64) {
    let norm = |v: i64| if v < 0 { v.saturating_add(size) } else { v };
    if step > 0 {
        (norm(start).clamp(0, size), norm(end).clamp(0, size))
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
                    v.get(usize::try_from(if i < 0 { i + n } else { i }).ok()?)
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
    let span = limit.saturating_sub(start);
    let count = ((span + delta - delta.signum()) / delta).max(0);
    let mut fact = ValueFact::new(dtype, vec![Dim::Known(count)]);
    if count as usize <= MAX_FOLDED_ELEMENTS {
        fact.value = Some((0..count).map(|k| Dim::Known(start + k * delta)).collect());
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
