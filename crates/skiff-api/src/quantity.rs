//! Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1G`, `1e3`).
//!
//! `k8s-openapi` keeps a quantity as the string the user wrote; whoever compares resources
//! (the scheduler, the node agent, the autoscaler) needs its numeric value. This parser follows
//! the grammar of Kubernetes' `resource.ParseQuantity` and rounds like its `Value()` and
//! `MilliValue()`: up, away from zero, so a request is never under-counted.

/// Why a string is not a quantity; the message is Kubernetes' own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string does not follow the quantity grammar.
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    /// The number is followed by something that is not a known suffix.
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// A parsed quantity: exactly `sign * digits * 10^exp10 * 2^exp2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    /// The decimal digits without their point; `None` when they do not fit 128 bits.
    digits: Option<u128>,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    /// Parses a quantity string as the API server does.
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        let s = input.trim();
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (whole, fraction) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return Err(QuantityError::Format);
        }
        let mut digits: Option<u128> = Some(0);
        let mut exp10: i32 = 0;
        for c in whole.bytes().chain(fraction.bytes()) {
            let d = u128::from(c - b'0');
            digits = digits.and_then(|v| v.checked_mul(10)?.checked_add(d));
        }
        if digits.is_none() {
            // Too many digits to keep exactly: keep the 38 most significant ones.
            let all: String = whole.chars().chain(fraction.chars()).collect();
            let all = all.trim_start_matches('0');
            let kept = &all[..all.len().min(38)];
            digits = kept.parse::<u128>().ok();
            exp10 = i32::try_from(all.len() - kept.len()).map_err(|_| QuantityError::Format)?;
        }
        exp10 -= i32::try_from(fraction.len()).map_err(|_| QuantityError::Format)?;
        let (suffix_exp10, exp2) = parse_suffix(suffix)?;
        Ok(Quantity {
            negative,
            digits,
            exp10: exp10.saturating_add(suffix_exp10),
            exp2,
        })
    }

    /// The value in whole units (bytes, cores, pods), rounded up.
    pub fn value(&self) -> i64 {
        self.scaled(0)
    }

    /// The value in thousandths (millicores), rounded up.
    pub fn milli_value(&self) -> i64 {
        self.scaled(3)
    }

    /// Whether the quantity is zero.
    pub fn is_zero(&self) -> bool {
        self.digits == Some(0)
    }

    /// The value times `10^extra_exp10`, rounded away from zero and saturated to `i64`.
    fn scaled(&self, extra_exp10: i32) -> i64 {
        let magnitude = match self.digits {
            Some(0) => return 0,
            Some(d) => magnitude(d, self.exp2, self.exp10.saturating_add(extra_exp10)),
            None => u128::MAX,
        };
        let clamped = i64::try_from(magnitude).unwrap_or(i64::MAX);
        if self.negative {
            -clamped
        } else {
            clamped
        }
    }
}

/// `ceil(digits * 2^exp2 * 10^exp10)`, saturating.
fn magnitude(digits: u128, exp2: u32, exp10: i32) -> u128 {
    let mut value = match 1u128.checked_shl(exp2).and_then(|p| digits.checked_mul(p)) {
        Some(v) => v,
        None => return u128::MAX,
    };
    if exp10 >= 0 {
        for _ in 0..exp10 {
            value = match value.checked_mul(10) {
                Some(v) => v,
                None => return u128::MAX,
            };
        }
        value
    } else {
        let mut rounded_up = false;
        for _ in 0..exp10.unsigned_abs() {
            if value == 0 {
                break;
            }
            rounded_up |= value % 10 != 0;
            value /= 10;
        }
        value + u128::from(rounded_up)
    }
}

/// The power of ten and power of two a suffix stands for.
fn parse_suffix(suffix: &str) -> Result<(i32, u32), QuantityError> {
    let decimal = |e: i32| Ok((e, 0));
    let binary = |e: u32| Ok((0, e));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exponent = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or(QuantityError::Suffix)?;
            let unsigned = exponent
                .strip_prefix('+')
                .or_else(|| exponent.strip_prefix('-'))
                .unwrap_or(exponent);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QuantityError::Suffix);
            }
            exponent
                .parse::<i32>()
                .map(|e| (e, 0))
                .map_err(|_| QuantityError::Suffix)
        }
    }
}

/// Millicores of a CPU quantity string, `None` if it does not parse.
pub fn parse_milli(input: &str) -> Option<i64> {
    Quantity::parse(input).ok().map(|q| q.milli_value())
}

/// Whole units (bytes, pods) of a quantity string, `None` if it does not parse.
pub fn parse_value(input: &str) -> Option<i64> {
    Quantity::parse(input).ok().map(|q| q.value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_up_like_kubernetes() {
        let cases: &[(&str, i64, i64)] = &[
            // input, milli value, value
            ("0", 0, 0),
            ("100m", 100, 1),
            ("0.5", 500, 1),
            (".5", 500, 1),
            ("2", 2000, 2),
            ("1.5", 1500, 2),
            ("+3", 3000, 3),
            ("-1", -1000, -1),
            ("-100m", -100, -1),
            ("1n", 1, 1),
            ("1500u", 2, 1),
            ("250000n", 1, 1),
            ("1k", 1_000_000, 1000),
            ("128Mi", 134_217_728_000, 134_217_728),
            ("1Ki", 1_024_000, 1024),
            ("1G", 1_000_000_000_000, 1_000_000_000),
            ("1Gi", 1_073_741_824_000, 1_073_741_824),
            ("1.5Gi", 1_610_612_736_000, 1_610_612_736),
            ("1e3", 1_000_000, 1000),
            ("1E3", 1_000_000, 1000),
            ("1e-3", 1, 1),
            ("12e+2", 1_200_000, 1200),
            ("1E", i64::MAX, 1_000_000_000_000_000_000),
            ("8Ei", i64::MAX, i64::MAX),
            (
                "100000000000000000000000000000000000000000000",
                i64::MAX,
                i64::MAX,
            ),
            ("0.000000000000000000000000000000000000000000001", 1, 1),
        ];
        for (input, milli, value) in cases {
            let q = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.milli_value(), *milli, "milli value of {input}");
            assert_eq!(q.value(), *value, "value of {input}");
        }
    }

    #[test]
    fn malformed_quantities_are_refused() {
        let cases: &[(&str, QuantityError)] = &[
            ("", QuantityError::Format),
            ("m", QuantityError::Format),
            ("1.2.3", QuantityError::Format),
            ("-", QuantityError::Format),
            ("1K", QuantityError::Suffix),
            ("1mi", QuantityError::Suffix),
            ("1e", QuantityError::Suffix),
            ("1e+", QuantityError::Suffix),
            ("1 Gi", QuantityError::Suffix),
            ("1Gix", QuantityError::Suffix),
        ];
        for (input, want) in cases {
            assert_eq!(Quantity::parse(input), Err(want.clone()), "{input:?}");
        }
    }
}
