//! Models and data as users bring them (issue 17): a batch-1 export, dynamic height/width,
//! class folders that are not the model's class set, unlabelled calibration data, and the
//! preprocessing file beside the model. Fixtures are made here from the bundled example.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use profagent_onnx::proto::{tensor_shape_proto::dimension::Value as DimValue, type_proto};
use profagent_onnx::{ExternalData, Model};

fn profagent() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_profagent"));
    command.env("NO_COLOR", "1");
    command
}

fn example() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    (
        root.join("resnet20_cifar10.onnx"),
        root.join("cifar10-sample"),
    )
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The bundled model exported at a fixed batch of 1, as torch.onnx does without dynamic_axes.
fn batch_one_copy(dir: &Path) -> PathBuf {
    fixed_batch_copy(dir, 1)
}

fn fixed_batch_copy(dir: &Path, batch: i64) -> PathBuf {
    let (model, _) = example();
    let model = Model::load(model).unwrap();
    let shape = vec![batch, 3, 32, 32];
    let fixed = profagent_onnx::fix_input_dims(&model, &[("input".into(), shape)]).unwrap();
    let path = dir.join(format!("batch{batch}.onnx"));
    fixed.save(&path, ExternalData::Auto).unwrap();
    path
}

/// The bundled model with dynamic height and width (dims 2 and 3 named `height`, `width`).
fn dynamic_hw_copy(dir: &Path) -> PathBuf {
    let (model, _) = example();
    let mut model = Model::load(model).unwrap();
    let input = &mut model.graph_mut().input[0];
    let Some(type_proto::Value::TensorType(tensor)) =
        input.r#type.as_mut().and_then(|t| t.value.as_mut())
    else {
        panic!("the example's input is a tensor");
    };
    let dims = &mut tensor.shape.as_mut().unwrap().dim;
    dims[2].value = Some(DimValue::DimParam("height".into()));
    dims[3].value = Some(DimValue::DimParam("width".into()));
    let path = dir.join("dynamic_hw.onnx");
    model.save(&path, ExternalData::Auto).unwrap();
    path
}

