//! Preprocessing: how decoded RGB pixels become the float tensor a model expects.
//!
//! A `Preprocess` is plain data (resize, center crop, scale, mean/std, layout) so it can be
//! written in a small JSON file, named by a preset, or read from a Hugging Face
//! `preprocessor_config.json` next to the model. It knows nothing about runtimes.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::resize::{self, Filter, RgbImage};

/// Memory layout of the produced batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

/// Order of the colour channels in the produced tensor. Images are decoded as RGB; `Bgr`
/// (Caffe, OpenCV-trained models) swaps the first and last channel. `mean` and `std` are given
/// in the produced order (with `Bgr`, `mean[0]` is the blue channel's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    #[default]
    Rgb,
    Bgr,
}

/// How to resize before cropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// Short side to this many pixels, aspect kept (torchvision `Resize(int)`).
    ShortSide(u32),
    /// Exactly this size, aspect not kept.
    Exact { height: u32, width: u32 },
}

/// Height and width in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub height: u32,
    pub width: u32,
}

/// The full recipe. Each output value is `(pixel * scale - mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    #[serde(default)]
    pub resize: Option<Resize>,
    #[serde(default)]
    pub center_crop: Option<Size>,
    #[serde(default)]
    pub filter: Filter,
    /// Multiplies raw 0..255 values (1/255 for torchvision's `ToTensor`).
    pub scale: f64,
    pub mean: [f64; 3],
    pub std: [f64; 3],
    #[serde(default)]
    pub layout: Layout,
    #[serde(default, skip_serializing_if = "is_rgb")]
    pub channel_order: ChannelOrder,
}

fn is_rgb(order: &ChannelOrder) -> bool {
    *order == ChannelOrder::Rgb
}

/// Name → constructor: the presets, following torchvision conventions.
type PresetConstructor = fn() -> Preprocess;
const PRESETS: &[(&str, PresetConstructor)] = &[("cifar10", cifar10), ("imagenet", imagenet)];

/// CIFAR-10 at its native 32x32: no resize, CIFAR-10 training-set mean/std.
pub fn cifar10() -> Preprocess {
    Preprocess {
        resize: None,
        center_crop: None,
        filter: Filter::Bilinear,
        scale: 1.0 / 255.0,
        mean: [0.4914, 0.4822, 0.4465],
        std: [0.2470, 0.2435, 0.2616],
        layout: Layout::Nchw,
        channel_order: ChannelOrder::Rgb,
    }
}

/// torchvision ImageNet evaluation: short side 256 (bilinear), center crop 224.
pub fn imagenet() -> Preprocess {
    Preprocess {
        resize: Some(Resize::ShortSide(256)),
        center_crop: Some(Size {
            height: 224,
            width: 224,
        }),
        filter: Filter::Bilinear,
        scale: 1.0 / 255.0,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        layout: Layout::Nchw,
        channel_order: ChannelOrder::Rgb,
    }
}

/// Names of the built-in presets.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(name, _)| *name).collect()
}

/// File names looked for next to a model, in order.
const MODEL_SIDECARS: &[&str] = &["preprocessor_config.json", "preprocess.json"];

