//! From class folder names to the model's class indices.
//!
//! torchvision's ImageFolder numbers classes by the sorted position of their folder. That is
//! right only when the folder set is exactly the model's class set: a folder holding 725 of
//! the 1000 ImageNet classes would score near 0 % with every label shifted. So the mapping is
//! decided against the model's number of outputs, in this order:
//! 1. a classes file (one class name per line, line N = class N; the first word of a line is
//!    its name, so `synset_words.txt` works as is): every folder must be named in it;
//! 2. folders named by integers: the integer is the class index;
//! 3. as many folders as the model has classes: sorted position (torchvision);
//! 4. ImageNet synset ids (`n01440764`) and a 1000-class model: the standard sorted synset
//!    order (the one torchvision, timm and Caffe models use);
//! 5. otherwise an error naming the mismatch and the ways out.
use std::path::Path;

use crate::error::{DataError, Result};

/// The 1000 ImageNet-1k synset ids in the standard (sorted) class order.
const IMAGENET_SYNSETS: &str = include_str!("imagenet_synsets.txt");
const IMAGENET_CLASSES: usize = 1000;

/// Reads a classes file: one class per non-empty line (the first word is its name), in the
/// model's class order. `#` comment lines are skipped.
pub fn read_class_names(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_whitespace().next())
        .map(|name| name.trim_end_matches(',').to_string())
        .collect();
    if names.is_empty() {
        return Err(DataError::BadDataset {
            path: path.to_path_buf(),
            reason: "no class names (expected one class name per line, in the model's order)"
                .into(),
        });
    }
    Ok(names)
}

fn is_synset(name: &str) -> bool {
    name.len() == 9 && name.starts_with('n') && name[1..].bytes().all(|b| b.is_ascii_digit())
}

/// The model class index of each folder (by sorted folder position), or an error saying why
/// no mapping is known. `classes`: a classes file's names and its path.
pub(crate) fn folder_class_indices(
    data: &Path,
    folders: &[String],
    num_classes: usize,
    classes: Option<(&Path, &[String])>,
) -> Result<Vec<usize>> {
    let bad = |reason: String| DataError::BadDataset {
        path: data.to_path_buf(),
        reason,
    };
    if let Some((file, names)) = classes {
        if names.len() != num_classes {
            return Err(bad(format!(
                "the classes file '{}' names {} classes but the model predicts {num_classes}",
                file.display(),
                names.len()
            )));
        }
        let missing: Vec<&str> = folders
            .iter()
            .filter(|f| !names.contains(f))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(bad(format!(
                "{} class folder(s) are not named in the classes file '{}': {}",
                missing.len(),
                file.display(),
                preview(&missing)
            )));
        }
        return Ok(folders
            .iter()
            .map(|f| names.iter().position(|n| n == f).unwrap_or(0))
            .collect());
    }
    let integers: Option<Vec<usize>> = folders.iter().map(|f| f.parse().ok()).collect();
    if let Some(indices) = integers {
        if let Some(&too_big) = indices.iter().find(|&&i| i >= num_classes) {
            return Err(bad(format!(
                "class folder '{too_big}' is past the model's {num_classes} classes (integer folder names are class indices)"
            )));
        }
        return Ok(indices);
    }
    if folders.len() == num_classes {
        return Ok((0..num_classes).collect());
    }
    if num_classes == IMAGENET_CLASSES && folders.iter().all(|f| is_synset(f)) {
        let synsets: Vec<&str> = IMAGENET_SYNSETS.lines().collect();
        let unknown: Vec<&str> = folders
            .iter()
            .filter(|f| !synsets.contains(&f.as_str()))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(bad(format!(
                "{} folder(s) are not ImageNet-1k synsets: {}; pass --classes FILE",
                unknown.len(),
                preview(&unknown)
            )));
        }
        return Ok(folders
            .iter()
            .map(|f| synsets.iter().position(|s| s == f).unwrap_or(0))
            .collect());
    }
    Err(bad(format!(
        "it has {} class folders but the model predicts {num_classes} classes, so folder positions are not class indices; \
         name the folders by class index (0..{}) or ImageNet synset id (n01440764), or pass --classes FILE (one class name per line, in the model's order)",
        folders.len(),
        num_classes - 1
    )))
}

fn preview(names: &[&str]) -> String {
    let shown: Vec<&str> = names.iter().take(3).copied().collect();
    if names.len() > 3 {
        format!("{}, …", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn synset_folders_map_to_the_standard_order_for_a_1000_class_model() {
        let data = Path::new("val");
        let folders = names(&["n01440764", "n01443537", "n15075141"]);
        let map = folder_class_indices(data, &folders, 1000, None).unwrap();
        assert_eq!(map, vec![0, 1, 999]);
        // Ten synset folders for a ten-class model (Imagenette): sorted position.
        let map = folder_class_indices(data, &folders, 3, None).unwrap();
        assert_eq!(map, vec![0, 1, 2]);
    }

    #[test]
    fn integer_folders_are_indices_and_unmatched_folders_are_an_error() {
        let data = Path::new("val");
        let map = folder_class_indices(data, &names(&["10", "2", "7"]), 1000, None).unwrap();
        assert_eq!(map, vec![10, 2, 7]);
        let err = folder_class_indices(data, &names(&["cat", "dog"]), 10, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 class folders") && err.contains("--classes"),
            "{err}"
        );
    }

    #[test]
    fn a_classes_file_names_every_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("classes.txt");
        std::fs::write(&file, "n01 tench, Tinca\n\ncat\ndog\n").unwrap();
        let classes = read_class_names(&file).unwrap();
        assert_eq!(classes, names(&["n01", "cat", "dog"]));
        let data = Path::new("val");
        let map = folder_class_indices(data, &names(&["dog"]), 3, Some((&file, &classes))).unwrap();
        assert_eq!(map, vec![2]);
        let err = folder_class_indices(data, &names(&["bird"]), 3, Some((&file, &classes)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bird") && err.contains("classes.txt"), "{err}");
    }
}
