//! The arithmetic of quantization: scales and zero points, int8 (per tensor or per channel,
//! signed symmetric or unsigned asymmetric), int4 blocks packed for `MatMulNBits`, and
//! activation ranges. Pure functions on slices; graph code lives elsewhere.

/// Smallest scale we emit: a constant-zero channel would otherwise get scale 0, which makes
/// dequantization produce NaN-free zeros but QuantizeLinear divide by zero.
pub const MIN_SCALE: f32 = 1e-12;

pub use crate::spec::WeightRange;

/// Where the channels of a weight lie: element `i` belongs to channel
/// `(i / inner) % channels`. Per-tensor quantization uses `channels == 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLayout {
    pub channels: usize,
    pub inner: usize,
}

impl ChannelLayout {
    pub fn per_tensor() -> Self {
        ChannelLayout {
            channels: 1,
            inner: 1,
        }
    }

    /// Channels along `axis` of a tensor with `dims`.
    pub fn along(dims: &[usize], axis: usize) -> Self {
        ChannelLayout {
            channels: dims[axis],
            inner: dims[axis + 1..].iter().product::<usize>().max(1),
        }
    }

    fn channel_of(&self, i: usize) -> usize {
        if self.channels == 1 {
            0
        } else {
            (i / self.inner) % self.channels
        }
    }

    fn ranges(&self, w: &[f32]) -> Vec<(f32, f32)> {
        let mut r = vec![(0.0f32, 0.0f32); self.channels];
        if self.channels == 1 {
            let (lo, hi) = w
                .iter()
                .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            r[0] = (lo, hi);
            return r;
        }
        for (i, &v) in w.iter().enumerate() {
            let slot = &mut r[self.channel_of(i)];
            slot.0 = slot.0.min(v);
            slot.1 = slot.1.max(v);
        }
        r
    }
}

/// Signed symmetric int8: `q = round(w / s)` in [-127, 127], `s = max|w| / 127`, zero point 0.
/// Returns the codes and one scale per channel.
pub fn int8_symmetric(w: &[f32], layout: ChannelLayout) -> (Vec<i8>, Vec<f32>) {
    int8_symmetric_within(w, layout, WeightRange::Full)
}

/// `int8_symmetric` within `range`: codes in [-qmax, qmax], `s = max|w| / qmax`.
pub fn int8_symmetric_within(
    w: &[f32],
    layout: ChannelLayout,
    range: WeightRange,
) -> (Vec<i8>, Vec<f32>) {
    let qmax = range.qmax();
    let scales: Vec<f32> = layout
        .ranges(w)
        .iter()
        .map(|&(lo, hi)| (lo.abs().max(hi.abs()) / qmax).max(MIN_SCALE))
        .collect();
    let inv: Vec<f32> = scales.iter().map(|s| 1.0 / s).collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, &v)| (v * inv[layout.channel_of(i)]).round().clamp(-qmax, qmax) as i8)
        .collect();
    (q, scales)
}

/// Unsigned asymmetric uint8 over `[min(0, lo), max(0, hi)]` so that 0 is exact.
/// Returns codes, scales and zero points per channel.
pub fn uint8_asymmetric(w: &[f32], layout: ChannelLayout) -> (Vec<u8>, Vec<f32>, Vec<u8>) {
    let params: Vec<(f32, u8)> = layout
        .ranges(w)
        .iter()
        .map(|&(lo, hi)| {
            let scale = ((hi - lo) / 255.0).max(MIN_SCALE);
            let zero = (-lo / scale).round().clamp(0.0, 255.0) as u8;
            (scale, zero)
        })
        .collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (s, z) = params[layout.channel_of(i)];
            ((v / s).round() + z as f32).clamp(0.0, 255.0) as u8
        })
        .collect();
    let (scales, zeros) = params.into_iter().unzip();
    (q, scales, zeros)
}

/// Scale and int8 zero point for an activation range, asymmetric over the full [-128, 127]
/// and always containing 0 (so zero padding and ReLU's 0 are exact).
pub fn activation_int8(lo: f32, hi: f32) -> (f32, i8) {
    let (scale, zero) = activation_params(lo, hi, -128.0);
    (scale, zero as i8)
}

/// Scale and uint8 zero point for an activation range, asymmetric over [0, 255] and always
/// containing 0; what `onnxruntime.quantization` writes for `QUInt8` activations (its
/// `compute_scale_zp`), and what ONNX Runtime's CPU kernels fuse into QLinearConv everywhere.
pub fn activation_uint8(lo: f32, hi: f32) -> (f32, u8) {
    let (scale, zero) = activation_params(lo, hi, 0.0);
    (scale, zero as u8)
}

/// `(scale, zero point)` over 256 codes starting at `qmin`, with 0 exactly representable.
fn activation_params(lo: f32, hi: f32, qmin: f32) -> (f32, i32) {
    let lo = lo.min(0.0);
    let hi = hi.max(0.0);
    let scale = ((hi - lo) / 255.0).max(MIN_SCALE);
    let zero = (qmin - lo / scale).round().clamp(qmin, qmin + 255.0) as i32;
    (scale, zero)
}

/// Bias as int32 with scale `x_scale * w_scale[c]` (zero point 0), as QLinearConv expects.
pub fn bias_int32(bias: &[f32], x_scale: f32, w_scales: &[f32]) -> (Vec<i32>, Vec<f32>) {
    let scales: Vec<f32> = (0..bias.len())
        .map(|c| (x_scale * w_scales[if w_scales.len() == 1 { 0 } else { c }]).max(MIN_SCALE))
        .collect();
    let q = bias
        .iter()
        .zip(&scales)
        .map(|(&b, &s)| {
            (b as f64 / s as f64)
                .round()
                .clamp(i32::MIN as f64, i32::MAX as f64) as i32
        })
        .collect();
    (q, scales)
}

