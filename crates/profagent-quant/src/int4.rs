//! Int4 weight-only: MatMul/Gemm weights as 4-bit blocks in ONNX Runtime's
//! `com.microsoft.MatMulNBits` (asymmetric, one scale and 4-bit zero point per block of
//! `block_size` values along K). Activations stay float; with `accuracy_level` 4 ONNX Runtime
//! quantizes them to int8 internally, which is what makes the kernel fast on VNNI CPUs.
use rayon::prelude::*;

use profagent_onnx::proto::NodeProto;
use profagent_onnx::{attr, tensor, GraphIndex, Model, NameGen, Patch};

use crate::error::{QuantError, Result};
use crate::linear::{ensure_ms_domain, ms_node, select_linear_layers, Bias, Linear};

/// Why convolutions stay in float in int4 mode.
const INT4_CONV_SKIP_REASON: &str =
    "int4 weight-only covers MatMul/Gemm; there is no fast int4 Conv kernel";
use crate::numeric::int4_blocks;
use crate::spec::{QuantReport, QuantSpec, QuantizedLayer, Target};

/// `MatMulNBits`'s `accuracy_level` meaning "int8 activations inside the kernel".
const ACCURACY_LEVEL_INT8: i64 = 4;

pub fn quantize_int4(model: &Model, spec: &QuantSpec) -> Result<(Model, QuantReport)> {
    if spec.target != Target::Ort {
        return Err(QuantError::Option(
            "int4 mode writes com.microsoft.MatMulNBits, which only ONNX Runtime runs; use target ort or another mode".into(),
        ));
    }
    let block = spec.block_size;
    if block < 16 || !block.is_power_of_two() {
        return Err(QuantError::Option(format!(
            "int4 block size {block} must be a power of two of at least 16 (e.g. 32, 64, 128)"
        )));
    }
    let graph = model.graph();
    let index = GraphIndex::new(graph)?;
    let (chosen, mut report) = select_linear_layers(graph, &index, spec, INT4_CONV_SKIP_REASON)?;
    if chosen.is_empty() {
        return Ok((model.clone(), report));
    }
    let blocks: Vec<_> = chosen
        .par_iter()
        .map(|(_, l)| int4_blocks(&l.weight_kn, l.k, l.n, block))
        .collect();
    let mut names = NameGen::new(graph);
    let mut patch = Patch::new();
    for ((id, l), b) in chosen.iter().zip(blocks) {
        let prefix = names.fresh(&format!("{}_int4", l.weight_name));
        let data = tensor::from_u8(
            &prefix,
            &[l.n as i64, b.blocks as i64, (block / 2) as i64],
            &b.packed,
        );
        let scales = tensor::from_f32(
            &format!("{prefix}_scales"),
            &[(l.n * b.blocks) as i64],
            &b.scales,
        );
        let zeros = tensor::from_u8(
            &format!("{prefix}_zero_points"),
            &[b.zero_points.len() as i64],
            &b.zero_points,
        );
        report.quantized.push(QuantizedLayer {
            layer: id.layer.clone(),
            node: id.node.clone(),
            op_type: id.op_type.clone(),
            scheme: format!("MatMulNBits (int4, block {block})"),
            weight_bytes_before: l.weight_bytes,
            weight_bytes_after: [&data, &scales, &zeros]
                .iter()
                .map(|t| tensor::payload_bytes(t))
                .sum(),
        });
        let original = &graph.node[id.index];
        for n in nodes(
            original,
            l,
            spec,
            [data.name(), scales.name(), zeros.name()],
            &mut names,
        ) {
            patch.add_node(n);
        }
        patch.remove_node(id.index);
        patch.set_initializer(data);
        patch.set_initializer(scales);
        patch.set_initializer(zeros);
    }
    let replaced: Vec<String> = chosen.iter().map(|(_, l)| l.weight_name.clone()).collect();
    let mut out = crate::rewrite::apply(model, &patch, &replaced)?;
    ensure_ms_domain(&mut out.proto);
    Ok((out, report))
}

fn nodes(
    original: &NodeProto,
    l: &Linear,
    spec: &QuantSpec,
    weights: [&str; 3],
    names: &mut NameGen,
) -> Vec<NodeProto> {
    let base = original.name().to_string();
    let mut attributes = vec![
        attr::int("K", l.k as i64),
        attr::int("N", l.n as i64),
        attr::int("bits", 4),
        attr::int("block_size", spec.block_size as i64),
    ];
    if spec.int4_int8_compute {
        attributes.push(attr::int("accuracy_level", ACCURACY_LEVEL_INT8));
    }
    let [data, scales, zeros] = weights;
    match &l.bias {
        None => vec![ms_node(
            "MatMulNBits",
            &base,
            &[&l.activation, data, scales, zeros],
            &[&l.output],
            attributes,
        )],
        Some(Bias::Vector(b) | Bias::Tensor(b)) => {
            let tmp = names.fresh(&format!("{}_no_bias", l.output));
            vec![
                ms_node(
                    "MatMulNBits",
                    &base,
                    &[&l.activation, data, scales, zeros],
                    &[&tmp],
                    attributes,
                ),
                attr::node(
                    "Add",
                    &names.fresh(&format!("{base}_bias")),
                    &[&tmp, b],
                    &[&l.output],
                    vec![],
                ),
            ]
        }
    }
}