impl Preprocess {
    /// A built-in preset by name.
    pub fn preset(name: &str) -> Result<Preprocess> {
        PRESETS
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, make)| make())
            .ok_or_else(|| DataError::UnknownPreset {
                name: name.to_string(),
                known: preset_names().join(", "),
            })
    }

    /// Reads a preprocessing file: either this crate's own JSON form (the fields of
    /// `Preprocess`) or a Hugging Face `preprocessor_config.json`.
    pub fn from_file(path: &Path) -> Result<Preprocess> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(Some(path), e.to_string()))?;
        let is_hugging_face = [
            "image_mean",
            "do_normalize",
            "do_resize",
            "image_processor_type",
        ]
        .iter()
        .any(|key| value.get(key).is_some());
        let parsed = if is_hugging_face {
            crate::hf::from_hugging_face(&value).map_err(|reason| bad(Some(path), reason))?
        } else {
            serde_json::from_value(value).map_err(|e| bad(Some(path), e.to_string()))?
        };
        parsed
            .validate()
            .map_err(|reason| bad(Some(path), reason))?;
        Ok(parsed)
    }

    /// The preprocessing file stored next to a model (`preprocessor_config.json` or
    /// `preprocess.json` in its folder, or `<model>.preprocess.json`), if there is one.
    pub fn sidecar_of(model: &Path) -> Option<PathBuf> {
        let own = model.with_extension("preprocess.json");
        if own.is_file() {
            return Some(own);
        }
        let folder = model.parent()?;
        MODEL_SIDECARS
            .iter()
            .map(|name| folder.join(name))
            .find(|candidate| candidate.is_file())
    }

    /// Checks values that would otherwise produce NaNs or empty tensors.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err(format!("std {:?} must be finite and non-zero", self.std));
        }
        if !self.scale.is_finite() || self.scale == 0.0 {
            return Err(format!("scale {} must be finite and non-zero", self.scale));
        }
        let zero_size = match self.resize {
            Some(Resize::ShortSide(0)) => true,
            Some(Resize::Exact { height, width }) => height == 0 || width == 0,
            _ => false,
        } || matches!(self.center_crop, Some(Size { height, width }) if height == 0 || width == 0);
        if zero_size {
            return Err("resize and crop sizes must be positive".into());
        }
        Ok(())
    }

    /// The (height, width) every image will have, if the recipe fixes it (a crop or an exact
    /// resize); `None` means "whatever the images are", checked per batch.
    pub fn fixed_size(&self) -> Option<Size> {
        match (self.center_crop, self.resize) {
            (Some(crop), _) => Some(crop),
            (None, Some(Resize::Exact { height, width })) => Some(Size { height, width }),
            _ => None,
        }
    }

    /// Per-sample tensor shape for an image of this size after preprocessing.
    pub fn sample_shape(&self, size: Size) -> Vec<usize> {
        let (h, w) = (size.height as usize, size.width as usize);
        match self.layout {
            Layout::Nchw => vec![3, h, w],
            Layout::Nhwc => vec![h, w, 3],
        }
    }

    /// Resizes and crops a decoded image (the geometric part).
    pub fn geometry(&self, image: RgbImage, name: &Path) -> Result<RgbImage> {
        let resized = match self.resize {
            None => image,
            Some(Resize::ShortSide(short)) => {
                let (w, h) = resize::short_side_size(image.width, image.height, short);
                resize::resize(&image, w, h, self.filter)
            }
            Some(Resize::Exact { height, width }) => {
                resize::resize(&image, width, height, self.filter)
            }
        };
        match self.center_crop {
            None => Ok(resized),
            Some(crop) => resize::center_crop(&resized, crop.width, crop.height).ok_or_else(|| {
                DataError::SizeMismatch {
                    path: name.to_path_buf(),
                    width: resized.width,
                    height: resized.height,
                    expected_width: crop.width,
                    expected_height: crop.height,
                }
            }),
        }
    }

    /// Writes the normalised image into `out` (length `3 * height * width`) in `self.layout`.
    pub fn normalize_into(&self, image: &RgbImage, out: &mut [f32]) {
        // (x * scale - mean) / std == (x - mean / scale) / (std / scale); the second form is the
        // one our CIFAR reference uses ((x - mean*255) / (std*255)) and costs one op less.
        let offset: [f32; 3] = std::array::from_fn(|c| (self.mean[c] / self.scale) as f32);
        let divisor: [f32; 3] = std::array::from_fn(|c| (self.std[c] / self.scale) as f32);
        let plane = image.width as usize * image.height as usize;
        // Output channel c reads decoded channel source[c].
        let source: [usize; 3] = match self.channel_order {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        match self.layout {
            Layout::Nchw => {
                for (i, pixel) in image.pixels.chunks_exact(3).enumerate() {
                    for c in 0..3 {
                        out[c * plane + i] = (f32::from(pixel[source[c]]) - offset[c]) / divisor[c];
                    }
                }
            }
            Layout::Nhwc => {
                for (values, pixel) in out.chunks_exact_mut(3).zip(image.pixels.chunks_exact(3)) {
                    for c in 0..3 {
                        values[c] = (f32::from(pixel[source[c]]) - offset[c]) / divisor[c];
                    }
                }
            }
        }
    }
}

