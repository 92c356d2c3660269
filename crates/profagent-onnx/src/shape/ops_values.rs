//! Inference for elementwise ops and the ops that compute shapes as values (`Shape`,
//! `Size`, `Constant`, `ConstantOfShape`, integer arithmetic, `Equal`/`Where`), with
//! constant folding of small integer values so exporter shape chains resolve.
use std::collections::HashMap;
use std::sync::OnceLock;

use super::util::{broadcast_all, broadcast_index, dims_of, dtype_of, invalid, need, product};
use super::{fact_from_tensor, Dim, Fail, InferFn, InferResult, ValueFact, MAX_FOLDED_ELEMENTS};
use crate::attr;
use crate::ops::Elementwise;
use crate::proto::{tensor_proto::DataType, NodeProto};

const INT64: i32 = DataType::Int64 as i32;
const BOOL: i32 = DataType::Bool as i32;
const FLOAT: i32 = DataType::Float as i32;

/// Ops besides the element-wise ones (`crate::ops::ELEMENTWISE`) whose single output has the
/// shape and dtype of input 0: they mix values along an axis or take a per-channel operand.
const SAME_AS_INPUT: &[&str] = &[
    "PRelu",
    "Softmax",
    "LogSoftmax",
    "Hardmax",
    "InstanceNormalization",
    "LpNormalization",
    "LRN",
    "BiasGelu",
];

/// Integer folding rules of the broadcasting element-wise ops (`crate::ops::ELEMENTWISE`,
/// binary and variadic), which take the dtype of input 0; an op without one folds nothing.
const ARITHMETIC: &[(&str, FoldFn)] = &[
    ("Add", fold_add),
    ("Sub", fold_sub),
    ("Mul", fold_mul),
    ("Div", fold_div),
    ("Pow", fold_none),
    ("Mod", fold_mod),
    ("Max", fold_max),
    ("Min", fold_min),
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
        // Element-wise ops from the one table; Cast, Dropout and the ops with a value rule
        // (Identity, Neg) get their own entries below or in ops_nn.rs.
        for &(op, kind) in crate::ops::ELEMENTWISE {
            match kind {
                Elementwise::Unary => {
                    r.insert(op, same_as_input);
                }
                Elementwise::Binary | Elementwise::Variadic => {
                    r.insert(op, arithmetic);
                }
                Elementwise::Cast | Elementwise::Dropout => {}
            }
        }
        for &op in SAME_AS_INPUT {
            r.insert(op, same_as_input);
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
        ];
        r.extend(table.iter().copied());
        r
    });
    registry.get(op).copied()
}

pub(super) fn one(fact: ValueFact) -> InferResult {
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

/// Exporters pad to a window multiple with `(w - x % w) % w`. Only non-negative operands are
/// folded: there ONNX's two conventions (`fmod` 0 and 1) agree.
fn fold_mod(a: &Dim, b: &Dim) -> Option<Dim> {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) if *x >= 0 && *y > 0 => Some(Dim::Known(x % y)),
        _ => None,
    }
}

fn fold_max(a: &Dim, b: &Dim) -> Option<Dim> {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => Some(Dim::Known(*x.max(y))),
        _ => None,
    }
}

fn fold_min(a: &Dim, b: &Dim) -> Option<Dim> {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => Some(Dim::Known(*x.min(y))),
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
