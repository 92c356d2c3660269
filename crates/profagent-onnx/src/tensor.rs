//! Reading and writing tensor payloads (`TensorProto`) as plain Rust vectors.
//!
//! ONNX stores the same numbers in several places (`raw_data` little-endian bytes, or the
//! typed `float_data`/`int64_data`/... fields); these helpers hide that.
use crate::error::{OnnxError, Result};
use crate::proto::{tensor_proto::DataType, TensorProto};

/// ONNX element type codes used across the workspace.
pub use crate::proto::tensor_proto::DataType as ElemType;

fn err(t: &TensorProto, reason: impl Into<String>) -> OnnxError {
    OnnxError::Tensor {
        tensor: t.name().to_string(),
        reason: reason.into(),
    }
}

/// Number of elements given by the dims (1 for a scalar).
pub fn element_count(t: &TensorProto) -> usize {
    t.dims.iter().map(|&d| d.max(0) as usize).product()
}

/// Size in bytes of one element of an ONNX data type (0 for strings/unknown; 4-bit types report 1).
pub fn elem_size(data_type: i32) -> usize {
    match DataType::try_from(data_type).unwrap_or(DataType::Undefined) {
        DataType::Float | DataType::Int32 | DataType::Uint32 => 4,
        DataType::Double | DataType::Int64 | DataType::Uint64 | DataType::Complex64 => 8,
        DataType::Complex128 => 16,
        DataType::Float16 | DataType::Bfloat16 | DataType::Int16 | DataType::Uint16 => 2,
        DataType::Int8
        | DataType::Uint8
        | DataType::Bool
        | DataType::Float8e4m3fn
        | DataType::Float8e4m3fnuz
        | DataType::Float8e5m2
        | DataType::Float8e5m2fnuz
        | DataType::Int4
        | DataType::Uint4 => 1,
        _ => 0,
    }
}

/// Bytes the tensor's payload takes (packed 4-bit types count half a byte per element).
pub fn payload_bytes(t: &TensorProto) -> usize {
    if let Some(raw) = &t.raw_data {
        return raw.len();
    }
    let n = element_count(t);
    match DataType::try_from(t.data_type()).unwrap_or(DataType::Undefined) {
        DataType::Int4 | DataType::Uint4 => n.div_ceil(2),
        _ => n * elem_size(t.data_type()),
    }
}

/// True for floating-point element types (the ones that count as "parameters").
pub fn is_float(data_type: i32) -> bool {
    matches!(
        DataType::try_from(data_type).unwrap_or(DataType::Undefined),
        DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16
    )
}

fn check_len(t: &TensorProto, got: usize) -> Result<()> {
    let want = element_count(t);
    if got != want {
        return Err(err(
            t,
            format!("holds {got} elements but its dims {:?} need {want}", t.dims),
        ));
    }
    Ok(())
}

/// The tensor's values as f32 (from float, float16, bfloat16 or double storage).
pub fn to_f32(t: &TensorProto) -> Result<Vec<f32>> {
    let dt = DataType::try_from(t.data_type()).unwrap_or(DataType::Undefined);
    let out: Vec<f32> = match (dt, &t.raw_data) {
        (DataType::Float, Some(raw)) => chunks::<4>(t, raw)?.map(f32::from_le_bytes).collect(),
        (DataType::Float, None) => t.float_data.clone(),
        (DataType::Double, Some(raw)) => chunks::<8>(t, raw)?
            .map(|b| f64::from_le_bytes(b) as f32)
            .collect(),
        (DataType::Double, None) => t.double_data.iter().map(|&v| v as f32).collect(),
        (DataType::Float16, Some(raw)) => chunks::<2>(t, raw)?
            .map(|b| half::f16::from_le_bytes(b).to_f32())
            .collect(),
        (DataType::Float16, None) => t
            .int32_data
            .iter()
            .map(|&v| half::f16::from_bits(v as u16).to_f32())
            .collect(),
        (DataType::Bfloat16, Some(raw)) => chunks::<2>(t, raw)?
            .map(|b| half::bf16::from_le_bytes(b).to_f32())
            .collect(),
        (DataType::Bfloat16, None) => t
            .int32_data
            .iter()
            .map(|&v| half::bf16::from_bits(v as u16).to_f32())
            .collect(),
        _ => return Err(err(t, format!("expected a float tensor, found {dt:?}"))),
    };
    check_len(t, out.len())?;
    Ok(out)
}