fn bad(path: Option<&Path>, reason: String) -> DataError {
    DataError::BadPreprocess {
        path: path.map(Path::to_path_buf),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_resolve_case_insensitively_and_unknown_names_list_known_ones() {
        assert_eq!(Preprocess::preset("ImageNet").unwrap(), imagenet());
        let err = Preprocess::preset("mnist").unwrap_err().to_string();
        assert!(err.contains("mnist") && err.contains("cifar10"), "{err}");
    }

    #[test]
    fn own_json_format_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pre.json");
        std::fs::write(&path, serde_json::to_string(&imagenet()).unwrap()).unwrap();
        assert_eq!(Preprocess::from_file(&path).unwrap(), imagenet());
    }

    #[test]
    fn zero_std_is_rejected_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pre.json");
        let mut config = cifar10();
        config.std[1] = 0.0;
        std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
        let err = Preprocess::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("pre.json") && err.contains("std"), "{err}");
    }

    #[test]
    fn normalisation_matches_the_cifar_formula_in_both_layouts() {
        let image = RgbImage {
            width: 2,
            height: 1,
            pixels: vec![0, 128, 255, 10, 20, 30],
        };
        let mut config = cifar10();
        let mut nchw = vec![0.0; 6];
        config.normalize_into(&image, &mut nchw);
        let expected = |x: f32, c: usize| {
            (x - (config.mean[c] * 255.0) as f32) / (config.std[c] * 255.0) as f32
        };
        assert!((nchw[0] - expected(0.0, 0)).abs() < 1e-6);
        assert!((nchw[1] - expected(10.0, 0)).abs() < 1e-6);
        assert!((nchw[2 + 1] - expected(20.0, 1)).abs() < 1e-6);
        config.layout = Layout::Nhwc;
        let mut nhwc = vec![0.0; 6];
        config.normalize_into(&image, &mut nhwc);
        assert!((nhwc[1] - expected(128.0, 1)).abs() < 1e-6);
        assert!((nhwc[5] - expected(30.0, 2)).abs() < 1e-6);
    }

    #[test]
    fn bgr_swaps_red_and_blue_and_normalises_in_the_produced_order() {
        let image = RgbImage {
            width: 2,
            height: 1,
            pixels: vec![0, 128, 255, 10, 20, 30],
        };
        let mut config = cifar10();
        config.channel_order = ChannelOrder::Bgr;
        let expected = |x: f32, c: usize| {
            (x - (config.mean[c] * 255.0) as f32) / (config.std[c] * 255.0) as f32
        };
        let mut nchw = vec![0.0; 6];
        config.normalize_into(&image, &mut nchw);
        // Channel 0 is blue: 255 and 30.
        assert!((nchw[0] - expected(255.0, 0)).abs() < 1e-6);
        assert!((nchw[1] - expected(30.0, 0)).abs() < 1e-6);
        assert!((nchw[4] - expected(0.0, 2)).abs() < 1e-6);
        config.layout = Layout::Nhwc;
        let mut nhwc = vec![0.0; 6];
        config.normalize_into(&image, &mut nhwc);
        assert!((nhwc[0] - expected(255.0, 0)).abs() < 1e-6);
        assert!((nhwc[5] - expected(10.0, 2)).abs() < 1e-6);
        // Written only when not the default, read back as written.
        let text = serde_json::to_string(&config).unwrap();
        assert!(text.contains("\"channel_order\":\"bgr\""), "{text}");
        assert_eq!(serde_json::from_str::<Preprocess>(&text).unwrap(), config);
        assert!(!serde_json::to_string(&cifar10())
            .unwrap()
            .contains("channel_order"));
    }
}
