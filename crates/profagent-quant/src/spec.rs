//! What to quantize and how: `QuantSpec` (the input of `quantize`) and `QuantReport` (what was
//! done, layer by layer, with a reason for every layer left in float).
//!
//! These types are the contract with the planner/agent, so they are plain serde data.
use serde::{Deserialize, Serialize};

use crate::select::Selection;

/// The quantization scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// int8 weights, activations quantized on the fly at run time (MatMul/Gemm only).
    Dynamic,
    /// int8 weights and 8-bit activations (uint8 by default) with calibrated ranges, as QDQ.
    Static,
    /// 4-bit block-wise weights, float activations (`MatMulNBits`).
    Int4,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Dynamic => "dynamic",
            Mode::Static => "static",
            Mode::Int4 => "int4",
        }
    }
}

/// Which runtime the output is meant for: decides between portable standard ops and ONNX
/// Runtime's faster fused `com.microsoft` kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// ONNX Runtime: `DynamicQuantizeMatMul`, `MatMulNBits` (fastest there).
    #[default]
    Ort,
    /// Standard ONNX only: `DynamicQuantizeLinear` + `MatMulInteger` + rescale. Int4 mode
    /// is not available for this target (no standard 4-bit matmul before opset 21).
    Standard,
}

/// Element type of the activations static mode quantizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationType {
    /// uint8, asymmetric (zero point from calibration). ONNX Runtime 1.32's CPU kernels fuse
    /// every QDQ Conv and Add into QLinearConv/QLinearAdd with uint8 activations and int8
    /// weights (resnet18_cifar10: 3.0x faster than float on an AVX-512 VNNI Xeon without AMX,
    /// 4.0x at batch 1 on one whose cpuinfo lists AMX).
    #[default]
    Uint8,
    /// int8, asymmetric. On both CPUs ONNX Runtime fused only 8 of resnet18's 20 convolutions
    /// and ran the rest as float islands between transposes (1.0-1.1x); faster only where
    /// measured so.
    Int8,
}

impl ActivationType {
    pub fn name(self) -> &'static str {
        match self {
            ActivationType::Uint8 => "uint8",
            ActivationType::Int8 => "int8",
        }
    }
}

/// The integer range of signed int8 weights (dynamic and static modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightRange {
    /// [-127, 127].
    #[default]
    Full,
    /// [-64, 64], 7 bits (onnxruntime.quantization's `reduce_range`). On x86 CPUs without
    /// VNNI, ONNX Runtime's uint8 x int8 kernels multiply with VPMADDUBSW, which adds two
    /// u8 x s8 products into a saturating int16: 255 x 127 x 2 = 64,770 overflows 32,767, and
    /// 255 x 64 x 2 = 32,640 does not. Measured on an AMD EPYC with AVX2 only (ONNX Runtime
    /// 1.32, static uint8 activations): resnet18_cifar10's mean output cosine 0.9877 (worst
    /// image 0.66) with full-range weights, 0.9999 (worst 0.995) with 7-bit ones. With VNNI
    /// (VPDPBUSD adds in int32) nothing saturates, and the full range keeps one more bit.
    Reduced,
}

impl WeightRange {
    /// The largest code: 127 or 64.
    pub fn qmax(self) -> f32 {
        match self {
            WeightRange::Full => 127.0,
            WeightRange::Reduced => 64.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightRange::Full => "full",
            WeightRange::Reduced => "reduced",
        }
    }
}

/// How activation ranges are derived from calibration data (static mode).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "method")]
pub enum Calibration {
    /// The observed minimum and maximum.
    #[default]
    MinMax,
    /// The `percentile` and `100 - percentile` quantiles of the observed values (clips rare
    /// outliers; 99.99 is a good start).
    Percentile { percentile: f64 },
    /// The range minimizing the KL divergence between the activation histogram and its 8-bit
    /// quantization (TensorRT's and onnxruntime's entropy calibration; see `histogram`).
    Entropy,
    /// The range minimizing the expected squared quantization error (clipping plus rounding)
    /// of the activation histogram.
    Mse,
}

impl Calibration {
    pub fn name(&self) -> &'static str {
        match self {
            Calibration::MinMax => "minmax",
            Calibration::Percentile { .. } => "percentile",
            Calibration::Entropy => "entropy",
            Calibration::Mse => "mse",
        }
    }
}

