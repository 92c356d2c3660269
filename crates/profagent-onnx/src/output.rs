//! Where outputs may go and how they are written, so that no command ever loses an input.
//!
//! - `OutputGuard` refuses an output path that resolves to an input file (same canonical path
//!   or same device and inode, so `$PWD/x`, symlinks and hard links are caught), to a data file
//!   an input model reads (its external data), or, for an output folder, a folder that holds an
//!   input. Every command builds one at its start, before anything is read or written.
//! - `write_atomic` writes through a temp file with an unpredictable name, created exclusively
//!   (`O_EXCL`: a planted file or symlink of that name is never followed) in the target's
//!   folder, then renamed; the temp file is removed on every exit path, and temp files left by
//!   a killed process are removed by the next write to the same target.
//! - `RunLock` is an exclusive lock file in a run folder; a second writer stops with a message
//!   naming the process that holds it, and a lock left by a dead process is taken over.
//! - `finish_writes` lets the writes under way end and keeps new ones from starting, so that a
//!   process exiting on Ctrl-C leaves no temp file and no model without its data file.
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{OnnxError, Result};
use crate::proto::StringStringEntryProto;

/// Suffix of every temp file `write_atomic` creates.
pub const TEMP_SUFFIX: &str = ".profagent-tmp";
/// Name of the lock file `RunLock` creates in a run folder.
pub const LOCK_FILE: &str = ".profagent.lock";
/// A lock file without a pid younger than this may still be being written by its owner.
const LOCK_WRITE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// Attempts at finding a free temp name before giving up (each name is 64 random bits).
const TEMP_NAME_ATTEMPTS: usize = 16;

/// An input a command must not overwrite or move.
#[derive(Debug, Clone)]
struct Protected {
    /// As the user spelled it (for messages).
    path: PathBuf,
    /// What `path` names in the file system.
    place: Place,
}

/// A path resolved as far as the file system allows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    /// Canonical path; for a file that does not exist yet, its folder's canonical path joined
    /// with its name.
    canonical: Option<PathBuf>,
    /// (device, inode) of an existing file.
    id: Option<(u64, u64)>,
}

impl Place {
    fn of(path: &Path) -> Place {
        let id = file_id(path);
        let canonical = path.canonicalize().ok().or_else(|| {
            let name = path.file_name()?;
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            Some(parent.canonicalize().ok()?.join(name))
        });
        Place { canonical, id }
    }

    fn same_as(&self, other: &Place) -> bool {
        let same_path = matches!((&self.canonical, &other.canonical), (Some(a), Some(b)) if a == b);
        let same_id = matches!((self.id, other.id), (Some(a), Some(b)) if a == b);
        same_path || same_id
    }
}

#[cfg(unix)]
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_path: &Path) -> Option<(u64, u64)> {
    None
}

/// The inputs of one command, checked against each of its outputs.
///
/// ```no_run
/// # use std::path::Path;
/// # fn main() -> profagent_onnx::Result<()> {
/// use profagent_onnx::OutputGuard;
/// OutputGuard::of_model(Path::new("in.onnx"))
///     .output_model(Path::new("out.onnx"))?
///     .output_file(Some(Path::new("report.json")))?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct OutputGuard {
    protected: Vec<Protected>,
}

impl OutputGuard {
    /// A guard protecting the model at `path` and every external data file it names.
    pub fn of_model(path: &Path) -> Self {
        OutputGuard::default().input_model(Some(path))
    }

    /// Also protects the model at `path` (when given) and its external data files. A model
    /// that cannot be read or decoded protects only its own path: loading it reports why.
    pub fn input_model(mut self, path: Option<&Path>) -> Self {
        let Some(path) = path else { return self };
        self = self.input(Some(path));
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut locations: Vec<String> = external_data(path).into_iter().map(|(_, l)| l).collect();
        locations.sort();
        locations.dedup();
        for location in locations {
            self = self.input(Some(&folder.join(location)));
        }
        self
    }

    /// Also protects the file or folder at `path` (when given): data sets, configs, reference
    /// models, a run folder being replayed.
    pub fn input(mut self, path: Option<&Path>) -> Self {
        if let Some(path) = path.filter(|p| !is_stdio(p)) {
            self.protected.push(Protected {
                path: path.to_path_buf(),
                place: Place::of(path),
            });
        }
        self
    }

