//! Dataset behaviour on small in-code fixtures (PNG trees written to a temp dir) and on a
//! subset of the shared CIFAR-10 JPEGs (ignored, with the reason, when ../shared is absent).
use std::path::{Path, PathBuf};

use profagent_data::{npy, preprocess, DataError, Dataset, Preprocess};

fn write_png(path: &Path, width: u32, height: u32, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let image = image::RgbImage::from_pixel(width, height, image::Rgb(rgb));
    image.save(path).unwrap();
}

/// ROOT/{cat,dog}/*.png, 4x4 solid colours: cat is red, dog is blue.
fn fixture_tree(root: &Path) {
    for i in 0..3 {
        write_png(&root.join(format!("cat/{i}.png")), 4, 4, [255, 0, 0]);
        write_png(&root.join(format!("dog/{i}.png")), 4, 4, [0, 0, 255]);
    }
}

fn identity() -> Preprocess {
    Preprocess {
        scale: 1.0,
        mean: [0.0; 3],
        std: [1.0; 3],
        ..preprocess::cifar10()
    }
}

#[test]
fn image_folder_labels_follow_sorted_folder_names_and_pixels_land_in_nchw() {
    let dir = tempfile::tempdir().unwrap();
    fixture_tree(dir.path());
    let dataset = Dataset::open(dir.path(), &identity()).unwrap();
    assert_eq!(dataset.len(), 6);
    assert_eq!(dataset.class_names().unwrap(), ["cat", "dog"]);
    let batch = dataset.load_batch(2..4).unwrap();
    assert_eq!(batch.labels, Some(vec![0, 1]));
    assert_eq!(batch.input.shape, vec![2, 3, 4, 4]);
    let values = batch.input.as_f32().unwrap();
    // Sample 0 (cat): red plane 255, blue plane 0; sample 1 (dog): the reverse.
    assert_eq!(values[0], 255.0);
    assert_eq!(values[2 * 16], 0.0);
    assert_eq!(values[48], 0.0);
    assert_eq!(values[48 + 2 * 16], 255.0);
}

#[test]
fn seeded_subsets_are_deterministic_and_disjoint() {
    let dir = tempfile::tempdir().unwrap();
    fixture_tree(dir.path());
    let dataset = Dataset::open(dir.path(), &identity()).unwrap();
    let names = |d: &Dataset| (0..d.len()).map(|i| d.item_name(i)).collect::<Vec<_>>();
    let calibration = dataset.subset(0, Some(3), Some(7)).unwrap();
    let evaluation = dataset.subset(3, Some(3), Some(7)).unwrap();
    assert_eq!(
        names(&calibration),
        names(&dataset.subset(0, Some(3), Some(7)).unwrap())
    );
    let (a, b) = (names(&calibration), names(&evaluation));
    assert!(a.iter().all(|name| !b.contains(name)), "{a:?} vs {b:?}");
    assert!(dataset.subset(6, None, None).is_err());
}

#[test]
fn labels_file_paths_are_relative_to_the_file_and_bad_lines_are_named() {
    let dir = tempfile::tempdir().unwrap();
    fixture_tree(&dir.path().join("images"));
    let list = dir.path().join("list.txt");
    std::fs::write(
        &list,
        "# comment\n./images/cat/0.png, 5\nimages/dog/1.png 2\n",
    )
    .unwrap();
    let dataset = Dataset::open(&list, &identity()).unwrap();
    assert_eq!(dataset.load_batch(0..2).unwrap().labels, Some(vec![5, 2]));

    std::fs::write(&list, "images/cat/0.png, 1\nimages/cat/9.png, 1\n").unwrap();
    let err = Dataset::open(&list, &identity()).unwrap_err().to_string();
    assert!(err.contains("list.txt:2") && err.contains("9.png"), "{err}");

    std::fs::write(&list, "images/cat/0.png, -1\n").unwrap();
    let err = Dataset::open(&list, &identity()).unwrap_err().to_string();
    assert!(err.contains("list.txt:1") && err.contains("-1"), "{err}");
}

