//! One line of a unit's log file: the time the supervisor read it, then what the unit wrote.
//!
//! `2024-05-01T12:00:00.123456Z <message>`: UTC with microseconds, fixed width, so a reader
//! finds the time without a parser and the file stays readable with `tail` (testkit prints
//! these files when a test fails). journald keeps the same time for each entry
//! (`realtime_timestamp`), which dcos-log's answers carry. Lines without the prefix (written
//! before it existed, or by hand) are served with no time.

use std::time::{SystemTime, UNIX_EPOCH};

/// The length of the time prefix, without the space after it.
pub const PREFIX_LEN: usize = 27;

/// Appends the prefix for `ts` and a space to `out`.
pub fn write_prefix(out: &mut Vec<u8>, ts: SystemTime) {
    let usec = ts
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let secs = usec / 1_000_000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z ",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        usec % 1_000_000
    );
    out.extend_from_slice(text.as_bytes());
}

/// The time (microseconds since the epoch) and the message of a stored line; no time when
/// the line has no prefix.
pub fn parse(line: &[u8]) -> (Option<u64>, &[u8]) {
    match parse_prefix(line) {
        Some(usec) => (Some(usec), &line[PREFIX_LEN + 1..]),
        None => (None, line),
    }
}

fn parse_prefix(line: &[u8]) -> Option<u64> {
    let p = line.get(..=PREFIX_LEN)?;
    // YYYY-MM-DDTHH:MM:SS.ffffffZ<space>
    let seps = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
        (27, b' '),
    ];
    if seps.iter().any(|&(i, c)| p[i] != c) {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u64> {
        p[from..to].iter().try_fold(0u64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, min, sec, micros) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 26)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year as i64, month as u32, day as u32)).ok()?;
    Some(((days * 86_400 + hour * 3600 + min * 60 + sec) * 1_000_000) + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_prefixed_line_gives_back_its_time_and_message() {
        let ts = UNIX_EPOCH + Duration::from_micros(1_714_564_800_123_456);
        let mut line = Vec::new();
        write_prefix(&mut line, ts);
        assert_eq!(line, b"2024-05-01T12:00:00.123456Z ");
        line.extend_from_slice(b"hello world");
        assert_eq!(
            parse(&line),
            (Some(1_714_564_800_123_456), &b"hello world"[..])
        );
    }

    #[test]
    fn lines_without_a_prefix_have_no_time() {
        assert_eq!(parse(b"plain"), (None, &b"plain"[..]));
        assert_eq!(
            parse(b"2024-13-01T12:00:00.123456Z x"),
            (None, &b"2024-13-01T12:00:00.123456Z x"[..])
        );
        assert_eq!(parse(b""), (None, &b""[..]));
    }

    proptest::proptest! {
        #[test]
        fn every_time_round_trips(usec in 0u64..4_102_444_800_000_000) {
            let mut line = Vec::new();
            write_prefix(&mut line, UNIX_EPOCH + Duration::from_micros(usec));
            proptest::prop_assert_eq!(parse(&line).0, Some(usec));
        }
    }
}