    /// Refuses a model output (when given) that is an input, or whose `<out>.data` (where
    /// `Model::save` writes external data) is one, or `-`: a model is not written to stdout
    /// (its external data could not follow, and the summary shares stdout), and a file named
    /// `-` is never what was meant.
    pub fn output_model<'p>(&self, path: impl Into<Option<&'p Path>>) -> Result<&Self> {
        let Some(path) = path.into() else {
            return Ok(self);
        };
        if is_stdio(path) {
            return Err(OnnxError::OutputIsStdout { what: "model" });
        }
        self.output_file(Some(path))?;
        self.output_file(Some(external_data_path(path).as_path()))
    }

    /// Refuses an output file (when given; `-` is stdout) that is one of the inputs.
    pub fn output_file<'p>(&self, path: impl Into<Option<&'p Path>>) -> Result<&Self> {
        let Some(path) = path.into().filter(|p| !is_stdio(p)) else {
            return Ok(self);
        };
        let place = Place::of(path);
        if let Some(input) = self.protected.iter().find(|p| p.place.same_as(&place)) {
            return Err(OnnxError::OutputIsInput {
                output: path.to_path_buf(),
                input: input.path.clone(),
            });
        }
        Ok(self)
    }

    /// Refuses an output folder (when given) that is an input or holds one anywhere below it:
    /// a run folder's earlier files are moved to `history/`, which would move the input.
    pub fn output_dir<'p>(&self, path: impl Into<Option<&'p Path>>) -> Result<&Self> {
        let Some(path) = path.into() else {
            return Ok(self);
        };
        if is_stdio(path) {
            return Err(OnnxError::OutputIsStdout { what: "run folder" });
        }
        let place = Place::of(path);
        let holds = |input: &Protected| {
            input.place.same_as(&place)
                || matches!((&input.place.canonical, &place.canonical),
                    (Some(inner), Some(outer)) if inner.starts_with(outer))
        };
        if let Some(input) = self.protected.iter().find(|p| holds(p)) {
            return Err(OnnxError::OutputDirHoldsInput {
                output: path.to_path_buf(),
                input: input.path.clone(),
            });
        }
        Ok(self)
    }
}

fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Where `Model::save` puts the external data of a model written to `path`.
pub fn external_data_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "model.onnx".into());
    path.with_file_name(format!("{name}.data"))
}

