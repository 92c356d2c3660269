//! The one preprocessing resolution every command uses (`eval`, `quantize`, `prune`,
//! `compress`), so the same model and data get the same pixels everywhere:
//! 1. the explicit choice (`--preprocess PRESET|FILE`): a file when one exists at that path,
//!    else a preset name;
//! 2. a preprocessing file beside the model (`Preprocess::sidecar_of`: `MODEL.preprocess.json`,
//!    `preprocessor_config.json`, `preprocess.json`);
//! 3. tensor data (`.npy`/`.npz`): used as it is, no preprocessing applies;
//! 4. a text model (an `input_ids` input): none, the tokenizer makes its inputs;
//! 5. a guess from the model's image input (NCHW or NHWC, 3 channels, fixed height and width):
//!    32x32 is CIFAR-10, any other size torchvision's ImageNet recipe scaled to it (resize the
//!    short side to size/0.875, centre crop);
//! 6. an error naming the model and the flag to pass.
//!
//! The result says where it came from; callers print that line once at start.
use std::path::Path;

use profagent_runtime::IoInfo;

use crate::error::{DataError, Result};
use crate::preprocess::{self, Layout, Preprocess, Resize, Size};

/// torchvision's ImageNet evaluation crops 224 of 256: the crop is this fraction of the resize.
const IMAGENET_CROP_FRACTION: f64 = 0.875;
/// Input side of the CIFAR-10 models the `cifar10` preset fits.
const CIFAR_SIDE: usize = 32;

/// A preprocessing and where it came from (`origin`, for the start-up line).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPreprocess {
    pub preprocess: Preprocess,
    pub origin: String,
}

/// Resolves the preprocessing for `model` (see the module docs). `choice`: the user's
/// `--preprocess` value (`auto` counts as none); `inputs`: the model's graph inputs, with the
/// shapes given by `--input-shape` applied; `data`: the dataset path, when there is one.
pub fn resolve_preprocess(
    choice: Option<&str>,
    model: &Path,
    inputs: &[IoInfo],
    data: Option<&Path>,
) -> Result<ResolvedPreprocess> {
    let resolved =
        |preprocess: Preprocess, origin: String| ResolvedPreprocess { preprocess, origin };
    match choice.filter(|c| !c.eq_ignore_ascii_case("auto")) {
        Some(file) if Path::new(file).is_file() => {
            return Ok(resolved(
                Preprocess::from_file(Path::new(file))?,
                format!("file {file}"),
            ))
        }
        Some(name) => {
            return Ok(resolved(
                Preprocess::preset(name)?,
                format!("preset {name}"),
            ))
        }
        None => {}
    }
    if let Some(file) = Preprocess::sidecar_of(model) {
        let origin = format!("file {} (beside the model)", file.display());
        return Ok(resolved(Preprocess::from_file(&file)?, origin));
    }
    if data.is_some_and(is_tensor_file) {
        return Ok(resolved(
            preprocess::cifar10(),
            "none (the data holds tensors, used as they are)".into(),
        ));
    }
    if crate::text::is_text_model(inputs) {
        return Ok(resolved(
            preprocess::cifar10(),
            "none (a text model: its inputs come from the tokenizer)".into(),
        ));
    }
    if let Some((preprocess, origin)) = guess_from_inputs(inputs) {
        return Ok(resolved(preprocess, origin));
    }
    Err(DataError::NoPreprocess {
        model: model.to_path_buf(),
        presets: preprocess::preset_names().join(", "),
    })
}

/// `.npy` / `.npz`: tensors used as they are.
pub fn is_tensor_file(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("npy" | "npz")
    )
}

