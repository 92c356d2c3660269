//! Rendering tests on the example report: Markdown snapshot, HTML structure and
//! self-containment, report.json round trip, and the page rendered by headless Chromium with
//! every chart drawn (skipped with a printed reason when Chromium is not installed).
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use profagent_report::charts::{AFTER_HEX, BEFORE_HEX};
use profagent_report::fixture::example_report;
use profagent_report::html::{LAYER_CHART_ID, SECTION_IDS, TRAJECTORY_CHART_ID};
use profagent_report::{render_html, render_markdown, write_reports, RunReport};

/// Chromium gets this long to render one page before the test gives up on it.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);
/// A blank page screenshots to a few KB; the rendered report is far larger.
const MIN_SCREENSHOT_BYTES: u64 = 40_000;

#[test]
fn markdown_snapshot() {
    let markdown = render_markdown(&example_report());
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"Run time: [^.\n]*\.\d* ?[a-z]*\.", "Run time: [duration].");
    settings.add_filter(r"runs/[A-Za-z0-9_./-]+", "[run-dir path]");
    settings.bind(|| insta::assert_snapshot!("report_md", markdown));
}

#[test]
fn markdown_tables_are_aligned() {
    let markdown = render_markdown(&example_report());
    let mut table: Vec<&str> = Vec::new();
    for line in markdown.lines().chain([""]) {
        if line.starts_with('|') {
            table.push(line);
            continue;
        }
        if let Some(first) = table.first() {
            let width = first.chars().count();
            for row in &table {
                assert_eq!(
                    row.chars().count(),
                    width,
                    "misaligned table row:\n{row}\nin\n{}",
                    table.join("\n")
                );
            }
        }
        table.clear();
    }
}

#[test]
fn html_is_self_contained_and_has_every_section() {
    let report = example_report();
    let html = render_html(&report);
    for id in SECTION_IDS.iter().chain(&["layers"]) {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "section {id} missing"
        );
    }
    for forbidden in [
        "<script", "http://", "https://", "<link", "@import", "src=\"",
    ] {
        // The SVG namespace is an identifier, not a fetch.
        let without_namespace = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(
            !without_namespace.contains(forbidden),
            "report.html must not reference '{forbidden}'"
        );
    }
    // Every plan rationale and validator message reaches the page.
    for round in &report.rounds {
        let plan = round.plan.as_ref().unwrap();
        let first_words: String = plan
            .rationale
            .split_whitespace()
            .take(6)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            html.contains(&first_words),
            "round {} rationale missing",
            round.round
        );
        for issue in round.rejected_issues.iter().chain(&round.warnings) {
            let escaped = profagent_report::html::escape(&issue.message);
            assert!(
                html.contains(&escaped),
                "validator message missing: {}",
                issue.message
            );
        }
    }
}

#[test]
fn layer_chart_has_one_bar_per_measured_layer_and_series() {
    let report = example_report();
    let html = render_html(&report);
    let figure = element_with_id(&html, LAYER_CHART_ID).expect("layer chart figure");
    // One bar per layer and series, plus that series' legend swatch.
    assert_eq!(count_fill(figure, BEFORE_HEX), report.layers.len() + 1);
    assert_eq!(count_fill(figure, AFTER_HEX), report.layers.len() + 1);
    let labels = svg_texts(figure);
    for layer in &report.layers {
        assert!(
            labels.contains(&layer.layer),
            "no label for {}",
            layer.layer
        );
    }
}

/// Each layer's name sits level with its two bars (between the top of the grey bar and the
/// bottom of the blue one).
#[test]
fn layer_labels_line_up_with_their_bars() {
    let report = example_report();
    let html = render_html(&report);
    let figure = element_with_id(&html, LAYER_CHART_ID).expect("layer chart figure");
    // The first rect of each colour is the legend swatch, then one bar per layer in order.
    let before = rect_spans(figure, BEFORE_HEX);
    let after = rect_spans(figure, AFTER_HEX);
    for (index, layer) in report.layers.iter().enumerate() {
        let y =
            text_y(figure, &layer.layer).unwrap_or_else(|| panic!("no label for {}", layer.layer));
        let (top, _) = before[index + 1];
        let (after_top, after_height) = after[index + 1];
        assert!(
            y >= top && y <= after_top + after_height,
            "label of {} at y={y} is not level with its bars ({top}..{})",
            layer.layer,
            after_top + after_height
        );
    }
}

/// (y, height) of every rect filled with `hex`, in document order.
fn rect_spans(svg: &str, hex: &str) -> Vec<(f64, f64)> {
    svg.split("<rect")
        .skip(1)
        .filter(|tag| {
            tag[..tag.find('>').unwrap_or(tag.len())].contains(&format!("fill=\"{hex}\""))
        })
        .map(|tag| {
            (
                attribute(tag, "y").unwrap(),
                attribute(tag, "height").unwrap(),
            )
        })
        .collect()
}

fn text_y(svg: &str, label: &str) -> Option<f64> {
    svg.split("<text").skip(1).find_map(|chunk| {
        let start = chunk.find('>')? + 1;
        let end = chunk.find("</text>")?;
        (chunk[start..end].trim() == label)
            .then(|| attribute(chunk, "y"))
            .flatten()
    })
}

