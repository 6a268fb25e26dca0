//! Timestamps: nanoseconds since the Unix epoch (UTC) in the store, RFC 3339 in output, and
//! the `--since`/`--until`/`--older-than` forms the commands accept.
//!
//! Privilege: none; reads CLOCK_REALTIME and CLOCK_MONOTONIC.

use std::time::{SystemTime, UNIX_EPOCH};

pub const NS_PER_SEC: i64 = 1_000_000_000;

/// Wall-clock now, nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// `CLOCK_MONOTONIC` now, nanoseconds (the clock of kernel event records).
pub fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * NS_PER_SEC + ts.tv_nsec
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// RFC 3339 in UTC with microseconds: `2026-11-30T18:28:31.123456Z`.
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(NS_PER_SEC);
    let micros = ns.rem_euclid(NS_PER_SEC) / 1000;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// A short local-independent form for tables: `2026-11-30 18:28:31`.
pub fn short(ns: i64) -> String {
    let s = rfc3339(ns);
    format!("{} {}", &s[..10], &s[11..19])
}

/// A duration: a number and a unit `s`, `m`, `h`, `d` or `w` (`30d`, `12h`), in nanoseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}`: a duration needs a unit (s, m, h, d or w), e.g. 30d"))?;
    let (num, unit) = t.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{text}`: expected a number then a unit, e.g. 30d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (s, m, h, d or w)")),
    };
    n.checked_mul(secs)
        .and_then(|s| s.checked_mul(NS_PER_SEC))
        .ok_or_else(|| format!("`{text}`: too long"))
}

/// A point in time: a duration ago (`30d`, `2h`), a date (`2026-11-30`, midnight UTC) or a
/// UTC date and time (`2026-11-30T18:00:00Z`, `2026-11-30 18:00`).
pub fn parse_time(text: &str, now: i64) -> Result<i64, String> {
    let t = text.trim();
    if t.starts_with(|c: char| c.is_ascii_digit()) && t.len() <= 8 && !t.contains('-') {
        return Ok(now - parse_duration(t)?);
    }
    let bad = || {
        format!(
            "`{text}`: expected a duration ago (30d, 12h), a date (2026-11-30) or a UTC time \
             (2026-11-30T18:00:00Z)"
        )
    };
    let t = t.trim_end_matches('Z');
    let (date, clock) = match t.split_once(['T', ' ']) {
        Some((d, c)) => (d, Some(c)),
        None => (t, None),
    };
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let m: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let d: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(c) = clock {
        let mut f = c.splitn(3, ':');
        let h: i64 = f.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let mi: i64 = f.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let s: f64 = match f.next() {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => 0.0,
        };
        if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0.0..61.0).contains(&s) {
            return Err(bad());
        }
        secs += h * 3600 + mi * 60;
        return Ok(secs * NS_PER_SEC + (s * 1e9) as i64);
    }
    Ok(secs * NS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        // 2026-11-30T18:28:31Z, checked with `date -u -d @1796063311`.
        let t = 1_796_063_311 * NS_PER_SEC + 5_000;
        assert_eq!(rfc3339(t), "2026-11-30T18:28:31.000005Z");
        assert_eq!(short(t), "2026-11-30 18:28:31");
        assert_eq!(parse_time("2026-11-30T18:28:31Z", 0).unwrap(), t - 5_000);
        assert_eq!(parse_time("2026-11-30 18:28:31", 0).unwrap(), t - 5_000);
        assert_eq!(
            parse_time("2026-11-30", 0).unwrap(),
            (1_796_063_311 - 18 * 3600 - 28 * 60 - 31) * NS_PER_SEC
        );
        assert_eq!(
            rfc3339(parse_time("2000-02-29T23:59:59Z", 0).unwrap()),
            "2000-02-29T23:59:59.000000Z"
        );
        assert!(parse_time("2026-13-01", 0).is_err());
        assert!(parse_time("yesterday", 0).is_err());
    }

    #[test]
    fn durations_count_back_from_now() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400 * NS_PER_SEC);
        assert_eq!(
            parse_time("2h", 10 * 3600 * NS_PER_SEC).unwrap(),
            8 * 3600 * NS_PER_SEC
        );
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("30y").is_err());
        assert!(parse_duration("99999999999999999w").is_err());
    }
}