/// Everything `quantize` needs besides the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuantSpec {
    pub mode: Mode,
    /// Which layers; the default selects every supported layer.
    #[serde(default)]
    pub layers: Selection,
    /// One scale per output channel instead of one per tensor. `None` = per-channel (ONNX
    /// Runtime's tool defaults to per-tensor for dynamic mode; per-channel scales cost nothing
    /// in ONNX Runtime's int8 kernels and keep fidelity where one tensor-wide scale cannot:
    /// random-weight Swin-B keeps output cosine 0.9997 per channel, 0.9755 per tensor).
    #[serde(default)]
    pub per_channel: Option<bool>,
    /// Signed int8 weights (default). Unsigned weights are slower in ONNX Runtime on x86.
    #[serde(default = "default_true")]
    pub signed_weights: bool,
    #[serde(default)]
    pub target: Target,
    #[serde(default)]
    pub calibration: Calibration,
    /// Static mode: the element type of quantized activations (weights are always int8).
    #[serde(default)]
    pub activations: ActivationType,
    /// Signed int8 weights: full [-127, 127] or reduced [-64, 64] (see `WeightRange`; the
    /// caller decides for the CPU the model will run on).
    #[serde(default)]
    pub weight_range: WeightRange,
    /// Int4 block size along K (a power of two, at least 16).
    #[serde(default = "default_block_size")]
    pub block_size: usize,
    /// Int4: let ONNX Runtime quantize activations to int8 inside `MatMulNBits`
    /// (`accuracy_level` 4), which is what makes it fast on CPUs with VNNI.
    #[serde(default = "default_true")]
    pub int4_int8_compute: bool,
    /// Per-layer modes that differ from `mode` (e.g. static convolutions with `op:MatMul`
    /// dynamic and a sensitive layer in float). For each quantizable node the *last* entry
    /// whose pattern matches decides its mode; a node no entry matches follows `mode` and
    /// `layers`. Empty: one mode for the whole model. See `mixed`.
    #[serde(default)]
    pub layer_modes: Vec<LayerMode>,
}

/// One per-layer mode: the nodes `pattern` selects (same forms as `Selection`) get `mode`,
/// `None` keeps them in float.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerMode {
    pub pattern: String,
    pub mode: Option<Mode>,
}

impl LayerMode {
    /// Parses `PATTERN=MODE` (MODE: none, float, dynamic, static or int4; the pattern may
    /// itself hold `=`, the last one separates).
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((pattern, mode)) = text.rsplit_once('=') else {
            return Err(format!(
                "'{text}' is not PATTERN=MODE (e.g. fc=dynamic, op:MatMul=dynamic, layer1.0.conv1=none)"
            ));
        };
        let mode = match mode.trim() {
            "none" | "float" => None,
            "dynamic" => Some(Mode::Dynamic),
            "static" => Some(Mode::Static),
            "int4" => Some(Mode::Int4),
            other => {
                return Err(format!(
                    "'{text}': unknown mode '{other}' (none, dynamic, static or int4)"
                ))
            }
        };
        if pattern.is_empty() {
            return Err(format!("'{text}' names no layer before '='"));
        }
        Ok(LayerMode {
            pattern: pattern.to_string(),
            mode,
        })
    }
}

fn default_true() -> bool {
    true
}

fn default_block_size() -> usize {
    32
}

impl QuantSpec {
    /// The defaults for `mode`: every supported layer, signed weights, uint8 activations (static),
    /// ONNX Runtime target.
    pub fn new(mode: Mode) -> Self {
        QuantSpec {
            mode,
            layers: Selection::default(),
            per_channel: None,
            signed_weights: true,
            target: Target::Ort,
            calibration: Calibration::MinMax,
            activations: ActivationType::Uint8,
            weight_range: WeightRange::Full,
            block_size: default_block_size(),
            int4_int8_compute: true,
            layer_modes: Vec::new(),
        }
    }

    /// The modes this spec may write: `mode` and every per-layer mode (float excluded).
    pub fn modes(&self) -> Vec<Mode> {
        let mut modes = vec![self.mode];
        for m in self.layer_modes.iter().filter_map(|l| l.mode) {
            if !modes.contains(&m) {
                modes.push(m);
            }
        }
        modes
    }

    /// The effective per-channel choice.
    pub fn per_channel(&self) -> bool {
        self.per_channel.unwrap_or(true)
    }
}

/// One layer that was quantized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizedLayer {
    /// `profagent_onnx::naming::layer_of_node` of the node.
    pub layer: String,
    pub node: String,
    pub op_type: String,
    /// What it became, e.g. `DynamicQuantizeMatMul (int8, per-channel)`.
    pub scheme: String,
    /// Float weight bytes before and quantized weight bytes after (scales included).
    pub weight_bytes_before: usize,
    pub weight_bytes_after: usize,
}

/// One candidate-looking node left in float, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedLayer {
    pub layer: String,
    pub node: String,
    pub op_type: String,
    pub reason: String,
}

/// What `quantize` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuantReport {
    pub mode: String,
    pub quantized: Vec<QuantizedLayer>,
    pub skipped: Vec<SkippedLayer>,
    /// Activation tensors that got a QuantizeLinear/DequantizeLinear pair (static mode).
    pub quantized_activations: usize,
    /// `Relu` and `Clip(0, max)` nodes folded into the quantization of their input (static mode).
    pub folded_relus: usize,
    /// Calibration batches run (static mode).
    pub calibration_batches: usize,
    /// What else the rewrite had to do or chose, one line each (e.g. an opset upgrade).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl QuantReport {
    pub fn weight_bytes_before(&self) -> usize {
        self.quantized.iter().map(|l| l.weight_bytes_before).sum()
    }
    pub fn weight_bytes_after(&self) -> usize {
        self.quantized.iter().map(|l| l.weight_bytes_after).sum()
    }
}