fn attribute(tag: &str, name: &str) -> Option<f64> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    tag[start..end].parse().ok()
}

#[test]
fn report_json_round_trips_and_reads_agent_details() {
    let report = example_report();
    let text = serde_json::to_string_pretty(&report).unwrap();
    assert_eq!(RunReport::from_json(&text).unwrap(), report);

    // An evaluation as the agent writes it: typed fields only in `details` (an EvalRecord,
    // accuracies as fractions). They must be lifted, in percent.
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["baseline"] = serde_json::json!({
        "top1": 88.0, "latency_ms": 0.92, "model_bytes": 1096544, "images": 2000,
        "details": {"top1": 0.88, "top5": 0.9965, "params": 272474, "macs": 40810000,
                    "peak_rss_bytes": 61000000,
                    "latency": [{"batch": 1, "median_ms": 0.92, "p90_ms": 1.0, "runs": 50},
                                {"batch": 32, "median_ms": 14.1, "p90_ms": 15.0, "runs": 20}]}
    });
    let lifted = RunReport::from_json(&value.to_string()).unwrap();
    let baseline = &lifted.baseline;
    assert!((baseline.top5.unwrap() - 99.65).abs() < 1e-9);
    assert_eq!(baseline.params, Some(272_474));
    assert_eq!(baseline.macs, Some(40_810_000));
    assert_eq!(baseline.peak_memory_bytes, Some(61_000_000));
    assert_eq!(baseline.latency_batch.map(|l| l.batch), Some(32));
}

#[test]
fn write_reports_writes_both_files_and_rejects_missing_dir() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_reports(dir.path(), &example_report()).unwrap();
    assert!(std::fs::read_to_string(&written.html)
        .unwrap()
        .starts_with("<!DOCTYPE html>"));
    assert!(std::fs::read_to_string(&written.markdown)
        .unwrap()
        .starts_with("# ProfAgent report"));
    let missing = dir.path().join("nope");
    let err = write_reports(&missing, &example_report())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope") && err.contains("does not exist"),
        "{err}"
    );
}

/// The `<figure id=...>` element's text, up to its closing tag.
fn element_with_id<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let end = html[start..].find("</figure>")? + start;
    Some(&html[start..end])
}

/// The text content of every SVG `<text>` element (plotters puts it on its own line).
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|chunk| {
            let start = chunk.find('>')? + 1;
            let end = chunk.find("</text>")?;
            Some(chunk[start..end].trim().to_string())
        })
        .collect()
}

fn count_fill(svg: &str, hex: &str) -> usize {
    svg.match_indices("<rect")
        .filter(|(at, _)| {
            let tag_end = svg[*at..].find('>').map(|e| at + e).unwrap_or(svg.len());
            svg[*at..tag_end].contains(&format!("fill=\"{hex}\""))
        })
        .count()
}

fn chromium() -> Option<PathBuf> {
    let candidate = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    candidate.exists().then_some(candidate)
}

/// Runs Chromium headless on `page` with `extra` arguments; returns stdout. Stdout goes to a
/// file, not a pipe: a dumped DOM overflows a pipe buffer and Chromium would block on it.
fn run_chromium(chromium: &Path, page: &Path, profile: &Path, extra: &[String]) -> String {
    let stdout_path = profile.with_extension("stdout");
    let stdout = std::fs::File::create(&stdout_path).expect("create chromium stdout file");
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("start chromium");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("poll chromium").is_some() {
            break;
        }
        if started.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            panic!(
                "chromium did not finish rendering {} within {CHROMIUM_TIMEOUT:?}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    String::from_utf8_lossy(&std::fs::read(&stdout_path).expect("read chromium stdout"))
        .into_owned()
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "skipped: /usr/bin/chromium not found (apt-get install -y chromium, or set CHROMIUM)"
        );
        return;
    };
    let report = example_report();
    let dir = tempfile::tempdir().unwrap();
    let written = write_reports(dir.path(), &report).unwrap();

    let screenshot = dir.path().join("report.png");
    run_chromium(
        &chromium,
        &written.html,
        &dir.path().join("profile-shot"),
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1200,4200".into(),
        ],
    );
    let bytes = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(
        bytes > MIN_SCREENSHOT_BYTES,
        "screenshot {} is {bytes} bytes: blank page?",
        screenshot.display()
    );
    if let Some(keep) = std::env::var_os("PROFAGENT_REPORT_SCREENSHOT") {
        std::fs::copy(&screenshot, &keep).unwrap();
    }

    let dom = run_chromium(
        &chromium,
        &written.html,
        &dir.path().join("profile-dom"),
        &["--dump-dom".into()],
    );
    for id in SECTION_IDS.iter().chain(&["layers"]) {
        assert!(
            dom.contains(&format!("<section id=\"{id}\">")),
            "rendered DOM lacks section {id}"
        );
    }
    let layers = element_with_id(&dom, LAYER_CHART_ID).expect("rendered layer chart");
    assert!(layers.contains("<svg"), "layer chart has no SVG");
    assert_eq!(
        count_fill(layers, BEFORE_HEX),
        report.layers.len() + 1,
        "before bars (+ legend)"
    );
    assert_eq!(
        count_fill(layers, AFTER_HEX),
        report.layers.len() + 1,
        "after bars (+ legend)"
    );
    let trajectory = element_with_id(&dom, TRAJECTORY_CHART_ID).expect("rendered trajectory chart");
    assert!(trajectory.contains("<svg"), "trajectory chart has no SVG");
    let labels = svg_texts(trajectory);
    for round in &report.rounds {
        assert!(
            labels.contains(&format!("R{}", round.round)),
            "round {} not plotted",
            round.round
        );
    }
    assert!(
        labels.iter().any(|l| l == "baseline"),
        "baseline not plotted"
    );
    for entry in [
        "Accepted round",
        "Rolled back",
        "Chosen model",
        "Accuracy floor (budget)",
    ] {
        assert!(
            labels.iter().any(|l| l == entry),
            "legend entry '{entry}' missing"
        );
    }
    for axis in [
        "Top-1 accuracy (%)",
        "Latency, batch 1 (ms)",
        "Model file size (MB)",
    ] {
        assert!(
            labels.iter().any(|l| l == axis),
            "axis label '{axis}' missing"
        );
    }
}