/// Just the fields of a model that name external data files: prost skips the rest (weights
/// included) without copying them.
#[derive(Clone, PartialEq, prost::Message)]
struct LocationsModel {
    #[prost(message, optional, tag = "7")]
    graph: Option<LocationsGraph>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LocationsGraph {
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<LocationsTensor>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LocationsTensor {
    #[prost(string, optional, tag = "8")]
    name: Option<String>,
    #[prost(message, repeated, tag = "13")]
    external_data: Vec<StringStringEntryProto>,
}

/// (initializer, external data location relative to the model's folder) of the model at
/// `path`; empty when the file cannot be read or decoded.
fn external_data(path: &Path) -> Vec<(String, String)> {
    let Ok(metadata) = std::fs::metadata(path) else {
        return Vec::new();
    };
    if !metadata.is_file() {
        return Vec::new();
    }
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok(model) = LocationsModel::decode(bytes.as_slice()) else {
        return Vec::new();
    };
    model
        .graph
        .into_iter()
        .flat_map(|g| g.initializer)
        .filter_map(|t| {
            let location = t.external_data.iter().find(|e| e.key() == "location")?;
            Some((
                t.name.clone().unwrap_or_default(),
                location.value().to_string(),
            ))
        })
        .collect()
}

/// Refuses a model whose external data locations are not regular files (a FIFO would block
/// the reader forever, a device never ends), for callers that hand the file to a runtime
/// instead of `Model::load` (which checks the same). Locations that do not exist are left to
/// the loader to report.
pub fn check_external_data_files(model: &Path) -> Result<()> {
    let folder = match model.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for (tensor, location) in external_data(model) {
        let path = folder.join(&location);
        if matches!(std::fs::metadata(&path).map(|m| m.is_file()), Ok(false)) {
            return Err(OnnxError::ExternalDataNotFile { path, tensor });
        }
    }
    Ok(())
}

/// Writes bytes to `path` via a temp file in the same folder and a rename, so readers never
/// see a half-written file. The temp file has an unpredictable name, is created exclusively
/// and is removed whatever happens before the rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let _writing = writing();
    let wrap = |source| OnnxError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    remove_stale_temp_files(&dir, &name);
    let (mut file, temp) = create_temp(&dir, &name).map_err(wrap)?;
    file.write_all(bytes).map_err(wrap)?;
    file.sync_all().map_err(wrap)?;
    drop(file);
    temp.persist(path).map_err(wrap)
}

static WRITES_UNDER_WAY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static EXITING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// How often `finish_writes` looks whether the writes under way have ended.
const FINISH_WRITES_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// A write under way (`write_atomic`, `Model::save`); `finish_writes` waits for it to end.
pub(crate) struct Writing(());

/// Marks a write under way until the returned value is dropped. Once `finish_writes` was
/// called the write never starts: the thread waits for the process to exit.
pub(crate) fn writing() -> Writing {
    use std::sync::atomic::Ordering::SeqCst;
    WRITES_UNDER_WAY.fetch_add(1, SeqCst);
    if EXITING.load(SeqCst) {
        WRITES_UNDER_WAY.fetch_sub(1, SeqCst);
        loop {
            std::thread::park();
        }
    }
    Writing(())
}

impl Drop for Writing {
    fn drop(&mut self) {
        WRITES_UNDER_WAY.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Waits until the writes under way have ended and keeps new ones from starting; the caller
/// then exits (the binary's Ctrl-C handler). Must not be called by a thread that is writing.
pub fn finish_writes() {
    use std::sync::atomic::Ordering::SeqCst;
    EXITING.store(true, SeqCst);
    while WRITES_UNDER_WAY.load(SeqCst) > 0 {
        std::thread::sleep(FINISH_WRITES_POLL);
    }
}

/// A temp file that is removed when dropped unless `persist` renamed it.
struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    fn persist(mut self, target: &Path) -> std::io::Result<()> {
        let Some(path) = self.path.take() else {
            return Ok(());
        };
        let renamed = std::fs::rename(&path, target);
        if renamed.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        renamed
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `.<name>.<pid>.<random>.profagent-tmp`: the pid lets a later write tell a dead writer's
/// leftover from a live one's file.
fn create_temp(dir: &Path, name: &str) -> std::io::Result<(std::fs::File, TempFile)> {
    let pid = std::process::id();
    let mut last_error = None;
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let temp = dir.join(format!(".{name}.{pid}.{:016x}{TEMP_SUFFIX}", random_u64()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
        {
            Ok(file) => return Ok((file, TempFile { path: Some(temp) })),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no free temp file name")))
}

/// 64 bits from the standard library's per-process random hash keys (seeded by the OS), mixed
/// with the time and a counter so two calls never repeat.
fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    hasher.write_u64(nanos);
    hasher.finish()
}

/// Removes temp files for `name` in `dir` left by processes that no longer run (kill -9 between
/// creating and renaming). Files of live processes, and anything not named like ours, stay.
fn remove_stale_temp_files(dir: &Path, name: &str) {
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some(middle) = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
        else {
            continue;
        };
        let Some(pid) = middle
            .split_once('.')
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let is_plain = entry
            .file_type()
            .is_ok_and(|t| t.is_file() || t.is_symlink());
        if is_plain && !process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether a process with this id runs. Where that cannot be told (no /proc), it is assumed to
/// run, so nothing of a live process is ever removed.
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    proc_root.join(pid.to_string()).exists()
}

/// An exclusive lock on a run folder: `<folder>/.profagent.lock` holding the owner's pid,
/// created with `O_EXCL` and removed when dropped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock on `folder` (which must exist). A lock whose process is gone is taken
    /// over; one held by a live process is an error naming it.
    pub fn acquire(folder: &Path) -> Result<RunLock> {
        let path = folder.join(LOCK_FILE);
        let pid = std::process::id();
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    let written = writeln!(file, "{pid}").and_then(|_| file.sync_all());
                    let lock = RunLock { path: path.clone() };
                    written.map_err(|source| OnnxError::Write {
                        path: path.clone(),
                        source,
                    })?;
                    return Ok(lock);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|text| text.trim().parse::<u32>().ok());
                    match owner {
                        Some(owner) if owner != pid && process_alive(owner) => {
                            return Err(OnnxError::Locked {
                                folder: folder.to_path_buf(),
                                pid: owner,
                            });
                        }
                        // Unreadable: its writer may be between creating and writing it.
                        None if modified_within(&path, LOCK_WRITE_GRACE) => {
                            return Err(OnnxError::Locked {
                                folder: folder.to_path_buf(),
                                pid: 0,
                            });
                        }
                        // Our own pid (a leftover of an earlier run in this process cannot
                        // exist while we hold it) or a dead process: stale.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(source) => return Err(OnnxError::Write { path, source }),
            }
        }
        Err(OnnxError::Locked {
            folder: folder.to_path_buf(),
            pid: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn modified_within(path: &Path, age: std::time::Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|elapsed| elapsed < age)
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path)
            .is_ok_and(|text| text.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
