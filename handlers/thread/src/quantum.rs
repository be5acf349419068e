//! Quantum strings: how long one work session on a thread lasts.
//!
//! A quantum is written as one or more `<number><unit>` groups, units from
//! largest to smallest, each at most once: `h`, `m`, `s`, `ms`. Examples:
//! `25m`, `1h`, `1h30m`, `90s`, `300ms`. It must be more than zero and at
//! most [`MAX_MS`] (24 hours). Parsed quanta are kept in canonical form
//! (`90m` becomes `1h30m`) next to their length in milliseconds.

/// The quantum of a thread that sets none and has no saga to inherit from.
pub(crate) const DEFAULT: &str = "50m";

/// The longest quantum, in milliseconds: 24 hours.
pub(crate) const MAX_MS: u64 = 24 * HOUR;

const HOUR: u64 = 60 * MINUTE;
const MINUTE: u64 = 60 * SECOND;
const SECOND: u64 = 1000;

/// Units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 4] = [("h", HOUR), ("m", MINUTE), ("s", SECOND), ("ms", 1)];

/// A valid quantum: canonical text and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quantum {
    /// Canonical text, e.g. `1h30m`.
    pub(crate) text: String,
    /// Length in milliseconds.
    pub(crate) ms: u64,
}

impl Quantum {
    /// The default quantum, `50m`.
    pub(crate) fn default_quantum() -> Self {
        Self {
            text: DEFAULT.to_owned(),
            ms: 50 * MINUTE,
        }
    }
}

/// Parses a quantum string; the error says what is wrong, for humans.
pub(crate) fn parse(text: &str) -> Result<Quantum, String> {
    let hint = "write it like `25m`, `1h`, `1h30m`, `90s` or `300ms`";
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("the quantum is empty: {hint}"));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    // Index into UNITS of the next unit allowed: units go largest first.
    let mut next_unit = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(format!(
                "`{text}` is not a quantum: expected a number at position {}; {hint}",
                start + 1
            ));
        }
        let digits = &s[start..i];
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        if unit.is_empty() {
            return Err(format!(
                "`{text}` is not a quantum: `{digits}` has no unit (h, m, s or ms); {hint}"
            ));
        }
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!(
                "`{text}` is not a quantum: unknown unit `{unit}` (use h, m, s or ms); {hint}"
            ));
        };
        if pos < next_unit {
            return Err(format!("`{text}` is not a quantum: units must go from largest to smallest, each at most once; {hint}"));
        }
        next_unit = pos + 1;
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a quantum: `{digits}` is too large"))?;
        total = n
            .checked_mul(UNITS[pos].1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("the quantum `{text}` is too long: at most 24h"))?;
    }
    if total == 0 {
        return Err(format!(
            "the quantum `{text}` is zero: it must be longer than that"
        ));
    }
    if total > MAX_MS {
        return Err(format!("the quantum `{text}` is too long: at most 24h"));
    }
    Ok(Quantum {
        text: format(total),
        ms: total,
    })
}

/// Canonical text of a length in milliseconds: `5400000` → `1h30m`.
pub(crate) fn format(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut rest = ms;
    let mut out = String::new();
    for (unit, len) in UNITS {
        let n = rest / len;
        rest %= len;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn ms(text: &str) -> u64 {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).ms
    }

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(ms("25m"), 25 * MINUTE);
        assert_eq!(ms("1h"), HOUR);
        assert_eq!(ms("1h30m"), 90 * MINUTE);
        assert_eq!(ms("50m"), Quantum::default_quantum().ms);
        assert_eq!(ms("90s"), 90 * SECOND);
        assert_eq!(ms("300ms"), 300);
        assert_eq!(ms("1h2m3s4ms"), HOUR + 2 * MINUTE + 3 * SECOND + 4);
        assert_eq!(ms(" 45m "), 45 * MINUTE, "surrounding blanks are ignored");
        assert_eq!(ms("24h"), MAX_MS);
        assert_eq!(ms("0h5m"), 5 * MINUTE, "a zero group is fine");
    }

    #[test]
    fn canonical_form() {
        assert_eq!(parse("90m").unwrap().text, "1h30m");
        assert_eq!(parse("1h30m").unwrap().text, "1h30m");
        assert_eq!(parse("120s").unwrap().text, "2m");
        assert_eq!(parse("1500ms").unwrap().text, "1s500ms");
        assert_eq!(parse("0h25m").unwrap().text, "25m");
        assert_eq!(format(0), "0s");
        for text in ["25m", "1h", "1h30m", "300ms", "2h0m5s", "23h59m59s999ms"] {
            let q = parse(text).unwrap();
            assert_eq!(parse(&q.text).unwrap(), q, "{text} round-trips");
        }
    }

    #[test]
    fn refuses_what_is_not_a_quantum() {
        for bad in [
            "",
            " ",
            "m",
            "25",
            "25 m",
            "1h 30m",
            "-5m",
            "+5m",
            "1.5h",
            "5x",
            "5M",
            "5min",
            "30m1h",
            "1h1h",
            "1m1m",
            "300ms2s",
            "0m",
            "0h0m",
            "0ms",
            "25h",
            "24h1ms",
            "99999999999999999999h",
            "18446744073709551615h",
            "1h30",
            "h30m",
            "1d",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        let e = parse("5x").unwrap_err();
        assert!(e.contains("unknown unit `x`"), "{e}");
        let e = parse("30m1h").unwrap_err();
        assert!(e.contains("largest to smallest"), "{e}");
        let e = parse("25h").unwrap_err();
        assert!(e.contains("at most 24h"), "{e}");
    }
}
