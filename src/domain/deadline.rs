//! Deadlines: how long one run of a job may take. A submission's `timeout` (an ISO 8601
//! duration such as `PT10M`, or a number of seconds) and its operation's limit in
//! `LONGRUN_MAX_RUNTIME` (`compare=10m,import=4h`, `*=1h` for every other operation); the smaller
//! holds. A run past its limit is stopped like a cancel and ends FAILED with a
//! `urn:longrun:problem:timeout` error. Pure rules; the worker applies them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// The longest limit a submission may ask for: 30 days.
pub const TIMEOUT_MAX: Duration = Duration::from_secs(30 * 86_400);

/// The problem type of a job stopped at its limit.
pub const TIMEOUT_PROBLEM: &str = "urn:longrun:problem:timeout";

/// An ISO 8601 duration with a fixed length: days, hours, minutes and seconds (`P1DT2H`,
/// `PT10M`, `PT0.5S`) or weeks (`P2W`). Years and months have no fixed length and are refused.
///
/// Written here because the duration crates read years and months as some number of days,
/// which is exactly what a limit must not guess.
pub fn parse_iso8601(s: &str) -> Option<Duration> {
    let rest = s.strip_prefix(['P', 'p'])?;
    if rest.is_empty() {
        return None;
    }
    let (date, time) = match rest.find(['T', 't']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if time == Some("") {
        return None;
    }
    let mut secs = 0f64;
    let mut read = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        let mut order = 0;
        for ch in part.chars() {
            if ch.is_ascii_digit() || ch == '.' || ch == ',' {
                number.push(if ch == ',' { '.' } else { ch });
                continue;
            }
            let at = units
                .iter()
                .position(|(u, _)| u.eq_ignore_ascii_case(&ch))?;
            // Each unit once, in order, with a number before it.
            if at < order || number.is_empty() {
                return None;
            }
            order = at + 1;
            let n: f64 = number.parse().ok()?;
            secs += n * units[at].1;
            number.clear();
        }
        number.is_empty().then_some(())
    };
    read(date, &[('W', 7.0 * 86_400.0), ('D', 86_400.0)])?;
    if let Some(t) = time {
        read(t, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    // Whole milliseconds: `1.001` seconds is 1,001 ms, not a hair below it.
    (secs.is_finite() && secs < 1e12).then(|| Duration::from_millis((secs * 1000.0).round() as u64))
}

/// The ISO 8601 form of a limit, as the job document shows it: `PT30S`, `PT1H30M`, `P2DT3H`,
/// `PT0.25S`.
pub fn to_iso8601(d: Duration) -> String {
    let ms = d.as_millis();
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    let (h, rest) = (rest / 3_600_000, rest % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if h + m + s + frac > 0 || days == 0 {
        out.push('T');
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if frac > 0 {
            let f = format!("{frac:03}");
            out.push_str(&format!("{s}.{}S", f.trim_end_matches('0')));
        } else if s > 0 || (h == 0 && m == 0) {
            out.push_str(&format!("{s}S"));
        }
    }
    out
}

/// A submission's `timeout`: a JSON number of seconds, or text (an ISO 8601 duration, or a
/// number of seconds, as XML and forms carry it); more than nothing and at most `TIMEOUT_MAX`.
/// `name` names it in the error.
pub fn as_timeout(v: &Value, name: &str) -> Result<Option<Duration>, String> {
    let secs = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => {
            let s = s.trim();
            // Digits and a point only: no signs, exponents or `inf`.
            if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
                s.parse::<f64>().ok()
            } else {
                parse_iso8601(s).map(|d| d.as_secs_f64())
            }
        }
        _ => None,
    };
    match secs {
        Some(n) if n.is_finite() && n >= 0.001 && n <= TIMEOUT_MAX.as_secs_f64() => {
            Ok(Some(Duration::from_millis((n * 1000.0).round() as u64)))
        }
        _ => Err(format!(
            "`{name}` must be an ISO 8601 duration of days, hours, minutes and seconds (PT10M, \
             P1DT2H) or a number of seconds, from 1 ms to 30 days; not {v}"
        )),
    }
}

/// `LONGRUN_MAX_RUNTIME`: the longest run of each operation named, and of every other one
/// (`*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaxRuntime {
    per_operation: BTreeMap<String, Duration>,
    others: Option<Duration>,
}

