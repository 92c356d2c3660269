//! Issue 21: mutated models through the `profile` command end in exit 0, 2 or 3 with no panic
//! and no hang. A bounded CI run (`CASES`); `PROFAGENT_MUTATIONS=10000` runs more. The
//! library-level fuzz target (profagent-profile/tests/fuzz.rs) covers the loader in-process;
//! this one covers the whole command: argument handling, guard, loader, profile, printing.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Mutated models per CI run.
const CASES: usize = 1000;
/// A profile of a 1 MB model that has not finished after this long is a hang.
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// xorshift64*: a fixed, dependency-free sequence, so a failing case is reproducible by index.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(original: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len());
        match rng.below(5) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = rng.next() as u8,
            2 => {
                let insert: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, insert);
            }
            3 => {
                let end = (at + 1 + rng.below(16)).min(bytes.len());
                bytes.drain(at..end);
            }
            _ => bytes.truncate(at),
        }
        if bytes.is_empty() {
            break;
        }
    }
    bytes
}

#[test]
fn mutated_models_through_profile_exit_0_2_or_3_without_panic_or_hang() {
    let cases = std::env::var("PROFAGENT_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let original = std::fs::read(root.join("resnet20_cifar10.onnx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mutated.onnx");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut codes = [0usize; 4];
    for case in 0..cases {
        std::fs::write(&path, mutate(&original, &mut rng)).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_profagent"))
            .args(["profile", "--runs", "0"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > HANG_LIMIT {
                let _ = child.kill();
                let kept = dir.path().join(format!("hang-{case}.onnx"));
                std::fs::copy(&path, &kept).unwrap();
                panic!("case {case} hung");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();
        assert!(
            matches!(code, Some(0 | 2 | 3)) && !stderr.contains("panicked"),
            "case {case}: exit {code:?}: {stderr}"
        );
        codes[code.unwrap_or(1) as usize] += 1;
    }
    eprintln!(
        "{cases} mutated models: {} exit 0, {} exit 2, {} exit 3",
        codes[0], codes[2], codes[3]
    );
}
