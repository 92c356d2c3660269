//! Inference for the compute ops of vision and transformer models: convolutions, pooling,
//! Gemm/MatMul (and their quantized forms), normalisation, Resize.
use std::collections::HashMap;
use std::sync::OnceLock;

use super::util::{broadcast, dims_of, dtype_of, invalid, need, normalize_axis, window_out};
use super::{Dim, InferFn, InferResult, ValueFact};
use crate::attr;
use crate::proto::{tensor_proto::DataType, NodeProto};

const FLOAT: i32 = DataType::Float as i32;
const INT32: i32 = DataType::Int32 as i32;
const INT64: i32 = DataType::Int64 as i32;
const UINT8: i32 = DataType::Uint8 as i32;

pub(super) fn lookup(op: &str) -> Option<InferFn> {
    static REGISTRY: OnceLock<HashMap<&'static str, InferFn>> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| {
        let table: &[(&'static str, InferFn)] = &[
            ("Conv", conv),
            ("ConvInteger", conv_integer),
            ("QLinearConv", qlinear_conv),
            ("ConvTranspose", conv_transpose),
            ("MaxPool", pool),
            ("AveragePool", pool),
            ("LpPool", pool),
            ("GlobalAveragePool", global_pool),
            ("GlobalMaxPool", global_pool),
            ("GlobalLpPool", global_pool),
            ("Gemm", gemm),
            ("MatMul", matmul),
            ("MatMulInteger", matmul_integer),
            ("QLinearMatMul", qlinear_matmul),
            ("MatMulNBits", matmul_nbits),
            ("DynamicQuantizeMatMul", float_matmul_of_quantized),
            ("MatMulIntegerToFloat", float_matmul_of_quantized),
            ("BatchNormalization", first_output_like_input),
            ("Dropout", dropout),
            ("LayerNormalization", layer_norm),
            ("GroupNormalization", first_output_like_input),
            ("QuantizeLinear", quantize_linear),
            ("DequantizeLinear", dequantize_linear),
            ("DynamicQuantizeLinear", dynamic_quantize_linear),
            ("Resize", resize),
            ("Upsample", resize),
        ];
        table.iter().copied().collect()
    });
    registry.get(op).copied()
}

fn first_output_like_input(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    Ok(vec![ValueFact::new(
        dtype_of(inputs, 0),
        dims_of(inputs, 0)?,
    )])
}

fn dropout(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dims = dims_of(inputs, 0)?;
    Ok(vec![
        ValueFact::new(dtype_of(inputs, 0), dims.clone()),
        ValueFact::new(Some(DataType::Bool as i32), dims),
    ])
}

/// Output dims of a Conv-like op from X `[N, C, spatial...]` and W `[M, C/group, k...]`.
fn conv_dims(node: &NodeProto, x: &[Dim], w: &[Dim]) -> Result<Vec<Dim>, super::Fail> {
    if x.len() < 3 || w.len() != x.len() {
        return invalid(format!(
            "input rank {} and weight rank {} do not fit a convolution",
            x.len(),
            w.len()
        ));
    }
    let group = attr::get_int(node, "group").unwrap_or(1);
    if let (Some(c), Some(wc)) = (x[1].known(), w[1].known()) {
        if group <= 0 || c != wc.saturating_mul(group) {
            return invalid(format!(
                "input has {c} channels but weight expects {wc} x group {group}"
            ));
        }
    }
    let kernel: Vec<i64> = match attr::get_ints(node, "kernel_shape") {
        Some(k) => k,
        None => w[2..]
            .iter()
            .map(Dim::known)
            .collect::<Option<_>>()
            .ok_or(super::Fail::Unknown)?,
    };
    let mut out = vec![x[0].clone(), w[0].clone()];
    out.extend(spatial_out(node, &x[2..], &kernel, false)?);
    Ok(out)
}