impl MaxRuntime {
    /// Read `compare=10m,import=4h,*=1h` (durations as `30s`, `5m`, `2h`); empty is no limit.
    pub fn parse(s: &str) -> Result<MaxRuntime, String> {
        let mut out = MaxRuntime::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (op, limit) = item.split_once('=').ok_or_else(|| {
                format!("`{item}` is not operation=duration (as compare=10m, or *=1h)")
            })?;
            let (op, limit) = (op.trim(), limit.trim());
            let d = humantime::parse_duration(limit)
                .map_err(|e| format!("`{item}`: {e} (use e.g. 30s, 10m, 2h)"))?;
            if d.is_zero() {
                return Err(format!("`{item}`: a limit must be more than nothing"));
            }
            if op == "*" {
                out.others = Some(d);
            } else if op.is_empty() {
                return Err(format!("`{item}` names no operation"));
            } else {
                out.per_operation.insert(op.to_string(), d);
            }
        }
        Ok(out)
    }

    /// The limit of the operation `op` (its own, else `*`'s), if any.
    pub fn of(&self, op: &str) -> Option<Duration> {
        self.per_operation.get(op).copied().or(self.others)
    }

    /// The limit of a run of `op` whose submission asked for `requested`: the smaller of the
    /// two, or whichever is set.
    pub fn limit(&self, op: &str, requested: Option<Duration>) -> Option<Duration> {
        match (self.of(op), requested) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What a run of `op` stopped at `limit` names as that limit, for its error.
    pub fn describe(&self, op: &str, limit: Duration) -> String {
        let form = to_iso8601(limit);
        match self.of(op) {
            Some(d) if d == limit => format!("{form}, the operation's LONGRUN_MAX_RUNTIME"),
            _ => format!("{form}, the submission's timeout"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iso8601_durations_of_fixed_length() {
        let s = |v: &str| parse_iso8601(v).map(|d| d.as_millis());
        assert_eq!(s("PT30S"), Some(30_000));
        assert_eq!(s("PT10M"), Some(600_000));
        assert_eq!(s("PT1H30M"), Some(5_400_000));
        assert_eq!(s("P1DT2H"), Some(93_600_000));
        assert_eq!(s("P2W"), Some(1_209_600_000));
        assert_eq!(s("PT0.5S"), Some(500));
        assert_eq!(s("PT0,25S"), Some(250));
        assert_eq!(s("pt2m"), Some(120_000));
        for bad in [
            "", "P", "PT", "P1M", "P1Y", "PT1H1H", "PT1M1H", "T1S", "PTS", "P1DT", "PT1",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn limits_are_shown_in_their_shortest_form() {
        let f = |ms: u64| to_iso8601(Duration::from_millis(ms));
        assert_eq!(f(30_000), "PT30S");
        assert_eq!(f(5_400_000), "PT1H30M");
        assert_eq!(f(93_600_000), "P1DT2H");
        assert_eq!(f(86_400_000), "P1D");
        assert_eq!(f(250), "PT0.25S");
        assert_eq!(f(3_600_000), "PT1H");
        for ms in [1, 999, 61_001, 90_061_500] {
            let text = f(ms);
            assert_eq!(
                parse_iso8601(&text).unwrap().as_millis() as u64,
                ms,
                "{text}"
            );
        }
    }

    #[test]
    fn a_timeout_is_seconds_or_a_duration() {
        let t = |v: Value| as_timeout(&v, "async.timeout").map(|d| d.map(|d| d.as_millis()));
        assert_eq!(t(json!(30)), Ok(Some(30_000)));
        assert_eq!(t(json!(1.5)), Ok(Some(1_500)));
        assert_eq!(t(json!("PT2M")), Ok(Some(120_000)));
        assert_eq!(t(json!(" 45 ")), Ok(Some(45_000)));
        assert_eq!(t(json!("")), Ok(None));
        for bad in [
            json!(0),
            json!(-5),
            json!("P1M"),
            json!("soon"),
            json!(true),
            json!(31 * 86_400),
            json!("1e3"),
            json!("+5"),
            json!("inf"),
        ] {
            let e = t(bad.clone()).unwrap_err();
            assert!(e.contains("async.timeout"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_smaller_limit_holds() {
        let m = MaxRuntime::parse("compare=10m, import=4h,*=1h").unwrap();
        let min = |n: u64| Some(Duration::from_secs(n * 60));
        assert_eq!(m.limit("compare", None), min(10));
        assert_eq!(m.limit("compare", min(2)), min(2));
        assert_eq!(m.limit("import", min(300)), min(240));
        assert_eq!(m.limit("noop", None), min(60));
        assert_eq!(MaxRuntime::default().limit("noop", None), None);
        assert_eq!(MaxRuntime::default().limit("noop", min(3)), min(3));
        assert!(m
            .describe("compare", Duration::from_secs(600))
            .contains("LONGRUN_MAX_RUNTIME"));
        assert!(m
            .describe("compare", Duration::from_secs(120))
            .contains("timeout"));
        for bad in ["compare", "compare=soon", "=1m", "compare=0s"] {
            assert!(MaxRuntime::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(MaxRuntime::parse("").unwrap(), MaxRuntime::default());
    }
}
