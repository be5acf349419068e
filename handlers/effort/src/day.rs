//! UTC days: naming the day an instant falls on, and cutting an interval
//! at midnights.

const DAY_MS: u64 = 86_400_000;

/// The UTC day of `ms` (since the Unix epoch) as `YYYY-MM-DD`.
pub(crate) fn day_of(ms: u64) -> String {
    let days = i64::try_from(ms / DAY_MS).unwrap_or(i64::MAX / 2);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year,
/// month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // Both are in range by construction (1..=12, 1..=31).
    (y, m as u32, d as u32)
}

/// Whether `text` is a day as [`day_of`] writes them: `YYYY-MM-DD` with a
/// month 01-12 and a day 01-31 (string order is then time order).
pub(crate) fn is_day(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return false;
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    let day = (b[8] - b'0') * 10 + (b[9] - b'0');
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// The interval `[from, until)` cut at UTC midnights: (day, ms in that
/// day) for each day it touches, in order, empty days left out.
pub(crate) fn split(from: u64, until: u64) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < until {
        let midnight = (at / DAY_MS + 1).saturating_mul(DAY_MS);
        let end = midnight.min(until);
        out.push((day_of(at), end - at));
        at = end;
    }
    out
}