/// Spatial output sizes of a windowed op (Conv, pooling), honouring pads/auto_pad.
fn spatial_out(
    node: &NodeProto,
    spatial: &[Dim],
    kernel: &[i64],
    ceil_mode: bool,
) -> Result<Vec<Dim>, super::Fail> {
    let n = spatial.len();
    if kernel.len() != n {
        return invalid(format!(
            "kernel_shape {kernel:?} does not match {n} spatial dims"
        ));
    }
    let strides = attr::get_ints(node, "strides").unwrap_or_else(|| vec![1; n]);
    let dilations = attr::get_ints(node, "dilations").unwrap_or_else(|| vec![1; n]);
    let pads = attr::get_ints(node, "pads").unwrap_or_else(|| vec![0; 2 * n]);
    let auto_pad = attr::get_string(node, "auto_pad").unwrap_or_default();
    if strides.len() != n || dilations.len() != n || pads.len() != 2 * n {
        return invalid("strides, dilations or pads do not match the spatial rank");
    }
    (0..n)
        .map(|i| {
            let size = need(spatial[i].known())?;
            let out = match auto_pad.as_str() {
                "SAME_UPPER" | "SAME_LOWER" => {
                    if strides[i] <= 0 {
                        return invalid("strides must be positive");
                    }
                    size.saturating_add(strides[i] - 1) / strides[i]
                }
                "VALID" => window_out(size, kernel[i], strides[i], dilations[i], 0, ceil_mode)?,
                _ => window_out(
                    size,
                    kernel[i],
                    strides[i],
                    dilations[i],
                    pads[i].saturating_add(pads[i + n]),
                    ceil_mode,
                )?,
            };
            Ok(Dim::Known(out))
        })
        .collect()
}

fn conv(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let out = conv_dims(node, &dims_of(inputs, 0)?, &dims_of(inputs, 1)?)?;
    Ok(vec![ValueFact::new(dtype_of(inputs, 0), out)])
}

fn conv_integer(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let out = conv_dims(node, &dims_of(inputs, 0)?, &dims_of(inputs, 1)?)?;
    Ok(vec![ValueFact::new(Some(INT32), out)])
}

fn qlinear_conv(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let out = conv_dims(node, &dims_of(inputs, 0)?, &dims_of(inputs, 3)?)?;
    Ok(vec![ValueFact::new(
        dtype_of(inputs, 7).or(dtype_of(inputs, 0)),
        out,
    )])
}

fn conv_transpose(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let x = dims_of(inputs, 0)?;
    let w = dims_of(inputs, 1)?;
    if x.len() < 3 || w.len() != x.len() {
        return invalid("input and weight ranks do not fit a ConvTranspose");
    }
    let n = x.len() - 2;
    let group = attr::get_int(node, "group").unwrap_or(1);
    let channels = match w[1].known() {
        Some(c) => Dim::Known(c.saturating_mul(group)),
        None => w[1].clone(),
    };
    let mut out = vec![x[0].clone(), channels];
    if let Some(shape) = attr::get_ints(node, "output_shape") {
        out.extend(shape.iter().rev().take(n).rev().map(|&d| Dim::Known(d)));
        return Ok(vec![ValueFact::new(dtype_of(inputs, 0), out)]);
    }
    let kernel: Vec<i64> = match attr::get_ints(node, "kernel_shape") {
        Some(k) => k,
        None => need(w[2..].iter().map(Dim::known).collect())?,
    };
    let strides = attr::get_ints(node, "strides").unwrap_or_else(|| vec![1; n]);
    let dilations = attr::get_ints(node, "dilations").unwrap_or_else(|| vec![1; n]);
    let pads = attr::get_ints(node, "pads").unwrap_or_else(|| vec![0; 2 * n]);
    let output_padding = attr::get_ints(node, "output_padding").unwrap_or_else(|| vec![0; n]);
    if kernel.len() != n
        || strides.len() != n
        || dilations.len() != n
        || pads.len() != 2 * n
        || output_padding.len() != n
    {
        return invalid("kernel, strides, dilations, pads or output_padding do not match the rank");
    }
    for i in 0..n {
        let size = need(x[2 + i].known())?;
        let value = strides[i]
            .saturating_mul(size.saturating_sub(1))
            .saturating_add(output_padding[i])
            .saturating_add(
                dilations[i]
                    .saturating_mul(kernel[i].saturating_sub(1))
                    .saturating_add(1),
            )
            .saturating_sub(pads[i].saturating_add(pads[i + n]));
        if value <= 0 {
            return invalid(format!("output size {value} along spatial axis {i}"));
        }
        out.push(Dim::Known(value));
    }
    Ok(vec![ValueFact::new(dtype_of(inputs, 0), out)])
}

