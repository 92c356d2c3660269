//! Reading a Hugging Face `preprocessor_config.json` (image processors and the older feature
//! extractors) into a `Preprocess`.
//!
//! Supported keys: `do_resize`, `size` (int, `{shortest_edge}`, `{height, width}`), `resample`
//! (2 bilinear, 3 bicubic), `crop_pct` (ConvNeXt-style: resize to `shortest_edge / crop_pct`,
//! then crop `shortest_edge`), `do_center_crop`, `crop_size`, `do_rescale`, `rescale_factor`,
//! `do_normalize`, `image_mean`, `image_std`. An int `size` means a square, as Hugging Face's
//! `get_size_dict` does by default. Anything we cannot honour exactly is an error, never a guess.
use serde_json::Value;

use crate::preprocess::{ChannelOrder, Layout, Preprocess, Resize, Size};
use crate::resize::Filter;

const DEFAULT_RESCALE: f64 = 1.0 / 255.0;

pub(crate) fn from_hugging_face(config: &Value) -> Result<Preprocess, String> {
    let flag =
        |key: &str, default: bool| config.get(key).and_then(Value::as_bool).unwrap_or(default);

    let filter = match config.get("resample") {
        None | Some(Value::Null) => Filter::Bilinear,
        Some(value) => {
            let code = value
                .as_i64()
                .ok_or_else(|| format!("'resample' must be an integer, got {value}"))?;
            Filter::from_pil_code(code).ok_or_else(|| {
                format!("'resample' = {code} is not supported (2 bilinear and 3 bicubic are)")
            })?
        }
    };

    let mut center_crop = if flag("do_center_crop", false) {
        match config.get("crop_size") {
            Some(value) => Some(size_of(value, "crop_size")?),
            None => return Err("'do_center_crop' is true but there is no 'crop_size'".into()),
        }
    } else {
        None
    };

    let resize = if flag("do_resize", config.get("size").is_some()) {
        let value = config
            .get("size")
            .ok_or("'do_resize' is true but there is no 'size'")?;
        match value.get("shortest_edge").and_then(Value::as_u64) {
            Some(_) if value.get("longest_edge").is_some_and(|v| !v.is_null()) => {
                return Err("'size' with 'longest_edge' is not supported".into())
            }
            Some(short) => {
                let short = u32::try_from(short).map_err(|_| "'shortest_edge' too large")?;
                match config.get("crop_pct").and_then(Value::as_f64) {
                    // ConvNeXt: below 384 px, resize to short/crop_pct and crop `short`.
                    Some(pct) if short < 384 && pct > 0.0 => {
                        center_crop = Some(Size {
                            height: short,
                            width: short,
                        });
                        Some(Resize::ShortSide((f64::from(short) / pct) as u32))
                    }
                    _ => Some(Resize::ShortSide(short)),
                }
            }
            None => {
                let size = size_of(value, "size")?;
                Some(Resize::Exact {
                    height: size.height,
                    width: size.width,
                })
            }
        }
    } else {
        None
    };

    let scale = if flag("do_rescale", true) {
        config
            .get("rescale_factor")
            .and_then(Value::as_f64)
            .unwrap_or(DEFAULT_RESCALE)
    } else {
        1.0
    };
    let (mean, std) = if flag("do_normalize", true) {
        (triple(config, "image_mean")?, triple(config, "image_std")?)
    } else {
        ([0.0; 3], [1.0; 3])
    };
    Ok(Preprocess {
        resize,
        center_crop,
        filter,
        scale,
        mean,
        std,
        layout: Layout::Nchw,
        channel_order: ChannelOrder::Rgb,
    })
}

fn size_of(value: &Value, key: &str) -> Result<Size, String> {
    if let Some(side) = value.as_u64() {
        let side = u32::try_from(side).map_err(|_| format!("'{key}' too large"))?;
        return Ok(Size {
            height: side,
            width: side,
        });
    }
    let dim = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    match (dim("height"), dim("width")) {
        (Some(height), Some(width)) => Ok(Size { height, width }),
        _ => Err(format!(
            "'{key}' must be an integer or {{\"height\", \"width\"}}, got {value}"
        )),
    }
}

fn triple(config: &Value, key: &str) -> Result<[f64; 3], String> {
    let values: Vec<f64> = config
        .get(key)
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_f64).collect())
        .ok_or_else(|| format!("'{key}' must be a list of 3 numbers"))?;
    <[f64; 3]>::try_from(values.as_slice())
        .map_err(|_| format!("'{key}' must have 3 numbers (RGB), got {}", values.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vit_style_config_resizes_to_a_square() {
        let config = serde_json::json!({
            "do_normalize": true, "do_resize": true, "do_rescale": true,
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
            "resample": 2, "rescale_factor": 0.00392156862745098,
            "size": {"height": 224, "width": 224}
        });
        let pre = from_hugging_face(&config).unwrap();
        assert_eq!(
            pre.resize,
            Some(Resize::Exact {
                height: 224,
                width: 224
            })
        );
        assert_eq!(pre.center_crop, None);
        assert_eq!(pre.mean, [0.5; 3]);
    }

    #[test]
    fn convnext_crop_pct_becomes_resize_then_crop() {
        let config = serde_json::json!({
            "crop_pct": 0.875, "do_resize": true, "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225], "resample": 3, "size": {"shortest_edge": 224}
        });
        let pre = from_hugging_face(&config).unwrap();
        assert_eq!(pre.resize, Some(Resize::ShortSide(256)));
        assert_eq!(
            pre.center_crop,
            Some(Size {
                height: 224,
                width: 224
            })
        );
        assert_eq!(pre.filter, Filter::Bicubic);
    }

    #[test]
    fn unsupported_resample_is_an_error() {
        let config = serde_json::json!({"image_mean": [0.5,0.5,0.5], "image_std": [0.5,0.5,0.5], "resample": 1, "size": 224});
        assert!(from_hugging_face(&config).unwrap_err().contains("resample"));
    }
}