/// A folder holding the first `per_class` images of some class folders, renamed by `name`.
fn class_subset(
    dir: &Path,
    classes: &[&str],
    per_class: usize,
    name: impl Fn(usize) -> String,
) -> PathBuf {
    let (_, data) = example();
    let mut all: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    all.sort();
    let root = dir.join("subset");
    for class in classes {
        let index = all.iter().position(|c| c == class).unwrap();
        let folder = root.join(name(index));
        std::fs::create_dir_all(&folder).unwrap();
        let mut images: Vec<PathBuf> = std::fs::read_dir(data.join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        images.sort();
        for image in images.iter().take(per_class) {
            std::fs::copy(image, folder.join(image.file_name().unwrap())).unwrap();
        }
    }
    root
}

#[test]
fn a_batch_one_export_calibrates_quantizes_and_prunes_at_batch_one() {
    let (_, data) = example();
    let dir = tempfile::tempdir().unwrap();
    let model = batch_one_copy(dir.path());
    let out = dir.path().join("q.onnx");
    let run = profagent()
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .args(["--mode", "static", "--calib-count", "12", "--json", "-"])
        .arg("--calib")
        .arg(&data)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    // 12 samples at the model's batch of 1, not one batch of 50 it cannot run.
    assert_eq!(summary["report"]["calibration_batches"], 12, "{summary}");
    assert_eq!(
        summary["check"]["inputs"],
        "real held-out (not used for calibration)"
    );
    assert_eq!(summary["check"]["samples"], 50, "{summary}");
    assert!(out.is_file());

    let pruned = dir.path().join("p.onnx");
    let run = profagent()
        .arg("prune")
        .arg(&model)
        .arg("-o")
        .arg(&pruned)
        .args(["--ratio", "0.25", "--calib-samples", "8", "--json", "-"])
        .arg("--calib")
        .arg(&data)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(report["biases_corrected"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn a_fixed_batch_of_eight_calibrates_in_eights_and_is_checked_in_whole_batches_of_eight() {
    let (_, data) = example();
    let dir = tempfile::tempdir().unwrap();
    let model = fixed_batch_copy(dir.path(), 8);
    let out = dir.path().join("q.onnx");
    let run = profagent()
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .args(["--mode", "static", "--calib-count", "12", "--json", "-"])
        .arg("--calib")
        .arg(&data)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    // 12 samples: one batch of 8 and one of 4 padded to 8.
    assert_eq!(summary["report"]["calibration_batches"], 2, "{summary}");
    // The check runs whole batches of 8 until it has its 50 samples: 7 batches.
    assert_eq!(summary["check"]["samples"], 56, "{summary}");
}

#[test]
fn compress_runs_every_probe_on_a_batch_one_export_with_the_preprocessing_beside_it() {
    let (_, data) = example();
    let dir = tempfile::tempdir().unwrap();
    let model = batch_one_copy(dir.path());
    // The preprocessing file beside the model: compress reads it as eval, quantize and prune do.
    let recipe = serde_json::json!({
        "scale": 1.0 / 255.0, "mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616]
    });
    std::fs::write(
        dir.path().join("batch1.preprocess.json"),
        recipe.to_string(),
    )
    .unwrap();
    let out = dir.path().join("run");
    let run = profagent()
        .arg("compress")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args([
            "--max-acc-drop",
            "5",
            "--rounds",
            "1",
            "--sensitivity-groups",
            "2",
        ])
        .args(["--calibration-images", "16", "--feedback-images", "48"])
        .output()
        .unwrap();
    let log = stderr(&run);
    assert!(matches!(run.status.code(), Some(0 | 1)), "{log}");
    assert!(
        log.contains("preprocessing: file")
            && log.contains("batch1.preprocess.json (beside the model)"),
        "{log}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let probes = report["quant_probes"].as_array().unwrap();
    assert!(!probes.is_empty(), "{report}");
    for probe in probes {
        assert!(
            probe["error"].is_null(),
            "probe failed on a batch-1 model: {probe}"
        );
    }
    let sensitivity = report["sensitivity"].as_array().unwrap();
    assert!(!sensitivity.is_empty(), "{log}");
    for group in sensitivity {
        assert!(group["error"].is_null(), "pruning probe failed: {group}");
    }
}

#[test]
fn dynamic_height_and_width_need_an_input_shape_and_then_profile_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let model = dynamic_hw_copy(dir.path());
    let (fixed, _) = example();

    let refused = profagent()
        .arg("profile")
        .arg(&model)
        .args(["--runs", "1", "--warmup", "0"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--input-shape input=1x3xNxN"),
        "{}",
        stderr(&refused)
    );

    let macs = |model: &Path, extra: &[&str]| {
        let run = profagent()
            .arg("profile")
            .arg(model)
            .args(["--runs", "1", "--warmup", "0", "--json", "-"])
            .args(extra)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", stderr(&run));
        let profile: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        profile["model"]["macs"].as_u64().unwrap()
    };
    let expected = macs(&fixed, &[]);
    assert_eq!(
        macs(&model, &["--input-shape", "input=1x3x32x32"]),
        expected
    );
    // Twice the side: four times the convolutions' work; the classifier after the global
    // pool (64 x 10 MACs) does not grow.
    let classifier = 64 * 10;
    assert_eq!(
        macs(&model, &["--input-shape", "1x3x64x64"]),
        4 * (expected - classifier) + classifier
    );

    // Images for a model of no fixed size: the preprocessing cannot be guessed.
    let (_, data) = example();
    let refused = profagent()
        .arg("eval")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("dynamic_hw.onnx") && stderr(&refused).contains("--preprocess"),
        "{}",
        stderr(&refused)
    );
    // Sized, the guess follows the size: 32x32 is CIFAR-10.
    let sized = profagent()
        .arg("eval")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .args([
            "--input-shape",
            "1x3x32x32",
            "--limit",
            "16",
            "--latency-runs",
            "0",
        ])
        .output()
        .unwrap();
    assert!(sized.status.success(), "{}", stderr(&sized));
    assert!(
        preprocessing_line(&sized).starts_with("preprocessing: preset cifar10 (guessed"),
        "{}",
        stderr(&sized)
    );

    // quantize and prune check their rewrite on synthetic inputs of that shape.
    for (verb, extra) in [
        ("quantize", ["--mode", "dynamic"]),
        ("prune", ["--ratio", "0.1"]),
    ] {
        let out = dir.path().join(format!("{verb}.onnx"));
        let refused = profagent()
            .arg(verb)
            .arg(&model)
            .arg("-o")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
        assert!(stderr(&refused).contains("--input-shape input=1x3xNxN"));
        assert!(!out.exists());
        let run = profagent()
            .arg(verb)
            .arg(&model)
            .arg("-o")
            .arg(&out)
            .args(extra)
            .args(["--input-shape", "input=2x3x32x32"])
            .output()
            .unwrap();
        assert!(run.status.success(), "{verb}: {}", stderr(&run));
        assert!(out.is_file());
    }
}

#[test]
fn class_folders_that_are_not_the_model_classes_are_matched_by_name_or_refused() {
    let (model, data) = example();
    let dir = tempfile::tempdir().unwrap();
    // 7 of the 10 CIFAR-10 classes: sorted positions would shift every label from "cat" on.
    let classes = ["airplane", "bird", "cat", "deer", "frog", "ship", "truck"];
    let by_name = class_subset(dir.path(), &classes, 10, |i| {
        [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ][i]
            .to_string()
    });
    let eval = |data: &Path, extra: &[&str]| {
        profagent()
            .arg("eval")
            .arg(&model)
            .arg("--data")
            .arg(data)
            .args(["--latency-runs", "0", "--json", "-"])
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = eval(&by_name, &[]);
    assert_eq!(refused.status.code(), Some(2));
    let message = stderr(&refused);
    assert!(
        message.contains("7 class folders")
            && message.contains("10 classes")
            && message.contains("--classes"),
        "{message}"
    );

    // A classes file in the model's order (the full folder list) maps them by name.
    let classes_file = dir.path().join("classes.txt");
    let mut names: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    std::fs::write(&classes_file, names.join("\n")).unwrap();
    let scored = eval(&by_name, &["--classes", classes_file.to_str().unwrap()]);
    assert!(scored.status.success(), "{}", stderr(&scored));
    let record: serde_json::Value = serde_json::from_slice(&scored.stdout).unwrap();
    // resnet20 scores 88 % on the sample; positional labels would score far below 50 %.
    let with_file = record["top1"].as_f64().unwrap();
    assert!(with_file > 0.6, "{record}");

    // Folders named by class index need no file, and score the same.
    std::fs::remove_dir_all(&by_name).unwrap();
    let by_index = class_subset(dir.path(), &classes, 10, |i| i.to_string());
    let scored = eval(&by_index, &[]);
    assert!(scored.status.success(), "{}", stderr(&scored));
    let record: serde_json::Value = serde_json::from_slice(&scored.stdout).unwrap();
    assert_eq!(record["top1"].as_f64().unwrap(), with_file);
}

#[test]
fn a_flat_folder_of_unlabelled_images_calibrates_static_quantization_and_pruning() {
    let (model, data) = example();
    let dir = tempfile::tempdir().unwrap();
    let flat = dir.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    for class in ["cat", "ship"] {
        for entry in std::fs::read_dir(data.join(class)).unwrap().take(6) {
            let path = entry.unwrap().path();
            let name = format!("{class}_{}", path.file_name().unwrap().to_string_lossy());
            std::fs::copy(&path, flat.join(name)).unwrap();
        }
    }
    let out = dir.path().join("q.onnx");
    let run = profagent()
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .args(["--mode", "static", "--preprocess", "cifar10"])
        .arg("--calib")
        .arg(&flat)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let out = dir.path().join("p.onnx");
    let run = profagent()
        .arg("prune")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .args(["--ratio", "0.2", "--importance", "activation"])
        .arg("--calib")
        .arg(&flat)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(out.is_file());
}

/// ../shared, when present (the ImageNet model and images are too large for examples/).
/// ../shared (models and data): tests that use it carry `cfg_attr(not(shared_present), ignore)`.
fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn imagenet_synset_folders_holding_a_subset_of_the_classes_score_in_the_standard_order() {
    let shared = shared();
    let root = shared.join("data/imagenet-val-1300");
    let synsets: Vec<String> = std::fs::read_to_string(root.join("synset_words.txt"))
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("val");
    let listing = std::fs::read_to_string(root.join("dataset.txt")).unwrap();
    // 48 images from about 45 of the 1000 classes, in synset-named folders.
    for line in listing.lines().take(48) {
        let (file, label) = line.split_once(", ").unwrap();
        let class = folder.join(&synsets[label.trim().parse::<usize>().unwrap()]);
        std::fs::create_dir_all(&class).unwrap();
        let source = root.join(file);
        std::fs::copy(&source, class.join(source.file_name().unwrap())).unwrap();
    }
    let run = profagent()
        .arg("eval")
        .arg(shared.join("models/mobilenet_v2_imagenet.onnx"))
        .arg("--data")
        .arg(&folder)
        .args(["--latency-runs", "0", "--json", "-"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let record: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    // MobileNetV2 scores 79.7 % on the 1300 images; sorted folder positions would score ~0 %.
    let top1 = record["top1"].as_f64().unwrap();
    assert!(top1 > 0.6, "{record}");
}

/// The `preprocessing: …` line a command printed.
fn preprocessing_line(output: &Output) -> String {
    let log = stderr(output);
    log.lines()
        .find(|l| l.starts_with("preprocessing: "))
        .unwrap_or_else(|| panic!("no preprocessing line in: {log}"))
        .to_string()
}

#[test]
fn eval_quantize_prune_and_compress_pick_the_same_preprocessing_for_the_same_model() {
    let (example_model, data) = example();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.onnx");
    std::fs::copy(&example_model, &model).unwrap();
    // BGR with the mean/std given in BGR order: a recipe no preset would produce.
    let recipe = serde_json::json!({
        "scale": 1.0 / 255.0, "mean": [0.4465, 0.4822, 0.4914], "std": [0.2616, 0.2435, 0.2470],
        "channel_order": "bgr"
    });
    std::fs::write(dir.path().join("preprocess.json"), recipe.to_string()).unwrap();
    let eval = profagent()
        .arg("eval")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .args(["--limit", "16", "--latency-runs", "0"])
        .output()
        .unwrap();
    assert!(eval.status.success(), "{}", stderr(&eval));
    let quantize = profagent()
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(dir.path().join("q.onnx"))
        .args(["--mode", "static", "--calib-count", "8"])
        .arg("--calib")
        .arg(&data)
        .output()
        .unwrap();
    assert!(quantize.status.success(), "{}", stderr(&quantize));
    let prune = profagent()
        .arg("prune")
        .arg(&model)
        .arg("-o")
        .arg(dir.path().join("p.onnx"))
        .args(["--ratio", "0.1", "--calib-samples", "8"])
        .arg("--calib")
        .arg(&data)
        .output()
        .unwrap();
    assert!(prune.status.success(), "{}", stderr(&prune));
    let compress = profagent()
        .arg("compress")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("run"))
        .args(["--max-acc-drop", "5", "--rounds", "1", "--no-probe"])
        .args(["--sensitivity-groups", "0"])
        .args(["--calibration-images", "8", "--feedback-images", "16"])
        .output()
        .unwrap();
    assert!(
        matches!(compress.status.code(), Some(0 | 1)),
        "{}",
        stderr(&compress)
    );
    let expected = format!(
        "preprocessing: file {} (beside the model)",
        dir.path().join("preprocess.json").display()
    );
    for output in [&eval, &quantize, &prune, &compress] {
        assert_eq!(preprocessing_line(output), expected);
    }
}

/// The bundled model behind an NHWC, BGR input `image` [N, 32, 32, 3], as a TensorFlow or
/// OpenCV pipeline would export it: Transpose to NCHW, then channels reordered to RGB.
fn nhwc_bgr_copy(dir: &Path) -> PathBuf {
    use profagent_onnx::{attr, tensor};
    let (model, _) = example();
    let mut model = Model::load(model).unwrap();
    let graph = model.graph_mut();
    graph.input.retain(|i| i.name() != "input");
    graph.input.insert(
        0,
        profagent_onnx::builder::value_info("image", &[-1, 32, 32, 3]),
    );
    graph
        .initializer
        .push(tensor::from_i64("bgr_to_rgb", &[3], &[2, 1, 0]));
    let adapter = [
        attr::node(
            "Transpose",
            "/adapter/Transpose",
            &["image"],
            &["image_nchw"],
            vec![attr::ints("perm", &[0, 3, 1, 2])],
        ),
        attr::node(
            "Gather",
            "/adapter/Gather",
            &["image_nchw", "bgr_to_rgb"],
            &["input"],
            vec![attr::int("axis", 1)],
        ),
    ];
    for (position, node) in adapter.into_iter().enumerate() {
        graph.node.insert(position, node);
    }
    let path = dir.join("nhwc_bgr.onnx");
    model.save(&path, ExternalData::Auto).unwrap();
    path
}

#[test]
fn an_nhwc_bgr_model_scores_like_the_original_with_a_bgr_nhwc_preprocessing_file() {
    let (original, data) = example();
    let dir = tempfile::tempdir().unwrap();
    let model = nhwc_bgr_copy(dir.path());
    let top1 = |model: &Path, extra: &[&str]| {
        let run = profagent()
            .arg("eval")
            .arg(model)
            .arg("--data")
            .arg(&data)
            .args(["--limit", "100", "--latency-runs", "0", "--json", "-"])
            .args(extra)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", stderr(&run));
        let record: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        (record["top1"].as_f64().unwrap(), preprocessing_line(&run))
    };
    let (expected, _) = top1(&original, &["--preprocess", "cifar10"]);
    // The guess sees NHWC but cannot know the channel order: RGB pixels into a BGR model.
    let (guessed, line) = top1(&model, &[]);
    assert!(line.contains("NHWC"), "{line}");
    assert!(guessed < expected, "{guessed} vs {expected}");
    // CIFAR-10 mean/std in BGR order, NHWC, BGR: the original's pixels exactly.
    let recipe = serde_json::json!({
        "scale": 1.0 / 255.0, "mean": [0.4465, 0.4822, 0.4914], "std": [0.2616, 0.2435, 0.2470],
        "layout": "nhwc", "channel_order": "bgr"
    });
    std::fs::write(
        dir.path().join("nhwc_bgr.preprocess.json"),
        recipe.to_string(),
    )
    .unwrap();
    let (with_file, line) = top1(&model, &[]);
    assert!(line.contains("beside the model"), "{line}");
    assert_eq!(with_file, expected);
}