fn pool(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let x = dims_of(inputs, 0)?;
    if x.len() < 3 {
        return invalid(format!("pooling needs rank >= 3, input has {}", x.len()));
    }
    let kernel = need(attr::get_ints(node, "kernel_shape"))?;
    let ceil_mode = attr::get_int(node, "ceil_mode").unwrap_or(0) != 0;
    let mut out = x[..2].to_vec();
    out.extend(spatial_out(node, &x[2..], &kernel, ceil_mode)?);
    let fact = ValueFact::new(dtype_of(inputs, 0), out.clone());
    Ok(vec![fact, ValueFact::new(Some(INT64), out)])
}

fn global_pool(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let x = dims_of(inputs, 0)?;
    if x.len() < 3 {
        return invalid(format!(
            "global pooling needs rank >= 3, input has {}",
            x.len()
        ));
    }
    let mut out = x[..2].to_vec();
    out.extend(std::iter::repeat_n(Dim::Known(1), x.len() - 2));
    Ok(vec![ValueFact::new(dtype_of(inputs, 0), out)])
}

fn gemm(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let a = dims_of(inputs, 0)?;
    let b = dims_of(inputs, 1)?;
    if a.len() != 2 || b.len() != 2 {
        return invalid(format!(
            "Gemm needs 2-D inputs, got ranks {} and {}",
            a.len(),
            b.len()
        ));
    }
    let (m, ka) = if attr::get_int(node, "transA").unwrap_or(0) != 0 {
        (&a[1], &a[0])
    } else {
        (&a[0], &a[1])
    };
    let (kb, n) = if attr::get_int(node, "transB").unwrap_or(0) != 0 {
        (&b[1], &b[0])
    } else {
        (&b[0], &b[1])
    };
    check_inner(ka, kb)?;
    Ok(vec![ValueFact::new(
        dtype_of(inputs, 0),
        vec![m.clone(), n.clone()],
    )])
}

fn check_inner(ka: &Dim, kb: &Dim) -> Result<(), super::Fail> {
    match (ka.known(), kb.known()) {
        (Some(x), Some(y)) if x != y => invalid(format!("inner dims differ: {x} vs {y}")),
        _ => Ok(()),
    }
}

