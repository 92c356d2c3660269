//! Minimal reader for NumPy `.npy` arrays and `.npz` archives (stored or deflated), enough for
//! "already preprocessed" tensors and integer label vectors.
use std::io::Read;
use std::path::Path;

use crate::error::{DataError, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// A numeric array, converted to f32 (floats and ints) with its original shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
    /// The NumPy dtype string it was stored with, e.g. `<f4`.
    pub dtype: String,
}

impl Array {
    pub fn is_integer(&self) -> bool {
        self.dtype.contains('i') || self.dtype.contains('u') || self.dtype.contains('b')
    }
}

/// Reads one `.npy` file.
pub fn read_npy_file(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_npy(&bytes).map_err(|reason| bad(path, reason))
}

/// Reads every array of an `.npz` archive, keyed by name without the `.npy` suffix.
pub fn read_npz_file(path: &Path) -> Result<Vec<(String, Array)>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(path, e.to_string()))?;
    let mut arrays = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| bad(path, e.to_string()))?;
        let name = entry.name().trim_end_matches(".npy").to_string();
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| bad(path, format!("entry '{name}': {e}")))?;
        let array =
            parse_npy(&bytes).map_err(|reason| bad(path, format!("entry '{name}': {reason}")))?;
        arrays.push((name, array));
    }
    Ok(arrays)
}

fn bad(path: &Path, reason: String) -> DataError {
    DataError::BadArray {
        path: path.to_path_buf(),
        reason,
    }
}

/// Parses the bytes of a `.npy` file.
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<Array, String> {
    if !bytes.starts_with(MAGIC) || bytes.len() < 10 {
        return Err("not a .npy file (bad magic)".into());
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(format!("unsupported .npy version {major}")),
    };
    let header = bytes
        .get(header_start..header_start + header_len)
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let descr = quoted_value(header, "descr").ok_or("header has no 'descr'")?;
    if header_field(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(
            "Fortran-ordered arrays are not supported (save with np.ascontiguousarray)".into(),
        );
    }
    let shape = parse_shape(header).ok_or("header has no readable 'shape'")?;
    let (kind, width) = parse_descr(&descr)?;
    let count: usize = shape.iter().product();
    let payload = &bytes[header_start + header_len..];
    if payload.len() < count * width {
        return Err(format!(
            "data is truncated: shape {shape:?} needs {} bytes, file has {}",
            count * width,
            payload.len()
        ));
    }
    let values = payload[..count * width]
        .chunks_exact(width)
        .map(|chunk| decode_scalar(kind, chunk))
        .collect();
    Ok(Array {
        shape,
        values,
        dtype: descr,
    })
}

fn header_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = &header[at + key.len() + 2..];
    let colon = rest.find(':')?;
    Some(rest[colon + 1..].trim_start())
}

fn quoted_value(header: &str, key: &str) -> Option<String> {
    let rest = header_field(header, key)?;
    let quote = rest.chars().next()?;
    let end = rest[1..].find(quote)?;
    Some(rest[1..1 + end].to_string())
}

fn parse_shape(header: &str) -> Option<Vec<usize>> {
    let rest = header_field(header, "shape")?.strip_prefix('(')?;
    let inner = &rest[..rest.find(')')?];
    inner
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| part.trim_end_matches('L').parse().ok())
        .collect()
}

fn parse_descr(descr: &str) -> std::result::Result<(char, usize), String> {
    let mut chars = descr.chars();
    let order = chars.next().ok_or("empty dtype")?;
    if order == '>' {
        return Err(format!("big-endian dtype '{descr}' is not supported"));
    }
    let kind = chars.next().ok_or("bad dtype")?;
    let width: usize = chars
        .as_str()
        .parse()
        .map_err(|_| format!("bad dtype '{descr}'"))?;
    let supported = matches!(
        (kind, width),
        ('f', 4 | 8) | ('i' | 'u', 1 | 2 | 4 | 8) | ('b', 1)
    );
    if !supported {
        return Err(format!(
            "dtype '{descr}' is not supported (use float32/float64 or integers)"
        ));
    }
    Ok((kind, width))
}

fn decode_scalar(kind: char, chunk: &[u8]) -> f64 {
    let mut buf = [0u8; 8];
    buf[..chunk.len()].copy_from_slice(chunk);
    match (kind, chunk.len()) {
        ('f', 4) => f64::from(f32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])),
        ('f', _) => f64::from_le_bytes(buf),
        ('i', width) => {
            // Sign-extend from `width` bytes.
            let shift = 64 - 8 * width as u32;
            ((i64::from_le_bytes(buf) << shift) >> shift) as f64
        }
        (_, _) => u64::from_le_bytes(buf) as f64,
    }
}

/// Encodes a float32 array as `.npy` bytes (used to export preprocessed batches and in tests).
pub fn encode_npy_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    encode(
        shape,
        "<f4",
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// Encodes an int64 array as `.npy` bytes.
pub fn encode_npy_i64(shape: &[usize], values: &[i64]) -> Vec<u8> {
    encode(
        shape,
        "<i8",
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// An `.npz` archive (stored, as `numpy.savez` writes it) of `.npy` byte arrays by name, e.g.
/// one array per model input: `[("input_ids", encode_npy_i64(..)), ...]`.
pub fn encode_npz(arrays: &[(&str, Vec<u8>)]) -> std::result::Result<Vec<u8>, String> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in arrays {
        writer
            .start_file(format!("{name}.npy"), options)
            .map_err(|e| e.to_string())?;
        writer.write_all(bytes).map_err(|e| e.to_string())?;
    }
    Ok(writer.finish().map_err(|e| e.to_string())?.into_inner())
}

fn encode(shape: &[usize], descr: &str, payload: Vec<u8>) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad so that the data starts on a 64-byte boundary, newline-terminated, as NumPy does.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_f32_and_i64() {
        let bytes = encode_npy_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        let array = parse_npy(&bytes).unwrap();
        assert_eq!(array.shape, vec![2, 3]);
        assert_eq!(array.values[5], -6.5);
        let labels = parse_npy(&encode_npy_i64(&[3], &[0, -1, 9])).unwrap();
        assert!(labels.is_integer());
        assert_eq!(labels.values, vec![0.0, -1.0, 9.0]);
    }

    #[test]
    fn truncated_data_is_reported() {
        let mut bytes = encode_npy_f32(&[4], &[1.0; 4]);
        bytes.truncate(bytes.len() - 3);
        assert!(parse_npy(&bytes).unwrap_err().contains("truncated"));
    }
}
