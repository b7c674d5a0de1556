//! Error and value renderings in the words kubelet's Go code produces, so that events read the
//! same as on a real cluster (`dial tcp 127.0.0.1:8080: connect: connection refused`).

use std::io;
use std::time::Duration;

/// `host:port`, with IPv6 hosts bracketed, as Go's `net.JoinHostPort` writes it.
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A failed TCP connect as Go's dialer reports it: `dial tcp ADDR: connect: connection refused`.
pub(crate) fn dial_error(addr: &str, err: &io::Error) -> String {
    format!("dial tcp {addr}: {}", connect_errno_text(err))
}

/// A TCP connect that ran out of time, as Go's dialer reports it.
pub(crate) fn dial_timeout(addr: &str) -> String {
    format!("dial tcp {addr}: i/o timeout")
}

/// The text Go's syscall package gives the errno of a failed `connect(2)`.
fn connect_errno_text(err: &io::Error) -> String {
    use nix::errno::Errno;
    let known = match err.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ECONNREFUSED) => Some("connection refused"),
        Some(Errno::EHOSTUNREACH) => Some("no route to host"),
        Some(Errno::ENETUNREACH) => Some("network is unreachable"),
        Some(Errno::ETIMEDOUT) => Some("connection timed out"),
        Some(Errno::EADDRNOTAVAIL) => Some("cannot assign requested address"),
        Some(Errno::ECONNRESET) => Some("connection reset by peer"),
        Some(Errno::EACCES) => Some("permission denied"),
        Some(Errno::EPERM) => Some("operation not permitted"),
        _ => None,
    };
    match known {
        Some(text) => format!("connect: {text}"),
        None => lowercase_first(&strip_os_error_suffix(&err.to_string())),
    }
}

/// Rust appends ` (os error N)` to OS errors; Go does not.
fn strip_os_error_suffix(text: &str) -> String {
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text.to_string(),
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A string quoted as Go's `%q` verb quotes it (`strconv.Quote`).
pub(crate) fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for ch in text.chars() {
        match ch {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\u{b}' => quoted.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                quoted.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let code = c as u32;
                if code <= 0xffff {
                    quoted.push_str(&format!("\\u{code:04x}"));
                } else {
                    quoted.push_str(&format!("\\U{code:08x}"));
                }
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A duration as Go's `time.Duration.String` prints it (`1s`, `1.5s`, `2m0s`, `250ms`).
pub(crate) fn go_duration(duration: Duration) -> String {
    let total_nanos = duration.as_nanos();
    if total_nanos == 0 {
        return "0s".to_string();
    }
    if total_nanos < 1_000_000_000 {
        return sub_second(total_nanos);
    }
    let whole_seconds = duration.as_secs();
    let fraction = fraction_digits(duration.subsec_nanos());
    let hours = whole_seconds / 3600;
    let minutes = (whole_seconds % 3600) / 60;
    let seconds = whole_seconds % 60;
    let seconds_text = format!("{seconds}{fraction}s");
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds_text}")
    } else if minutes > 0 {
        format!("{minutes}m{seconds_text}")
    } else {
        seconds_text
    }
}

fn sub_second(nanos: u128) -> String {
    let (unit, scale) = if nanos >= 1_000_000 {
        ("ms", 1_000_000u128)
    } else if nanos >= 1_000 {
        ("µs", 1_000u128)
    } else {
        ("ns", 1u128)
    };
    let whole = nanos / scale;
    let rest = nanos % scale;
    if rest == 0 {
        return format!("{whole}{unit}");
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}{unit}", digits.trim_end_matches('0'))
}

fn fraction_digits(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let digits = format!("{nanos:09}");
    format!(".{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        let cases = [
            ("cat /tmp/healthy", "\"cat /tmp/healthy\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("a\\b", "\"a\\\\b\""),
            ("line\n", "\"line\\n\""),
            ("bell\u{7}", "\"bell\\a\""),
            ("nul\u{0}", "\"nul\\x00\""),
            ("héllo", "\"héllo\""),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want, "quoting {input:?}");
        }
    }

    #[test]
    fn prints_durations_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(3725), "1h2m5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(1500), "1.5ms"),
        ];
        for (input, want) in cases {
            assert_eq!(go_duration(input), want, "printing {input:?}");
        }
    }

    #[test]
    fn renders_connect_errors_like_go() {
        let refused = io::Error::from(nix::errno::Errno::ECONNREFUSED);
        assert_eq!(
            dial_error("127.0.0.1:8080", &refused),
            "dial tcp 127.0.0.1:8080: connect: connection refused"
        );
        let other = io::Error::other("Something odd");
        assert_eq!(dial_error("h:1", &other), "dial tcp h:1: something odd");
        assert_eq!(join_host_port("::1", 80), "[::1]:80");
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
    }
}