/// 4-bit weights for `MatMulNBits`, from a row-major `[k, n]` matrix: for each output column,
/// blocks of `block` values along K, asymmetric (scale, 4-bit zero point), two codes per byte
/// (low nibble first). K is padded with zeros to whole blocks.
pub struct Int4Blocks {
    /// `[n, blocks, block / 2]` bytes.
    pub packed: Vec<u8>,
    /// `[n * blocks]`.
    pub scales: Vec<f32>,
    /// `[n * ceil(blocks / 2)]` bytes, two zero points per byte.
    pub zero_points: Vec<u8>,
    pub blocks: usize,
}

pub fn int4_blocks(w: &[f32], k: usize, n: usize, block: usize) -> Int4Blocks {
    let blocks = k.div_ceil(block);
    let blob = block / 2;
    let zp_bytes = blocks.div_ceil(2);
    let mut packed = vec![0u8; n * blocks * blob];
    let mut scales = vec![0f32; n * blocks];
    let mut zero_points = vec![0u8; n * zp_bytes];
    let mut column = vec![0f32; block];
    for col in 0..n {
        for b in 0..blocks {
            for (j, slot) in column.iter_mut().enumerate() {
                let row = b * block + j;
                *slot = if row < k { w[row * n + col] } else { 0.0 };
            }
            let (lo, hi) = column
                .iter()
                .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let scale = ((hi - lo) / 15.0).max(MIN_SCALE);
            let zero = (-lo / scale).round().clamp(0.0, 15.0) as u8;
            scales[col * blocks + b] = scale;
            let zp_slot = &mut zero_points[col * zp_bytes + b / 2];
            *zp_slot |= zero << (4 * (b % 2));
            let out = &mut packed[(col * blocks + b) * blob..][..blob];
            for (j, &v) in column.iter().enumerate() {
                let code = ((v / scale).round() + zero as f32).clamp(0.0, 15.0) as u8;
                out[j / 2] |= code << (4 * (j % 2));
            }
        }
    }
    Int4Blocks {
        packed,
        scales,
        zero_points,
        blocks,
    }
}

/// Transposes a row-major `[rows, cols]` matrix.
pub fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = w[r * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_per_channel_round_trips_within_half_a_step() {
        let w = [0.5, -1.0, 0.25, 2.0, -0.1, 0.0];
        // [3, 2], channels along axis 1.
        let layout = ChannelLayout::along(&[3, 2], 1);
        let (q, s) = int8_symmetric(&w, layout);
        assert_eq!(s.len(), 2);
        for (i, (&v, &c)) in w.iter().zip(&q).enumerate() {
            let scale = s[i % 2];
            assert!((v - c as f32 * scale).abs() <= scale / 2.0 + 1e-7);
        }
        assert_eq!(q[3], 127);
    }

    #[test]
    fn reduced_range_codes_stay_within_64() {
        let w = [-1.0, 0.5, 0.25, 1.0, -0.3, 2.0];
        let layout = ChannelLayout::along(&[2, 3], 0);
        let (q, s) = int8_symmetric_within(&w, layout, WeightRange::Reduced);
        assert_eq!(q, vec![-64, 32, 16, 32, -10, 64]);
        assert_eq!(s, vec![1.0 / 64.0, 2.0 / 64.0]);
        let (full, _) = int8_symmetric_within(&w, layout, WeightRange::Full);
        assert_eq!(full, int8_symmetric(&w, layout).0);
        assert_eq!((full[0], full[5]), (-127, 127));
    }

    #[test]
    fn activation_range_keeps_zero_exact() {
        let (s, z) = activation_int8(0.0, 6.0);
        assert_eq!(z, -128);
        assert!((s - 6.0 / 255.0).abs() < 1e-7);
        let (s, z) = activation_int8(-1.0, 3.0);
        let zero_code = (0.0 / s).round() + z as f32;
        assert_eq!((zero_code - z as f32) * s, 0.0);
    }

    #[test]
    fn uint8_activation_range_keeps_zero_exact() {
        let (s, z) = activation_uint8(0.0, 6.0);
        assert_eq!(z, 0, "a ReLU range starts at code 0");
        assert!((s - 6.0 / 255.0).abs() < 1e-7);
        let (s, z) = activation_uint8(-1.0, 3.0);
        assert_eq!(z, (1.0 / s).round() as u8);
        let (s8, z8) = activation_int8(-1.0, 3.0);
        assert_eq!(s, s8);
        assert_eq!(z as i32 - 128, z8 as i32, "the same grid, shifted by 128");
        assert_eq!(
            activation_uint8(-2.0, -1.0).1,
            255,
            "all-negative range ends at 0"
        );
    }

    #[test]
    fn int4_packing_low_nibble_first() {
        // One column, K = 4, block 16 (padded): values 0..3 on scale 1 with zero point 0.
        let w: Vec<f32> = vec![0.0, 1.0, 2.0, 15.0];
        let b = int4_blocks(&w, 4, 1, 16);
        assert_eq!(b.blocks, 1);
        assert_eq!(b.scales, vec![1.0]);
        assert_eq!(b.zero_points, vec![0]);
        assert_eq!(&b.packed[..2], &[0x10, 0xF2]);
    }
}