#[test]
fn missing_folder_is_named() {
    let err = Dataset::open(Path::new("/no/such/dataset"), &identity()).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }));
    assert!(err.to_string().contains("/no/such/dataset"));
}

#[test]
fn unreadable_image_is_named_or_skipped_on_request() {
    let dir = tempfile::tempdir().unwrap();
    fixture_tree(dir.path());
    let broken = dir.path().join("dog/9_broken.png");
    std::fs::write(&broken, b"\x89PNG not really").unwrap();
    let dataset = Dataset::open(dir.path(), &identity()).unwrap();
    let err = dataset
        .load_batch(0..dataset.len())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("9_broken.png") && err.contains("--skip-bad"),
        "{err}"
    );

    let batch = dataset.with_skip_bad(true).load_batch(0..7).unwrap();
    assert_eq!(batch.items.len(), 6);
    assert_eq!(batch.skipped.len(), 1);
    assert!(batch.skipped[0].item.contains("9_broken.png"));
}

#[test]
fn images_of_different_sizes_without_a_resize_are_an_error_naming_the_image() {
    let dir = tempfile::tempdir().unwrap();
    fixture_tree(dir.path());
    write_png(&dir.path().join("dog/7_big.png"), 8, 6, [1, 2, 3]);
    let dataset = Dataset::open(dir.path(), &identity()).unwrap();
    let err = dataset
        .load_batch(0..dataset.len())
        .unwrap_err()
        .to_string();
    assert!(err.contains("7_big.png") && err.contains("8x6"), "{err}");
    // With a resize + crop every image fits.
    let fitted = Preprocess {
        resize: Some(profagent_data::Resize::ShortSide(4)),
        center_crop: Some(profagent_data::Size {
            height: 4,
            width: 4,
        }),
        ..identity()
    };
    let dataset = Dataset::open(dir.path(), &fitted).unwrap();
    assert_eq!(
        dataset.load_batch(0..7).unwrap().input.shape,
        vec![7, 3, 4, 4]
    );
}

#[test]
fn npy_inputs_with_sibling_labels_load_as_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("calib.npy");
    let values: Vec<f32> = (0..4 * 2 * 3).map(|v| v as f32).collect();
    std::fs::write(&inputs, npy::encode_npy_f32(&[4, 2, 3], &values)).unwrap();
    std::fs::write(
        dir.path().join("calib.labels.npy"),
        npy::encode_npy_i64(&[4], &[3, 1, 0, 2]),
    )
    .unwrap();
    let dataset = Dataset::open(&inputs, &identity()).unwrap();
    let batch = dataset.load_batch(1..3).unwrap();
    assert_eq!(batch.input.shape, vec![2, 2, 3]);
    assert_eq!(batch.input.as_f32().unwrap()[0], 6.0);
    assert_eq!(batch.labels, Some(vec![1, 0]));
}

/// ../shared (models and data): tests that use it carry `cfg_attr(not(shared_present), ignore)`.
fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn cifar_subset_is_found_in_class_order() {
    let shared = shared();
    let dataset = Dataset::open(
        &shared.join("data/cifar10-test"),
        &Preprocess::preset("cifar10").unwrap(),
    )
    .unwrap();
    assert_eq!(dataset.len(), 10_000);
    assert_eq!(dataset.class_names().unwrap()[0], "airplane");
    let batch = dataset
        .subset(0, Some(64), Some(1))
        .unwrap()
        .load_batch(0..64)
        .unwrap();
    assert_eq!(batch.input.shape, vec![64, 3, 32, 32]);
    // Normalised CIFAR pixels stay within (0 - 0.4914) / 0.2470 .. (1 - 0.4465) / 0.2616.
    assert!(batch
        .input
        .as_f32()
        .unwrap()
        .iter()
        .all(|v| (-2.0..2.2).contains(v)));
}