/// The tensor's values as i64 (from any integer storage).
pub fn to_i64(t: &TensorProto) -> Result<Vec<i64>> {
    let dt = DataType::try_from(t.data_type()).unwrap_or(DataType::Undefined);
    let out: Vec<i64> = match (dt, &t.raw_data) {
        (DataType::Int64, Some(raw)) => chunks::<8>(t, raw)?.map(i64::from_le_bytes).collect(),
        (DataType::Int64, None) => t.int64_data.clone(),
        (DataType::Int32, Some(raw)) => chunks::<4>(t, raw)?
            .map(|b| i32::from_le_bytes(b) as i64)
            .collect(),
        (
            DataType::Int32
            | DataType::Int16
            | DataType::Int8
            | DataType::Uint8
            | DataType::Uint16
            | DataType::Bool,
            None,
        ) => t.int32_data.iter().map(|&v| v as i64).collect(),
        (DataType::Int8, Some(raw)) => raw.iter().map(|&b| b as i8 as i64).collect(),
        (DataType::Uint8 | DataType::Bool, Some(raw)) => raw.iter().map(|&b| b as i64).collect(),
        (DataType::Int16, Some(raw)) => chunks::<2>(t, raw)?
            .map(|b| i16::from_le_bytes(b) as i64)
            .collect(),
        (DataType::Uint16, Some(raw)) => chunks::<2>(t, raw)?
            .map(|b| u16::from_le_bytes(b) as i64)
            .collect(),
        (DataType::Uint32, Some(raw)) => chunks::<4>(t, raw)?
            .map(|b| u32::from_le_bytes(b) as i64)
            .collect(),
        (DataType::Uint32 | DataType::Uint64, None) => {
            t.uint64_data.iter().map(|&v| v as i64).collect()
        }
        (DataType::Uint64, Some(raw)) => chunks::<8>(t, raw)?
            .map(|b| u64::from_le_bytes(b) as i64)
            .collect(),
        _ => return Err(err(t, format!("expected an integer tensor, found {dt:?}"))),
    };
    check_len(t, out.len())?;
    Ok(out)
}

fn chunks<'a, const N: usize>(
    t: &TensorProto,
    raw: &'a [u8],
) -> Result<impl Iterator<Item = [u8; N]> + 'a> {
    if !raw.len().is_multiple_of(N) {
        return Err(err(
            t,
            format!("raw_data has {} bytes, not a multiple of {N}", raw.len()),
        ));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| <[u8; N]>::try_from(c).expect("chunks_exact yields N bytes")))
}

fn base(name: &str, dims: &[i64], dt: DataType, raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.to_vec(),
        data_type: Some(dt as i32),
        raw_data: Some(raw),
        ..Default::default()
    }
}

/// A float32 initializer stored as `raw_data`.
pub fn from_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    base(
        name,
        dims,
        DataType::Float,
        data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// An int64 initializer stored as `raw_data`.
pub fn from_i64(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    base(
        name,
        dims,
        DataType::Int64,
        data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// An int32 initializer stored as `raw_data`.
pub fn from_i32(name: &str, dims: &[i64], data: &[i32]) -> TensorProto {
    base(
        name,
        dims,
        DataType::Int32,
        data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// An int8 initializer stored as `raw_data`.
pub fn from_i8(name: &str, dims: &[i64], data: &[i8]) -> TensorProto {
    base(
        name,
        dims,
        DataType::Int8,
        data.iter().map(|&v| v as u8).collect(),
    )
}

/// A uint8 initializer stored as `raw_data`.
pub fn from_u8(name: &str, dims: &[i64], data: &[u8]) -> TensorProto {
    base(name, dims, DataType::Uint8, data.to_vec())
}

/// Replaces the payload of a float tensor keeping its name; dims are set to `dims`.
pub fn set_f32(t: &mut TensorProto, dims: &[i64], data: &[f32]) {
    let name = t.name().to_string();
    *t = from_f32(&name, dims, data);
}
