//! Helpers shared by the op inference functions: dim arithmetic with symbols, numpy
//! broadcasting, axis normalisation, and reading integer operands that may come from an
//! input (newer opsets) or an attribute (older ones).
use super::{Dim, Fail, ValueFact};
use crate::attr;
use crate::proto::NodeProto;

/// `Fail::Unknown` unless present.
pub fn need<T>(value: Option<T>) -> Result<T, Fail> {
    value.ok_or(Fail::Unknown)
}

pub fn invalid<T>(reason: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Invalid(reason.into()))
}

/// The dims of input `i` (unknown when absent or rank-unknown).
pub fn dims_of(inputs: &[ValueFact], i: usize) -> Result<Vec<Dim>, Fail> {
    need(inputs.get(i).and_then(|f| f.dims.clone()))
}

pub fn dtype_of(inputs: &[ValueFact], i: usize) -> Option<i32> {
    inputs.get(i).and_then(|f| f.dtype)
}

/// The fully known integer values of input `i`, if it is present.
pub fn ints_input(inputs: &[ValueFact], i: usize) -> Result<Option<Vec<i64>>, Fail> {
    match inputs.get(i) {
        None => Ok(None),
        Some(f) if f.dims.is_none() && f.dtype.is_none() && f.value.is_none() => {
            // Absent optional input (empty name) or an unknown producer.
            Err(Fail::Unknown)
        }
        Some(f) => Ok(Some(need(f.int_values())?)),
    }
}

/// An integer list given either as input `i` (when the node has it) or as attribute `name`.
pub fn ints_input_or_attr(
    node: &NodeProto,
    inputs: &[ValueFact],
    i: usize,
    name: &str,
) -> Result<Option<Vec<i64>>, Fail> {
    if node.input.get(i).is_some_and(|s| !s.is_empty()) {
        return ints_input(inputs, i);
    }
    Ok(attr::get_ints(node, name))
}

/// `axis` in `-rank..rank` → `0..rank`.
pub fn normalize_axis(axis: i64, rank: usize) -> Result<usize, Fail> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        invalid(format!("axis {axis} is out of range for rank {rank}"))
    }
}

/// Product of dims: a number when all are known, the lone symbol when the rest are 1, else a
/// symbolic product such as `batch*197`.
pub fn product(dims: &[Dim]) -> Dim {
    let mut known: i64 = 1;
    let mut symbols: Vec<&str> = Vec::new();
    for d in dims {
        match d {
            Dim::Known(v) => known = known.saturating_mul(*v),
            Dim::Symbolic(s) => symbols.push(s),
        }
    }
    if symbols.is_empty() {
        return Dim::Known(known);
    }
    if known == 0 {
        return Dim::Known(0);
    }
    let mut name = symbols.join("*");
    if known != 1 {
        name = format!("{name}*{known}");
    }
    Dim::Symbolic(name)
}

/// numpy broadcasting of two shapes. Symbols broadcast against 1; a symbol against a known
/// size > 1 takes the known size (the runtime would fail otherwise).
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, Fail> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = (i + a.len()).checked_sub(rank).map(|k| &a[k]);
        let db = (i + b.len()).checked_sub(rank).map(|k| &b[k]);
        let d = match (da, db) {
            (Some(x), None) | (None, Some(x)) => x.clone(),
            (Some(x), Some(y)) => match (x, y) {
                (Dim::Known(1), o) | (o, Dim::Known(1)) => o.clone(),
                (Dim::Known(p), Dim::Known(q)) if p == q => x.clone(),
                (Dim::Known(p), Dim::Known(q)) => {
                    return invalid(format!("cannot broadcast dims {p} and {q}"))
                }
                (Dim::Known(_), Dim::Symbolic(_)) => x.clone(),
                (Dim::Symbolic(_), Dim::Known(_)) => y.clone(),
                (Dim::Symbolic(_), Dim::Symbolic(_)) => x.clone(),
            },
            (None, None) => unreachable!("i < rank means one side has the dim"),
        };
        out.push(d);
    }
    Ok(out)
}

/// Broadcasts the shapes of every input that is present (variadic ops: Sum, Max, Where).
pub fn broadcast_all(inputs: &[ValueFact]) -> Result<Vec<Dim>, Fail> {
    let mut out: Vec<Dim> = Vec::new();
    for f in inputs {
        out = broadcast(&out, need(f.dims.as_deref())?)?;
    }
    Ok(out)
}

/// Index of element `flat` of a `shape` tensor broadcast into `out_shape`.
pub fn broadcast_index(flat: usize, out_shape: &[usize], shape: &[usize]) -> usize {
    let mut rem = flat;
    let mut index = 0usize;
    let mut stride = 1usize;
    let offset = out_shape.len() - shape.len();
    for axis in (0..out_shape.len()).rev() {
        let coordinate = rem % out_shape[axis].max(1);
        rem /= out_shape[axis].max(1);
        if axis >= offset {
            let size = shape[axis - offset];
            if size > 1 {
                index += coordinate * stride;
            }
            stride *= size.max(1);
        }
    }
    index
}

/// Output size of a windowed op (Conv, pooling) along one spatial axis.
pub fn window_out(
    input: i64,
    kernel: i64,
    stride: i64,
    dilation: i64,
    pad_total: i64,
    ceil_mode: bool,
) -> Result<i64, Fail> {
    if stride <= 0 || dilation <= 0 || kernel <= 0 {
        return invalid(format!(
            "kernel {kernel}, stride {stride} and dilation {dilation} must be positive"
        ));
    }
    let effective = dilation.saturating_mul(kernel - 1).saturating_add(1);
    let span = input.saturating_add(pad_total).saturating_sub(effective);
    if span < 0 {
        return invalid(format!(
            "window of {effective} does not fit input of {input} with {pad_total} padding"
        ));
    }
    let steps = if ceil_mode {
        span.saturating_add(stride - 1) / stride
    } else {
        span / stride
    };
    Ok(steps.saturating_add(1))
}
