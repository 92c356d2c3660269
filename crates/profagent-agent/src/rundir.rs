//! The run directory: everything a run saw and decided, written as it happens.
//!
//! Layout: `input/` (profile and planning facts), `transcript.jsonl` (every prompt and raw
//! answer, one JSON object per line), `rounds/round-NN/` (plan, validation, evaluation),
//! `model.onnx` (the final model) and `report.json`. Every text written passes through
//! `redact`, so an API key that a server echoes back never reaches the disk. Starting a run in
//! a directory that already holds one moves the old files to `history/<unix-time>/` first:
//! re-running never destroys a previous run.
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::AgentError;
use crate::provider::ChatMessage;

pub const TRANSCRIPT_FILE: &str = "transcript.jsonl";
pub const REPORT_FILE: &str = "report.json";
pub const MODEL_FILE: &str = "model.onnx";
pub const HISTORY_DIR: &str = "history";

/// One planner exchange (a prompt and its raw answer, or the error instead of an answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    pub round: usize,
    /// 1 for the first answer of a round, 2.. for repairs.
    pub attempt: usize,
    pub planner: String,
    pub messages: Vec<ChatMessage>,
    pub answer: Option<String>,
    pub error: Option<String>,
    /// "valid", "parse_error", "rejected", "over_budget", "provider_error", or "tool_call"
    /// (the model called a tool instead of answering: `tool_calls`).
    pub verdict: String,
    #[serde(default)]
    pub issues: Vec<profagent_plan::PlanIssue>,
    #[serde(default)]
    pub structured: bool,
    #[serde(default)]
    pub seconds: f64,
    /// Tools the model called before answering (verdict "tool_call"), with what they answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolExchange>,
}

/// One tool call of a planner and the tool's result (both JSON texts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolExchange {
    pub name: String,
    pub arguments: String,
    pub result: String,
}

#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
    secrets: Vec<String>,
    /// Held while any copy of this `RunDir` lives: a second run into the same folder stops
    /// instead of interleaving its files with ours.
    _lock: std::sync::Arc<profagent_onnx::RunLock>,
    /// sha256 of each long text recorded so far → where it is stored (`record`).
    stored: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