#[test]
fn an_npz_with_one_array_per_input_feeds_a_several_input_model_by_name() {
    use profagent_data::npy::{encode_npy_f32, encode_npy_i64, encode_npz};
    use profagent_runtime::{IoInfo, TensorData};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.npz");
    let bytes = encode_npz(&[
        ("input_ids", encode_npy_i64(&[3, 2], &[1, 2, 3, 4, 5, 6])),
        ("attention_mask", encode_npy_f32(&[3, 2], &[1.0; 6])),
    ])
    .unwrap();
    std::fs::write(&path, bytes).unwrap();
    let dataset = Dataset::open(&path, &preprocess::cifar10()).unwrap();
    assert_eq!(dataset.len(), 3);
    assert!(!dataset.has_labels());
    let batch = dataset.load_batch(1..3).unwrap();
    let declared = |name: &str, elem_type: &str| IoInfo {
        name: name.into(),
        elem_type: elem_type.into(),
        shape: vec![None, None],
    };
    let inputs = [
        declared("attention_mask", "int64"),
        declared("input_ids", "int64"),
    ];
    let feeds = batch.feeds_for(&path, &inputs).unwrap();
    assert_eq!(feeds[0].0, "attention_mask");
    // Float arrays become the int64 the model declares; rows 1..3 only.
    assert_eq!(feeds[0].1.data, TensorData::I64(vec![1; 4]));
    assert_eq!(feeds[1].1.data, TensorData::I64(vec![3, 4, 5, 6]));
    let err = batch
        .feeds_for(&path, &[declared("token_type_ids", "int64")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("token_type_ids") && err.contains("input_ids, attention_mask"),
        "{err}"
    );
}

/// Issue 21: directory symlinks inside a class folder (three pointing back up used to hang
/// every command) are not followed, so each image is counted once.
#[test]
fn image_folder_walk_does_not_follow_directory_symlinks_or_count_an_image_twice() {
    let dir = tempfile::tempdir().unwrap();
    fixture_tree(dir.path());
    let cat = dir.path().join("cat");
    std::os::unix::fs::symlink(&cat, cat.join("self")).unwrap();
    std::os::unix::fs::symlink(dir.path(), cat.join("root")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("dog"), cat.join("dog")).unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    let root = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let _ = sender.send(Dataset::open(&root, &identity()).map(|d| d.len()));
    });
    let len = receiver
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the walk hung")
        .unwrap();
    assert_eq!(len, 6);
}

#[test]
fn class_folders_that_resolve_to_the_root_or_to_each_other_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    fixture_tree(dir.path());
    std::os::unix::fs::symlink(dir.path().join("dog"), dir.path().join("puppy")).unwrap();
    let message = Dataset::open(dir.path(), &identity())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("puppy") && message.contains("counted twice"),
        "{message}"
    );

    let dir = tempfile::tempdir().unwrap();
    fixture_tree(dir.path());
    std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
    let message = Dataset::open(dir.path(), &identity())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("loop") && message.contains("dataset root"),
        "{message}"
    );
}

#[test]
fn class_folder_with_a_non_utf8_name_is_an_error_not_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    fixture_tree(dir.path());
    let name = std::ffi::OsStr::from_bytes(b"bird\xff");
    write_png(&dir.path().join(name).join("0.png"), 4, 4, [0, 255, 0]);
    let message = Dataset::open(dir.path(), &identity())
        .unwrap_err()
        .to_string();
    assert!(message.contains("UTF-8"), "{message}");
}

/// Issue 21: a 20000x20000 JPEG used to be decoded (5.9 GB) before any size check.
#[test]
fn huge_jpeg_is_refused_from_its_header_before_decoding() {
    let mut bytes = Vec::new();
    image::RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3]))
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    // Patch the frame header (SOF0: FF C0, length, precision, height, width) to 20000x20000.
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline JPEG");
    let size = 20000u16.to_be_bytes();
    bytes[sof + 5..sof + 7].copy_from_slice(&size);
    bytes[sof + 7..sof + 9].copy_from_slice(&size);
    let message = profagent_data::decode::decode_bytes(&bytes).unwrap_err();
    assert!(message.contains("20000x20000"), "{message}");
}