/// A run that stopped before any round (no rounds, no final model, nothing measured per layer)
/// still renders every section, saying what is missing.
#[test]
fn minimal_report_renders() {
    let text = r#"{"format": "profagent-run/1", "model": {"path": "m.onnx"},
                   "budget": {"max_acc_drop": 1.0},
                   "baseline": {"top1": 71.5, "latency_ms": 3.2, "model_bytes": 14000000}}"#;
    let report = RunReport::from_json(text).unwrap();
    let markdown = render_markdown(&report);
    assert!(markdown.contains("no final model"), "{markdown}");
    assert!(markdown.contains("No channels were pruned."), "{markdown}");
    let html = render_html(&report);
    for id in SECTION_IDS {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "section {id} missing"
        );
    }
    assert!(
        !html.contains("Chart unavailable"),
        "the trajectory of the baseline alone must draw"
    );
    assert!(
        !html.contains("id=\"layers\""),
        "no per-layer section without per-layer data"
    );
}

/// The text of the element that starts at the first `marker` (up to its closing `</{tag}>`).
fn element_after<'a>(dom: &'a str, marker: &str, tag: &str) -> Option<&'a str> {
    let start = dom.find(marker)?;
    let end = dom[start..].find(&format!("</{tag}>"))?;
    Some(&dom[start..start + end])
}

/// Issue 22: a run whose final model is slower than its input says "slower" in the headline
/// card and in the overview, never "faster", as Chromium renders the page; and no element
/// calls a mode the fastest unless its probe measured the highest speedup.
#[test]
fn a_slower_final_model_reads_slower_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "skipped: /usr/bin/chromium not found (apt-get install -y chromium, or set CHROMIUM)"
        );
        return;
    };
    let mut report = example_report();
    let result = report.final_result.as_mut().unwrap();
    let speed = result.speed.as_mut().unwrap();
    speed.speedup.value = 0.62;
    speed.speedup.low = 0.58;
    speed.speedup.high = 0.66;
    speed.candidate_ms.value = speed.reference_ms / 0.62;
    result.speedup = Some(0.62);
    result.budget_met = false;
    let dir = tempfile::tempdir().unwrap();
    let written = write_reports(dir.path(), &report).unwrap();
    let dom = run_chromium(
        &chromium,
        &written.html,
        &dir.path().join("profile-slower"),
        &["--dump-dom".into()],
    );
    let card = element_after(&dom, "Speed vs input, batch 1", "div")
        .and_then(|_| {
            let at = dom.find("Speed vs input, batch 1")?;
            let value = dom[at..].find("class=\"value")?;
            element_after(&dom[at + value..], "class=\"value", "div")
        })
        .expect("the speed card");
    assert!(card.contains("slower"), "headline card: {card}");
    assert!(!card.contains("faster"), "headline card: {card}");
    let overview = element_after(&dom, "<section id=\"overview\">", "section").unwrap();
    assert!(
        overview.contains("slower") && !overview.contains("x faster"),
        "overview: {overview}"
    );
    // "fastest" only next to the mode whose probe measured the highest speedup.
    let fastest = report
        .quant_probes
        .iter()
        .filter(|p| p.error.is_none())
        .max_by(|a, b| a.speedup.total_cmp(&b.speedup))
        .map(|p| p.mode.to_string())
        .unwrap();
    for (at, _) in dom.match_indices("fastest") {
        let sentence_start = dom[..at].rfind(['>', '.']).map_or(0, |i| i + 1);
        let sentence = &dom[sentence_start..at + "fastest".len() + 40.min(dom.len() - at - 7)];
        assert!(
            sentence.to_lowercase().contains(&fastest),
            "'fastest' not about the fastest probe ({fastest}): {sentence}"
        );
    }
}
