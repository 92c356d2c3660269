//! Number formatting shared by the HTML and Markdown renderers, so both show the same text.

/// Bytes as B / KB / MB / GB (decimal units): the one helper every command uses,
/// `profagent_onnx::units::bytes`.
pub fn bytes(value: u64) -> String {
    profagent_onnx::units::bytes(value)
}

/// Large counts as K / M / G (params, MACs).
pub fn count(value: u64) -> String {
    match value {
        0..=9_999 => value.to_string(),
        10_000..=999_999 => format!("{:.1} K", value as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} M", value as f64 / 1e6),
        _ => format!("{:.2} G", value as f64 / 1e9),
    }
}

pub fn ms(value: f64) -> String {
    if value < 0.1 {
        format!("{value:.3} ms")
    } else {
        format!("{value:.2} ms")
    }
}

pub fn percent(value: f64) -> String {
    if value.is_nan() {
        return "not measured (no labels)".into();
    }
    format!("{value:.2} %")
}

/// "1.48x faster (95 % interval 1.41–1.55x)", "0.56x: 1.79x slower (...)" or
/// "1.01x: not distinguishable (0.97–1.04x)": a ratio below 1 is called slower.
pub fn speed(comparison: &profagent_stats::SpeedComparison) -> String {
    comparison.describe()
}

/// "+0.40 pp (95 % interval −0.30 to +1.10, 4000 images)".
pub fn change(drop: f64, interval: Option<&profagent_stats::Estimate>, images: usize) -> String {
    match interval {
        Some(i) => format!(
            "{} (95 % interval {:+.2} to {:+.2} pp, paired on {images} images)",
            points(-drop),
            -i.high,
            -i.low
        ),
        None => points(-drop),
    }
}

/// Signed percentage points.
pub fn points(value: f64) -> String {
    format!("{value:+.2} pp")
}

/// A before/after ratio where above 1 means "after" is better (smaller/faster).
pub fn factor(before: f64, after: f64) -> Option<String> {
    (after > 0.0 && before > 0.0).then(|| format!("{:.2}x", before / after))
}

/// Relative change after vs before, signed percent.
pub fn relative(before: f64, after: f64) -> Option<String> {
    (before > 0.0).then(|| format!("{:+.1} %", (after / before - 1.0) * 100.0))
}

/// A missing value.
pub const NONE: &str = "–";

pub fn opt<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map(show).unwrap_or_else(|| NONE.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_scale() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_096_000), "1.10 MB");
        assert_eq!(count(272_474), "272.5 K");
        assert_eq!(count(40_810_000), "40.81 M");
        assert_eq!(factor(2.0, 1.0).as_deref(), Some("2.00x"));
        assert_eq!(relative(2.0, 1.0).as_deref(), Some("-50.0 %"));
        assert_eq!(ms(0.0421), "0.042 ms");
    }
}
