//! The one way a byte size is written for people, in every command, table and report:
//! decimal units (1 KB = 1000 bytes, as file managers and `ls -h --si` show them), so the same
//! file never reads 320.4 KiB in one place and 328.10 KB in another. `--target-memory` is in
//! the same MB.

/// Bytes as `B` / `KB` / `MB` / `GB` / `TB` with two decimals: `1_096_788` → `1.10 MB`.
pub fn bytes(value: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if value < 1000 {
        return format!("{value} B");
    }
    let mut scaled = value as f64;
    let mut unit = "B";
    for candidate in UNITS {
        // 999_999 bytes is 1.00 MB, not 1000.00 KB: compare what two decimals will show.
        if scaled < 999.995 {
            break;
        }
        scaled /= 1000.0;
        unit = candidate;
    }
    format!("{scaled:.2} {unit}")
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn decimal_units_with_two_decimals() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1000), "1.00 KB");
        assert_eq!(bytes(328_100), "328.10 KB");
        assert_eq!(bytes(999_999), "1.00 MB");
        assert_eq!(bytes(1_096_788), "1.10 MB");
        assert_eq!(bytes(2_500_000_000), "2.50 GB");
    }
}