/// numpy `matmul` output dims (1-D operands are promoted then their axis dropped).
pub(crate) fn matmul_dims(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, super::Fail> {
    if a.is_empty() || b.is_empty() {
        return invalid("MatMul operands must have rank >= 1");
    }
    let mut a2 = a.to_vec();
    let mut b2 = b.to_vec();
    if a.len() == 1 {
        a2.insert(0, Dim::Known(1));
    }
    if b.len() == 1 {
        b2.push(Dim::Known(1));
    }
    check_inner(&a2[a2.len() - 1], &b2[b2.len() - 2])?;
    let mut out = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    if a.len() > 1 {
        out.push(a2[a2.len() - 2].clone());
    }
    if b.len() > 1 {
        out.push(b2[b2.len() - 1].clone());
    }
    Ok(out)
}

fn matmul(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let out = matmul_dims(&dims_of(inputs, 0)?, &dims_of(inputs, 1)?)?;
    Ok(vec![ValueFact::new(dtype_of(inputs, 0), out)])
}

fn matmul_integer(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let out = matmul_dims(&dims_of(inputs, 0)?, &dims_of(inputs, 1)?)?;
    Ok(vec![ValueFact::new(Some(INT32), out)])
}

fn qlinear_matmul(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let out = matmul_dims(&dims_of(inputs, 0)?, &dims_of(inputs, 3)?)?;
    Ok(vec![ValueFact::new(
        dtype_of(inputs, 7).or(dtype_of(inputs, 0)),
        out,
    )])
}

/// ONNX Runtime's `com.microsoft.DynamicQuantizeMatMul` (A float, B int8, ...) and
/// `MatMulIntegerToFloat` (A int8, B int8, scales, ...): `A × B` as float.
fn float_matmul_of_quantized(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let out = matmul_dims(&dims_of(inputs, 0)?, &dims_of(inputs, 1)?)?;
    Ok(vec![ValueFact::new(Some(FLOAT), out)])
}

/// ONNX Runtime's `com.microsoft.MatMulNBits`: A `[..., K]` times packed B → `[..., N]`.
fn matmul_nbits(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let mut out = dims_of(inputs, 0)?;
    let n = need(attr::get_int(node, "N"))?;
    match out.last_mut() {
        Some(last) => *last = Dim::Known(n),
        None => return invalid("MatMulNBits input must have rank >= 1"),
    }
    Ok(vec![ValueFact::new(dtype_of(inputs, 0), out)])
}

fn layer_norm(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let x = dims_of(inputs, 0)?;
    let axis = normalize_axis(attr::get_int(node, "axis").unwrap_or(-1), x.len())?;
    let mut stats = x.clone();
    for d in stats.iter_mut().skip(axis) {
        *d = Dim::Known(1);
    }
    let stash_type = attr::get_int(node, "stash_type")
        .map(|t| t as i32)
        .unwrap_or(FLOAT);
    Ok(vec![
        ValueFact::new(dtype_of(inputs, 0), x),
        ValueFact::new(Some(stash_type), stats.clone()),
        ValueFact::new(Some(stash_type), stats),
    ])
}

fn quantize_linear(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dtype = dtype_of(inputs, 2).unwrap_or(UINT8);
    Ok(vec![ValueFact::new(Some(dtype), dims_of(inputs, 0)?)])
}

fn dequantize_linear(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let dtype = dtype_of(inputs, 1).unwrap_or(FLOAT);
    Ok(vec![ValueFact::new(Some(dtype), dims_of(inputs, 0)?)])
}

fn dynamic_quantize_linear(_node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    Ok(vec![
        ValueFact::new(Some(UINT8), dims_of(inputs, 0)?),
        ValueFact::new(Some(FLOAT), vec![]),
        ValueFact::new(Some(UINT8), vec![]),
    ])
}

/// Resize/Upsample: explicit `sizes`, else `floor(dim * scale)`.
fn resize(node: &NodeProto, inputs: &[ValueFact]) -> InferResult {
    let x = dims_of(inputs, 0)?;
    let dtype = dtype_of(inputs, 0);
    let sizes_slot = if node.op_type() == "Upsample" {
        usize::MAX
    } else {
        3
    };
    if let Some(sizes) = inputs
        .get(sizes_slot)
        .filter(|_| node.input.get(sizes_slot).is_some_and(|s| !s.is_empty()))
    {
        let sizes = need(sizes.int_values())?;
        if sizes.len() != x.len() {
            return invalid(format!("{} sizes for rank {}", sizes.len(), x.len()));
        }
        return Ok(vec![ValueFact::new(
            dtype,
            sizes.into_iter().map(Dim::Known).collect(),
        )]);
    }
    // Scales are float tensors whose values shape facts do not fold: unknown unless the
    // attribute form (Upsample-7) gives them.
    let scales = need(attr::get(node, "scales").map(|a| a.floats.clone()))?;
    if scales.len() != x.len() {
        return invalid(format!("{} scales for rank {}", scales.len(), x.len()));
    }
    let out = x
        .iter()
        .zip(&scales)
        .map(|(d, &s)| match d {
            Dim::Known(v) => Some(Dim::Known((*v as f64 * s as f64).floor() as i64)),
            other if s == 1.0 => Some(other.clone()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>();
    Ok(vec![ValueFact::new(dtype, need(out)?)])
}
