//! Go-style durations (`5s`, `1m30s`, `500ms`) as annotations and kubelet messages spell them,
//! and the one-second resolution API timestamps have.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// Parses a Go `time.Duration` string such as `5s`, `1.5s`, `1m30s` or `250ms`.
///
/// Annotations are user input, so anything Go would reject (no unit, unknown unit, negative
/// values, overflow) is `None` rather than an error to propagate.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    if text == "0" {
        return Some(Duration::ZERO);
    }
    if text.is_empty() || text.starts_with('-') {
        return None;
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1e0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * nanos_per_unit;
    }
    // Go caps durations at about 292 years; anything larger is an overflow error there.
    if !total.is_finite() || total > i64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(total as u64))
}

/// Formats whole seconds the way Go's `time.Duration.String` does (`10s`, `1m20s`, `5m0s`), as
/// kubelet messages print back-off delays.
pub fn format_go_seconds(seconds: u64) -> String {
    let hours = seconds / 3600;
    let minutes = (seconds % 3600) / 60;
    let secs = seconds % 60;
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// The timestamp cut to whole seconds: what a `metav1.Time` keeps once written, so planned
/// statuses compare equal to what the API hands back.
pub fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

/// `at + duration`, saturating instead of failing at the end of time.
pub fn add(at: Timestamp, duration: Duration) -> Timestamp {
    SignedDuration::try_from(duration)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_go() {
        let cases: &[(&str, Option<u64>)] = &[
            ("5s", Some(5_000)),
            ("0", Some(0)),
            ("1.5s", Some(1_500)),
            ("1m30s", Some(90_000)),
            ("250ms", Some(250)),
            ("2h", Some(7_200_000)),
            ("+3s", Some(3_000)),
            ("", None),
            ("5", None),
            ("-5s", None),
            ("5x", None),
            ("s", None),
            ("true", None),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_go_duration(text).map(|d| d.as_millis() as u64),
                *millis,
                "{text:?}"
            );
        }
    }

    #[test]
    fn seconds_format_like_go_durations() {
        let cases = [
            (0, "0s"),
            (10, "10s"),
            (80, "1m20s"),
            (300, "5m0s"),
            (3_725, "1h2m5s"),
        ];
        for (secs, text) in cases {
            assert_eq!(format_go_seconds(secs), text);
        }
    }

    #[test]
    fn whole_seconds_drops_the_fraction() {
        let at: Timestamp = "2024-05-01T10:00:07.912Z".parse().unwrap();
        assert_eq!(whole_seconds(at).to_string(), "2024-05-01T10:00:07Z");
    }
}
