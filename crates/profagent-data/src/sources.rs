//! Listing image datasets: ImageFolder trees and labels files. Only paths and labels are read
//! here; pixels are decoded lazily, batch by batch.
use std::path::{Path, PathBuf};

use crate::dataset::{is_image_file, ImageEntry};
use crate::error::{DataError, Result};

/// torchvision's `ImageFolder`: label = position of the sub-folder name in sorted order (the
/// model's class index is decided later, see `crate::labels`); images found recursively below
/// each class folder, in sorted path order. A folder without sub-folders is a flat folder of
/// unlabelled images (enough for calibration and fidelity).
///
/// A class folder may be a symlink, but below it symlinked folders are not followed, and class
/// folders that resolve to the same tree, to one inside another, or to a folder holding the
/// root are refused: no walk loops and no image is counted twice.
pub(crate) fn image_folder(root: &Path) -> Result<(Vec<ImageEntry>, Option<Vec<String>>)> {
    let mut classes: Vec<(String, PathBuf)> = Vec::new();
    for path in read_dir_sorted(root)? {
        if !path.is_dir() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return Err(DataError::BadDataset {
                path: path.clone(),
                reason: "the class folder's name is not valid UTF-8; rename it (class names are written to reports)".into(),
            });
        };
        classes.push((name.to_string(), path));
    }
    classes.sort();
    if classes.is_empty() {
        let mut files = Vec::new();
        collect_images(root, &mut files)?;
        if files.is_empty() {
            return Err(DataError::BadDataset {
                path: root.to_path_buf(),
                reason: "no images and no class sub-folders (give ROOT/<class>/<image>.jpg, or a folder of .jpg/.jpeg/.png images)".into(),
            });
        }
        files.sort();
        let entries = files
            .into_iter()
            .map(|path| ImageEntry { path, label: None })
            .collect();
        return Ok((entries, None));
    }
    check_disjoint_classes(root, &classes)?;
    let mut entries = Vec::new();
    for (label, (name, folder)) in classes.iter().enumerate() {
        let mut files = Vec::new();
        collect_images(folder, &mut files)?;
        if files.is_empty() {
            return Err(DataError::BadDataset {
                path: folder.clone(),
                reason: format!("class folder '{name}' holds no .jpg/.jpeg/.png image"),
            });
        }
        files.sort();
        entries.extend(files.into_iter().map(|path| ImageEntry {
            path,
            label: Some(label),
        }));
    }
    Ok((
        entries,
        Some(classes.into_iter().map(|(name, _)| name).collect()),
    ))
}

/// Refuses class folders (symlinks resolved) that hold the root or overlap each other.
fn check_disjoint_classes(root: &Path, classes: &[(String, PathBuf)]) -> Result<()> {
    let canonical = |path: &Path| path.canonicalize().map_err(|e| DataError::io(path, e));
    let root_canonical = canonical(root)?;
    let mut resolved: Vec<(&Path, PathBuf)> = Vec::with_capacity(classes.len());
    for (_, folder) in classes {
        let target = canonical(folder)?;
        if root_canonical.starts_with(&target) {
            return Err(DataError::BadDataset {
                path: folder.clone(),
                reason: format!(
                    "this class folder links to {}, which holds the dataset root: the walk would loop; replace the link with a real folder",
                    target.display()
                ),
            });
        }
        if let Some((other, _)) = resolved
            .iter()
            .find(|(_, seen)| seen.starts_with(&target) || target.starts_with(seen))
        {
            return Err(DataError::BadDataset {
                path: folder.clone(),
                reason: format!(
                    "this class folder and {} resolve to overlapping folders (a symlink?): their images would be counted twice",
                    other.display()
                ),
            });
        }
        resolved.push((folder, target));
    }
    Ok(())
}

fn read_dir_sorted(folder: &Path) -> Result<Vec<PathBuf>> {
    let reader = std::fs::read_dir(folder).map_err(|e| DataError::io(folder, e))?;
    let mut paths = Vec::new();
    for entry in reader {
        paths.push(entry.map_err(|e| DataError::io(folder, e))?.path());
    }
    paths.sort();
    Ok(paths)
}

/// Images below `folder`; symlinked sub-folders are not followed (they could loop back or
/// repeat a folder already walked), symlinked image files are taken.
fn collect_images(folder: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for path in read_dir_sorted(folder)? {
        let kind = std::fs::symlink_metadata(&path).map_err(|e| DataError::io(&path, e))?;
        if kind.is_dir() {
            collect_images(&path, out)?;
        } else if kind.is_symlink() && path.is_dir() {
            continue;
        } else if is_image_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// A labels file: one `path, label` (or `path label`, or just `path`) per line, paths relative
/// to the file's folder; blank lines and `#` comments skipped. Either every line has a label
/// or none does. Missing image files are reported here, before any decoding.
pub(crate) fn labels_file(file: &Path) -> Result<(Vec<ImageEntry>, Option<Vec<String>>)> {
    let text = std::fs::read_to_string(file).map_err(|e| DataError::io(file, e))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| DataError::BadLabelsLine {
            path: file.to_path_buf(),
            line: number + 1,
            reason,
        };
        let (path_text, label_text) = match line.rsplit_once(',') {
            Some((path, label)) => (path.trim(), Some(label.trim())),
            None => match line.rsplit_once(char::is_whitespace) {
                Some((path, label)) if label.parse::<i64>().is_ok() => {
                    (path.trim(), Some(label.trim()))
                }
                _ => (line, None),
            },
        };
        let label = label_text
            .map(|text| {
                text.parse::<usize>()
                    .map_err(|_| bad(format!("label '{text}' is not a non-negative integer")))
            })
            .transpose()?;
        let path = base.join(path_text);
        if !path.is_file() {
            return Err(bad(format!("image '{}' does not exist", path.display())));
        }
        entries.push(ImageEntry { path, label });
    }
    if entries.is_empty() {
        return Err(DataError::BadDataset {
            path: file.to_path_buf(),
            reason: "no image lines (expected `path, label` per line)".into(),
        });
    }
    let labelled = entries.iter().filter(|e| e.label.is_some()).count();
    if labelled != 0 && labelled != entries.len() {
        return Err(DataError::BadDataset {
            path: file.to_path_buf(),
            reason: format!(
                "{labelled} of {} lines have a label: label every line or none",
                entries.len()
            ),
        });
    }
    Ok((entries, None))
}
