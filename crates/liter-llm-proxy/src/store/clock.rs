//! Time for the stores: an injectable [`Clock`], budget [`Period`]s and the window
//! arithmetic that resets a scope's spend on schedule.
//!
//! Every time the stores write or compare is a [`UnixMillis`] taken from the store's
//! clock, never from the database server, so a test can move time with a
//! [`ManualClock`] and two gateways agree on windows as long as their clocks agree.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since 1970-01-01T00:00:00Z (UTC). Every time in the stores is one.
pub type UnixMillis = i64;

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
/// One UTC day in milliseconds (the bucket of [`super::GroupBy::Day`]).
pub const DAY_MS: i64 = 24 * HOUR;

/// Where a store reads the current time from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now_ms(&self) -> UnixMillis;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> UnixMillis {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            // A clock before 1970 is broken; 0 keeps the arithmetic well-defined.
            Err(_) => 0,
        }
    }
}

/// A clock that only moves when told to (tests, simulations).
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `now`.
    pub fn new(now: UnixMillis) -> Self {
        Self(AtomicI64::new(now))
    }

    /// Moves the clock to `now` (backwards too).
    pub fn set(&self, now: UnixMillis) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> UnixMillis {
        self.0.load(Ordering::SeqCst)
    }
}

/// A budget period such as `budget_duration = "30d"`: a scope's spend starts again
/// from zero every `period`, counted from when the scope was first seen.
///
/// Written as a positive integer and a unit: `s`, `m` (minutes), `h`, `d`, `w`, or
/// `mo` (a month of exactly 30 days, so windows never drift with calendar months).
/// Serialized as that string; [`fmt::Display`] gives it back in canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    count: u32,
    unit: PeriodUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PeriodUnit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl PeriodUnit {
    fn millis(self) -> i64 {
        match self {
            Self::Second => SECOND,
            Self::Minute => MINUTE,
            Self::Hour => HOUR,
            Self::Day => DAY_MS,
            Self::Week => 7 * DAY_MS,
            Self::Month => 30 * DAY_MS,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::Second => "s",
            Self::Minute => "m",
            Self::Hour => "h",
            Self::Day => "d",
            Self::Week => "w",
            Self::Month => "mo",
        }
    }
}

impl Period {
    /// The length of one window in milliseconds (always > 0).
    pub fn millis(self) -> i64 {
        i64::from(self.count) * self.unit.millis()
    }

    /// A period of `days` days (`days > 0`).
    pub fn days(days: u32) -> Option<Self> {
        (days > 0).then_some(Self {
            count: days,
            unit: PeriodUnit::Day,
        })
    }

    /// A period of `secs` seconds (`secs > 0`).
    pub fn seconds(secs: u32) -> Option<Self> {
        (secs > 0).then_some(Self {
            count: secs,
            unit: PeriodUnit::Second,
        })
    }

    /// The start of the window that contains `now`, for a scope whose current stored
    /// window started at `start`. Windows follow each other back to back from the first
    /// start, so a reset happens on schedule even if nothing was spent for a while. A
    /// clock that went backwards keeps the stored window.
    pub fn window_start(self, start: UnixMillis, now: UnixMillis) -> UnixMillis {
        let len = self.millis();
        if now < start.saturating_add(len) {
            return start;
        }
        let elapsed = now.saturating_sub(start);
        start.saturating_add(elapsed - elapsed % len)
    }
}

/// Why a period string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid period {0:?}: expected a positive integer followed by s, m, h, d, w or mo (e.g. \"30d\")")]
pub struct PeriodParseError(pub String);

impl FromStr for Period {
    type Err = PeriodParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PeriodParseError(s.to_owned());
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (digits, unit) = t.split_at(split);
        let count: u32 = digits.parse().map_err(|_| err())?;
        let unit = match unit.trim() {
            "s" => PeriodUnit::Second,
            "m" => PeriodUnit::Minute,
            "h" => PeriodUnit::Hour,
            "d" => PeriodUnit::Day,
            "w" => PeriodUnit::Week,
            "mo" => PeriodUnit::Month,
            _ => return Err(err()),
        };
        if count == 0 {
            return Err(err());
        }
        Ok(Self { count, unit })
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.suffix())
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The UTC calendar date (`YYYY-MM-DD`) of a day number (days since 1970-01-01).
///
/// Howard Hinnant's `civil_from_days`, valid for the whole `i64` day range we use.
pub fn day_string(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Days since 1970-01-01 of a UTC calendar date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 time (`2027-01-31T12:00:00Z`, `...+02:00`, fractional seconds
/// allowed) or a bare date (`2027-01-31`, midnight UTC) into Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<UnixMillis> {
    let s = s.trim();
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (date, time) = match s.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let (year, month, day) = (
        num(parts.next()?)?,
        num(parts.next()?)?,
        num(parts.next()?)?,
    );
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month[(month - 1) as usize] {
        return None;
    }
    let mut millis = days_from_civil(year, month, day) * DAY_MS;
    if let Some(t) = time {
        let (clock, offset_ms) = if let Some(c) = t.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else {
            let at = t.rfind(['+', '-'])?;
            let (c, off) = t.split_at(at);
            let (h, m) = off[1..].split_once(':')?;
            let (h, m) = (num(h)?, num(m)?);
            if h > 23 || m > 59 {
                return None;
            }
            let sign = if off.starts_with('-') { -1 } else { 1 };
            (c, sign * (h * HOUR + m * MINUTE))
        };
        let mut hms = clock.splitn(3, ':');
        let (h, m) = (num(hms.next()?)?, num(hms.next()?)?);
        let sec = hms.next()?;
        let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
        let sec = num(whole)?;
        if h > 23 || m > 59 || sec > 60 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let frac_ms = frac
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(3)
            .fold(0, |acc, b| acc * 10 + i64::from(b - b'0'));
        millis += h * HOUR + m * MINUTE + sec * SECOND + frac_ms - offset_ms;
    }
    Some(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-02T00:00:01Z"), Some(DAY_MS + SECOND));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        assert_eq!(
            parse_rfc3339("2000-03-01T02:00:00.5+02:00"),
            Some(951_868_800_500)
        );
        assert_eq!(parse_rfc3339("2000-02-29"), Some(951_782_400_000));
        for bad in [
            "2001-02-29",
            "2000-13-01",
            "x",
            "2000-01-01T25:00:00Z",
            "2000-01-01T10:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_and_prints_periods() {
        for (s, ms) in [
            ("30d", 30 * DAY_MS),
            ("1h", HOUR),
            ("15m", 15 * MINUTE),
            ("10s", 10 * SECOND),
            ("2w", 14 * DAY_MS),
            ("1mo", 30 * DAY_MS),
        ] {
            let p: Period = s.parse().unwrap();
            assert_eq!(p.millis(), ms);
            assert_eq!(p.to_string(), s);
        }
        for bad in ["", "d", "0d", "30", "30x", "-1d", "1.5d"] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_follow_the_schedule() {
        let p = Period::days(1).unwrap();
        assert_eq!(p.window_start(1_000, 1_000 + DAY_MS - 1), 1_000);
        assert_eq!(p.window_start(1_000, 1_000 + DAY_MS), 1_000 + DAY_MS);
        assert_eq!(
            p.window_start(1_000, 1_000 + 5 * DAY_MS + 7),
            1_000 + 5 * DAY_MS
        );
        assert_eq!(p.window_start(1_000, 0), 1_000);
    }

    #[test]
    fn formats_days() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(day_string(19_723), "2024-01-01");
        assert_eq!(day_string(19_782), "2024-02-29");
        assert_eq!(day_string(-1), "1969-12-31");
    }
}
