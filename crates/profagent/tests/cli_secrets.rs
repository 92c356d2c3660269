//! Issue 21: an endpoint that echoes the API key in its error body ("Incorrect API key
//! provided: ...") must not get the key onto stdout, stderr or anywhere in the run folder.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Not shaped like any known key format: only the configured-key path can mask it.
const PLANTED_KEY: &str = "planted-Key-0123456789abcdefXYZ";

/// Answers every request with HTTP 401 and a body quoting the request's bearer token.
fn echoing_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut token = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(value) = lower.strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    token = line
                        .trim()
                        .rsplit(' ')
                        .next()
                        .unwrap_or_default()
                        .to_string();
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let answer = format!(
                "{{\"error\":{{\"message\":\"Incorrect API key provided: {token}. You can find your API key at https://example.invalid\",\"type\":\"invalid_request_error\"}}}}"
            );
            let response = format!(
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = reader.get_mut().write_all(response.as_bytes());
        }
    });
    format!("http://{address}/v1")
}

fn files_below(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn api_key_echoed_by_the_endpoint_reaches_no_output() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .arg("compress")
        .arg(root.join("resnet20_cifar10.onnx"))
        .arg("--data")
        .arg(root.join("cifar10-sample"))
        .arg("--out")
        .arg(&out)
        .args(["--max-acc-drop", "1", "--rounds", "1", "--no-probe"])
        .args(["--sensitivity-groups", "0"])
        .args(["--calibration-images", "8", "--feedback-images", "16"])
        .args(["--llm", "openai-compatible:echo", "--llm-base-url"])
        .arg(echoing_endpoint())
        .args(["--llm-api-key-env", "PROFAGENT_TEST_API_KEY"])
        .env("PROFAGENT_TEST_API_KEY", PLANTED_KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    // The endpoint refused us: the run must have reached it (the error names the status).
    assert!(
        stderr.contains("401") || stdout.contains("401"),
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains(PLANTED_KEY), "key on stdout: {stdout}");
    assert!(!stderr.contains(PLANTED_KEY), "key on stderr: {stderr}");
    // The echo did reach stderr, masked.
    assert!(stderr.contains("[REDACTED]"), "{stderr}");
    for file in files_below(&out) {
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(PLANTED_KEY), "key in {}", file.display());
    }
    assert!(!run.status.success() || run.status.code() == Some(1));
}