/// Messages shorter than this are written out again rather than referred to.
const STORE_ONCE_MIN_BYTES: usize = 256;

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl RunDir {
    /// Creates (or takes over) `root`, moving an earlier run's files into `history/`. Fails
    /// while another process holds the folder's lock.
    pub fn create(root: &Path, secrets: Vec<String>) -> Result<Self, AgentError> {
        std::fs::create_dir_all(root).map_err(|e| AgentError::run_dir(root, e))?;
        let lock = profagent_onnx::RunLock::acquire(root).map_err(AgentError::Locked)?;
        let entries: Vec<PathBuf> = std::fs::read_dir(root)
            .map_err(|e| AgentError::run_dir(root, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n != HISTORY_DIR && n != profagent_onnx::output::LOCK_FILE)
            })
            .collect();
        if !entries.is_empty() {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default();
            let archive = root.join(HISTORY_DIR).join(stamp.to_string());
            std::fs::create_dir_all(&archive).map_err(|e| AgentError::run_dir(&archive, e))?;
            for path in entries {
                if let Some(name) = path.file_name() {
                    std::fs::rename(&path, archive.join(name)).map_err(|e| {
                        AgentError::run_dir(
                            &path,
                            format!("cannot move the previous run aside: {e}"),
                        )
                    })?;
                }
            }
        }
        Ok(RunDir {
            root: root.to_path_buf(),
            secrets: secrets
                .into_iter()
                .chain(crate::redact::secrets_from_env())
                .filter(|s| s.len() >= 4)
                .collect(),
            _lock: std::sync::Arc::new(lock),
            stored: Default::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Replaces every configured secret and key-like token in `text` (`crate::redact`).
    pub fn redact(&self, text: &str) -> String {
        crate::redact::redact(text, &self.secrets)
    }

    /// `value` as `write_json` stores it: unchanged unless its JSON holds a secret, else read
    /// back from the redacted JSON.
    pub fn redacted<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        value: T,
    ) -> Result<T, AgentError> {
        let text = serde_json::to_string(&value).map_err(|e| AgentError::run_dir(&self.root, e))?;
        let redacted = self.redact(&text);
        if redacted == text {
            return Ok(value);
        }
        serde_json::from_str(&redacted).map_err(|e| AgentError::run_dir(&self.root, e))
    }

    /// Writes `text` (redacted) atomically to `relative`, creating folders.
    pub fn write_text(&self, relative: &str, text: &str) -> Result<PathBuf, AgentError> {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| AgentError::run_dir(parent, e))?;
        }
        profagent_onnx::write_atomic(&path, self.redact(text).as_bytes())
            .map_err(|e| AgentError::run_dir(&path, e))?;
        Ok(path)
    }

    pub fn write_json<T: Serialize>(
        &self,
        relative: &str,
        value: &T,
    ) -> Result<PathBuf, AgentError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| AgentError::run_dir(self.path(relative), e))?;
        self.write_text(relative, &(text + "\n"))
    }

    /// Appends one exchange to `transcript.jsonl` and writes its prompt/answer as plain files.
    ///
    /// Each text is stored once: a message already recorded (the system prompt of every
    /// round, an earlier answer sent back in a repair prompt) is written as a reference to the
    /// file holding it, in the prompt file and in the transcript. The answer itself stays whole
    /// in the transcript, which replays read.
    pub fn record(&self, entry: &TranscriptEntry) -> Result<(), AgentError> {
        let folder = format!("rounds/round-{:02}", entry.round);
        // A tool call comes before the attempt's answer, in the same attempt: its files are
        // named by how far the chat had got, so the answer's files do not replace them.
        let step = if entry.tool_calls.is_empty() {
            entry.attempt.to_string()
        } else {
            format!("{}-call-{}", entry.attempt, entry.messages.len())
        };
        let prompt_file = format!("{folder}/prompt-{step}.md");
        let answer_file = if entry.tool_calls.is_empty() {
            format!("{folder}/answer-{step}.txt")
        } else {
            format!("{folder}/tools-{step}.json")
        };
        let mut stored = self.stored.lock().unwrap_or_else(|e| e.into_inner());
        let mut entry = entry.clone();
        for (i, message) in entry.messages.iter_mut().enumerate() {
            if message.content.len() < STORE_ONCE_MIN_BYTES {
                continue;
            }
            let digest = sha256_hex(&message.content);
            match stored.get(&digest) {
                Some(place) => message.content = format!("[the text of {place}]"),
                None => {
                    stored.insert(digest, format!("{prompt_file}, message {}", i + 1));
                }
            }
        }
        let prompt: String = entry
            .messages
            .iter()
            .map(|m| {
                let calls: String = m
                    .tool_calls
                    .iter()
                    .map(|c| format!("\n(calls {} with {})\n", c.name, c.arguments))
                    .collect();
                format!("## {}\n\n{}\n{calls}", m.role.as_str(), m.content)
            })
            .collect::<Vec<_>>()
            .join("\n");
        self.write_text(&prompt_file, &prompt)?;
        let tools = (!entry.tool_calls.is_empty())
            .then(|| serde_json::to_string_pretty(&entry.tool_calls).unwrap_or_default());
        let answer = entry
            .answer
            .as_deref()
            .or(tools.as_deref())
            .or(entry.error.as_deref())
            .unwrap_or_default();
        self.write_text(&answer_file, answer)?;
        stored
            .entry(sha256_hex(answer))
            .or_insert_with(|| answer_file.clone());
        drop(stored);
        let line = serde_json::to_string(&entry)
            .map_err(|e| AgentError::run_dir(self.path(TRANSCRIPT_FILE), e))?;
        let path = self.path(TRANSCRIPT_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| AgentError::run_dir(&path, e))?;
        writeln!(file, "{}", self.redact(&line)).map_err(|e| AgentError::run_dir(&path, e))
    }
}

/// Reads a recorded run's transcript.
pub fn read_transcript(root: &Path) -> Result<Vec<TranscriptEntry>, AgentError> {
    let path = root.join(TRANSCRIPT_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        AgentError::run_dir(
            &path,
            format!("{e}; is this a run directory written by 'profagent compress'?"),
        )
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| AgentError::run_dir(&path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}
