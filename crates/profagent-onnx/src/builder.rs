//! `GraphBuilder`: small models in code, for tests across the workspace.
//!
//! Weights are deterministic pseudo-random (a seeded LCG) so tests need no data files. Node
//! names follow the PyTorch exporter's scoping (`/layer1/conv1/Conv`) so layer grouping is
//! exercised the same way as on real exports.
use crate::attr;
use crate::model::Model;
use crate::proto::{
    tensor_proto::DataType, tensor_shape_proto::dimension::Value as DimValue,
    tensor_shape_proto::Dimension, type_proto, GraphProto, ModelProto, OperatorSetIdProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::tensor;

/// A float32 tensor value_info with the given dims (negative = symbolic `N`).
pub fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    value_info_typed(name, dims, DataType::Float)
}

pub fn value_info_typed(name: &str, dims: &[i64], dt: DataType) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(if d < 0 {
                DimValue::DimParam("N".into())
            } else {
                DimValue::DimValue(d)
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dt as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub struct GraphBuilder {
    pub graph: GraphProto,
    seed: u64,
    counter: usize,
    opset: i64,
}

impl GraphBuilder {
    pub fn new(seed: u64) -> Self {
        GraphBuilder {
            graph: GraphProto {
                name: Some("test".into()),
                ..Default::default()
            },
            seed: seed.wrapping_mul(6364136223846793005).wrapping_add(1),
            counter: 0,
            opset: 17,
        }
    }

    /// Next deterministic value in [-1, 1).
    pub fn rand(&mut self) -> f32 {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub fn rand_vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.rand() * scale).collect()
    }

    fn fresh(&mut self, base: &str) -> String {
        self.counter += 1;
        format!("{base}_{}", self.counter)
    }

    pub fn input(&mut self, name: &str, dims: &[i64]) -> String {
        self.graph.input.push(value_info(name, dims));
        name.to_string()
    }

    pub fn output(&mut self, name: &str, dims: &[i64]) {
        self.graph.output.push(value_info(name, dims));
    }

    pub fn init_f32(&mut self, name: &str, dims: &[i64], data: &[f32]) -> String {
        self.graph
            .initializer
            .push(tensor::from_f32(name, dims, data));
        name.to_string()
    }

    pub fn init_i64(&mut self, name: &str, dims: &[i64], data: &[i64]) -> String {
        self.graph
            .initializer
            .push(tensor::from_i64(name, dims, data));
        name.to_string()
    }

    /// Random weights with fan-in scaling.
    pub fn weight(&mut self, name: &str, dims: &[i64]) -> String {
        let n: i64 = dims.iter().product();
        let fan_in: i64 = dims.iter().skip(1).product::<i64>().max(1);
        let scale = (3.0 / fan_in as f32).sqrt();
        let data = self.rand_vec(n as usize, scale);
        self.init_f32(name, dims, &data)
    }

    /// Adds a node; returns its first output name.
    pub fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        n_outputs: usize,
        attributes: Vec<crate::proto::AttributeProto>,
    ) -> String {
        let outputs: Vec<String> = (0..n_outputs)
            .map(|k| format!("{name}_output_{k}"))
            .collect();
        let outs: Vec<&str> = outputs.iter().map(String::as_str).collect();
        self.graph
            .node
            .push(attr::node(op_type, name, inputs, &outs, attributes));
        outputs[0].clone()
    }

    /// Conv with bias; `scope` like `/layer1/conv1`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        scope: &str,
        x: &str,
        c_in: i64,
        c_out: i64,
        k: i64,
        stride: i64,
        group: i64,
    ) -> String {
        let w = self.weight(
            &format!("{}.weight", scope_to_layer(scope)),
            &[c_out, c_in / group, k, k],
        );
        let b_data = self.rand_vec(c_out as usize, 0.1);
        let b = self.init_f32(
            &format!("{}.bias", scope_to_layer(scope)),
            &[c_out],
            &b_data,
        );
        let pad = k / 2;
        self.node(
            "Conv",
            &format!("{scope}/Conv"),
            &[x, &w, &b],
            1,
            vec![
                attr::ints("kernel_shape", &[k, k]),
                attr::ints("strides", &[stride, stride]),
                attr::ints("pads", &[pad, pad, pad, pad]),
                attr::ints("dilations", &[1, 1]),
                attr::int("group", group),
            ],
        )
    }

    pub fn batchnorm(&mut self, scope: &str, x: &str, c: i64) -> String {
        let layer = scope_to_layer(scope);
        let scale: Vec<f32> = (0..c).map(|_| 1.0 + 0.2 * self.rand()).collect();
        let bias = self.rand_vec(c as usize, 0.1);
        let mean = self.rand_vec(c as usize, 0.1);
        let var: Vec<f32> = (0..c).map(|_| 1.0 + 0.5 * self.rand().abs()).collect();
        let s = self.init_f32(&format!("{layer}.weight"), &[c], &scale);
        let b = self.init_f32(&format!("{layer}.bias"), &[c], &bias);
        let m = self.init_f32(&format!("{layer}.running_mean"), &[c], &mean);
        let v = self.init_f32(&format!("{layer}.running_var"), &[c], &var);
        self.node(
            "BatchNormalization",
            &format!("{scope}/BatchNormalization"),
            &[x, &s, &b, &m, &v],
            1,
            vec![attr::float("epsilon", 1e-5)],
        )
    }

    pub fn unary(&mut self, op: &str, scope: &str, x: &str) -> String {
        self.node(op, &format!("{scope}/{op}"), &[x], 1, vec![])
    }

    pub fn binary(&mut self, op: &str, scope: &str, a: &str, b: &str) -> String {
        self.node(op, &format!("{scope}/{op}"), &[a, b], 1, vec![])
    }

    /// Gemm `x · Wᵀ + b` like torch's Linear export.
    pub fn gemm(&mut self, scope: &str, x: &str, c_in: i64, c_out: i64) -> String {
        let layer = scope_to_layer(scope);
        let w = self.weight(&format!("{layer}.weight"), &[c_out, c_in]);
        let b_data = self.rand_vec(c_out as usize, 0.1);
        let b = self.init_f32(&format!("{layer}.bias"), &[c_out], &b_data);
        self.node(
            "Gemm",
            &format!("{scope}/Gemm"),
            &[x, &w, &b],
            1,
            vec![
                attr::float("alpha", 1.0),
                attr::float("beta", 1.0),
                attr::int("transB", 1),
            ],
        )
    }

    /// MatMul by a `[c_in, c_out]` weight then Add bias, like transformer Linear exports.
    pub fn linear(&mut self, scope: &str, x: &str, c_in: i64, c_out: i64) -> String {
        let layer = scope_to_layer(scope);
        let w = self.weight(
            &format!("onnx::MatMul_{}", self.counter + 1000),
            &[c_in, c_out],
        );
        self.counter += 1;
        let b_data = self.rand_vec(c_out as usize, 0.1);
        let b = self.init_f32(&format!("{layer}.bias"), &[c_out], &b_data);
        let mm = self.node("MatMul", &format!("{scope}/MatMul"), &[x, &w], 1, vec![]);
        self.node("Add", &format!("{scope}/Add"), &[&b, &mm], 1, vec![])
    }

    pub fn layernorm(&mut self, scope: &str, x: &str, dim: i64) -> String {
        let layer = scope_to_layer(scope);
        let s: Vec<f32> = (0..dim).map(|_| 1.0 + 0.1 * self.rand()).collect();
        let b = self.rand_vec(dim as usize, 0.05);
        let s = self.init_f32(&format!("{layer}.weight"), &[dim], &s);
        let b = self.init_f32(&format!("{layer}.bias"), &[dim], &b);
        self.node(
            "LayerNormalization",
            &format!("{scope}/LayerNormalization"),
            &[x, &s, &b],
            1,
            vec![attr::int("axis", -1), attr::float("epsilon", 1e-6)],
        )
    }

    /// An int64 `Constant` node (exporters emit shape operands this way); returns its output.
    pub fn const_i64(&mut self, scope: &str, dims: &[i64], data: &[i64]) -> String {
        let name = self.fresh(&format!("{scope}/Constant"));
        let out = format!("{name}_output_0");
        self.graph.node.push(attr::node(
            "Constant",
            &name,
            &[],
            &[&out],
            vec![attr::tensor("value", tensor::from_i64("", dims, data))],
        ));
        out
    }

    /// Multi-head self-attention on `x: [batch, tokens, dim]` the way timm's ViT exports it:
    /// fused qkv linear, a reshape whose shape is computed at run time
    /// (`Shape → Gather → Unsqueeze → Concat`), Transpose, Split, Squeeze, scaled `q·kᵀ`,
    /// Softmax, `·v`, Transpose, Reshape back (again via Shape) and the proj linear.
    pub fn attention(&mut self, scope: &str, x: &str, dim: i64, heads: i64) -> String {
        let head_dim = dim / heads;
        let shape = self.node("Shape", &format!("{scope}/Shape"), &[x], 1, vec![]);
        let zero = self.const_i64(scope, &[], &[0]);
        let one = self.const_i64(scope, &[], &[1]);
        let batch = self.node(
            "Gather",
            &format!("{scope}/Gather"),
            &[&shape, &zero],
            1,
            vec![attr::int("axis", 0)],
        );
        let tokens = self.node(
            "Gather",
            &format!("{scope}/Gather_1"),
            &[&shape, &one],
            1,
            vec![attr::int("axis", 0)],
        );
        let axes0 = self.const_i64(scope, &[1], &[0]);
        let batch_1d = self.node(
            "Unsqueeze",
            &format!("{scope}/Unsqueeze"),
            &[&batch, &axes0],
            1,
            vec![],
        );
        let tokens_1d = self.node(
            "Unsqueeze",
            &format!("{scope}/Unsqueeze_1"),
            &[&tokens, &axes0],
            1,
            vec![],
        );
        let rest = self.const_i64(scope, &[3], &[3, heads, head_dim]);
        let qkv_shape = self.node(
            "Concat",
            &format!("{scope}/Concat"),
            &[&batch_1d, &tokens_1d, &rest],
            1,
            vec![attr::int("axis", 0)],
        );
        let qkv = self.linear(&format!("{scope}/qkv"), x, dim, 3 * dim);
        let qkv = self.node(
            "Reshape",
            &format!("{scope}/Reshape"),
            &[&qkv, &qkv_shape],
            1,
            vec![],
        );
        let qkv = self.node(
            "Transpose",
            &format!("{scope}/Transpose"),
            &[&qkv],
            1,
            vec![attr::ints("perm", &[2, 0, 3, 1, 4])],
        );
        let split = self.const_i64(scope, &[3], &[1, 1, 1]);
        let split_name = format!("{scope}/Split");
        let parts: Vec<String> = (0..3).map(|k| format!("{split_name}_output_{k}")).collect();
        let part_refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        self.graph.node.push(attr::node(
            "Split",
            &split_name,
            &[&qkv, &split],
            &part_refs,
            vec![attr::int("axis", 0)],
        ));
        let mut qkv_heads = Vec::new();
        for (k, part) in parts.iter().enumerate() {
            let squeezed = self.node(
                "Squeeze",
                &format!("{scope}/Squeeze_{k}"),
                &[part, &axes0],
                1,
                vec![],
            );
            qkv_heads.push(squeezed);
        }
        let k_t = self.node(
            "Transpose",
            &format!("{scope}/Transpose_1"),
            &[&qkv_heads[1]],
            1,
            vec![attr::ints("perm", &[0, 1, 3, 2])],
        );
        let scale = self.init_f32(
            &format!("{}.scale", scope_to_layer(scope)),
            &[],
            &[1.0 / (head_dim as f32).sqrt()],
        );
        let q = self.binary("Mul", scope, &qkv_heads[0], &scale);
        let scores = self.node("MatMul", &format!("{scope}/MatMul"), &[&q, &k_t], 1, vec![]);
        let probs = self.node(
            "Softmax",
            &format!("{scope}/Softmax"),
            &[&scores],
            1,
            vec![attr::int("axis", -1)],
        );
        let context = self.node(
            "MatMul",
            &format!("{scope}/MatMul_1"),
            &[&probs, &qkv_heads[2]],
            1,
            vec![],
        );
        let context = self.node(
            "Transpose",
            &format!("{scope}/Transpose_2"),
            &[&context],
            1,
            vec![attr::ints("perm", &[0, 2, 1, 3])],
        );
        let width = self.const_i64(scope, &[1], &[dim]);
        let out_shape = self.node(
            "Concat",
            &format!("{scope}/Concat_1"),
            &[&batch_1d, &tokens_1d, &width],
            1,
            vec![attr::int("axis", 0)],
        );
        let merged = self.node(
            "Reshape",
            &format!("{scope}/Reshape_1"),
            &[&context, &out_shape],
            1,
            vec![],
        );
        self.linear(&format!("{scope}/proj"), &merged, dim, dim)
    }

    /// A unique value name (for hand-made nodes).
    pub fn value(&mut self, base: &str) -> String {
        self.fresh(base)
    }

    pub fn finish(self) -> Model {
        let proto = ModelProto {
            ir_version: Some(8),
            producer_name: Some("profagent-test".into()),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(self.opset),
            }],
            graph: Some(self.graph),
            ..Default::default()
        };
        Model::from_proto(proto)
    }
}

pub use crate::naming::scope_to_layer;