/// A recipe for the first 3-channel image input with a fixed height and width.
fn guess_from_inputs(inputs: &[IoInfo]) -> Option<(Preprocess, String)> {
    inputs.iter().find_map(|input| {
        let (layout, height, width) = match input.shape.as_slice() {
            [_, Some(3), Some(h), Some(w)] => (Layout::Nchw, *h, *w),
            [_, Some(h), Some(w), Some(3)] => (Layout::Nhwc, *h, *w),
            _ => return None,
        };
        let shape: Vec<String> = input
            .shape
            .iter()
            .map(|d| d.map_or("N".into(), |d| d.to_string()))
            .collect();
        let because = format!(
            "guessed from input '{}' {}; pass --preprocess to choose",
            input.name,
            shape.join("x")
        );
        let mut preprocess = if height == CIFAR_SIDE && width == CIFAR_SIDE {
            preprocess::cifar10()
        } else {
            let mut recipe = preprocess::imagenet();
            let short = height.min(width) as f64 / IMAGENET_CROP_FRACTION;
            recipe.resize = Some(Resize::ShortSide(short.round() as u32));
            recipe.center_crop = Some(Size {
                height: height as u32,
                width: width as u32,
            });
            recipe
        };
        preprocess.layout = layout;
        let name = if height == CIFAR_SIDE && width == CIFAR_SIDE {
            "preset cifar10".to_string()
        } else if preprocess.resize == preprocess::imagenet().resize {
            "preset imagenet".to_string()
        } else {
            format!("ImageNet mean/std, crop {height}x{width}")
        };
        let layout = match layout {
            Layout::Nchw => "",
            Layout::Nhwc => ", NHWC",
        };
        Some((preprocess, format!("{name}{layout} ({because})")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(shape: &[Option<usize>]) -> Vec<IoInfo> {
        vec![IoInfo {
            name: "x".into(),
            elem_type: "float".into(),
            shape: shape.to_vec(),
        }]
    }

    #[test]
    fn explicit_choice_then_sidecar_then_guess() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        let cifar = input(&[None, Some(3), Some(32), Some(32)]);
        let guessed = resolve_preprocess(None, &model, &cifar, None).unwrap();
        assert_eq!(guessed.preprocess, preprocess::cifar10());
        assert!(
            guessed.origin.contains("guessed from input 'x' Nx3x32x32"),
            "{}",
            guessed.origin
        );
        let chosen = resolve_preprocess(Some("imagenet"), &model, &cifar, None).unwrap();
        assert_eq!(chosen.preprocess, preprocess::imagenet());

        let mut bgr = preprocess::imagenet();
        bgr.channel_order = crate::ChannelOrder::Bgr;
        std::fs::write(
            dir.path().join("m.preprocess.json"),
            serde_json::to_string(&bgr).unwrap(),
        )
        .unwrap();
        let sidecar = resolve_preprocess(Some("auto"), &model, &cifar, None).unwrap();
        assert_eq!(sidecar.preprocess, bgr);
        assert!(
            sidecar.origin.contains("beside the model"),
            "{}",
            sidecar.origin
        );
    }

    #[test]
    fn guesses_follow_the_input_size_and_layout_and_dynamic_sizes_need_a_flag() {
        let model = Path::new("m.onnx");
        let nhwc = resolve_preprocess(
            None,
            model,
            &input(&[Some(1), Some(224), Some(224), Some(3)]),
            None,
        )
        .unwrap();
        assert_eq!(nhwc.preprocess.layout, Layout::Nhwc);
        assert_eq!(nhwc.preprocess.resize, preprocess::imagenet().resize);
        let big = resolve_preprocess(
            None,
            model,
            &input(&[None, Some(3), Some(300), Some(300)]),
            None,
        )
        .unwrap();
        assert_eq!(big.preprocess.resize, Some(Resize::ShortSide(343)));
        let err = resolve_preprocess(None, model, &input(&[None, Some(3), None, None]), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m.onnx") && err.contains("--preprocess"),
            "{err}"
        );
        let tensors = resolve_preprocess(
            None,
            model,
            &input(&[None, Some(3), None, None]),
            Some(Path::new("d.npz")),
        )
        .unwrap();
        assert!(tensors.origin.contains("tensors"));
    }
}
