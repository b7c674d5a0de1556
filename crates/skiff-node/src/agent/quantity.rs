//! A small reader of Kubernetes resource quantities (`250m`, `1.5`, `64Mi`, `1e3`), enough
//! for the downward API and resource limits.

/// The quantity in thousandths of its unit (millicores for CPU, millibytes for memory),
/// rounded up; `None` for text that is not a quantity or does not fit.
pub fn millis(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scale: f64 = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            10f64.powi(exponent[1..].parse::<i32>().ok()?)
        }
        _ => return None,
    };
    let result = (value * scale * 1000.0).ceil();
    (result.is_finite() && result.abs() < i64::MAX as f64).then_some(result as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_to_thousandths() {
        let cases = [
            ("1", Some(1000)),
            ("250m", Some(250)),
            ("1.5", Some(1500)),
            ("64Mi", Some(64 * 1024 * 1024 * 1000)),
            ("1k", Some(1_000_000)),
            ("1e3", Some(1_000_000)),
            ("1Gi", Some(1_073_741_824_000)),
            ("", None),
            ("abc", None),
            ("1Zi", None),
            ("1P", Some(1_000_000_000_000_000_000)),
            ("100E", None),
        ];
        for (text, expected) in cases {
            assert_eq!(millis(text), expected, "{text}");
        }
    }
}
