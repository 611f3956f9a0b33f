//! Schedules: 5-field cron expressions read in an IANA time zone, their fire times, and what
//! happens to fire times missed while no Metronome led (a restart, a failover).
//!
//! As Metronome, a schedule's next fire time is computed in its zone and kept in UTC. A fire
//! time missed while Metronome was down is still started if it is within the schedule's
//! `startingDeadlineSeconds` (the newest such one, once); older ones are skipped and counted.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A parsed schedule: the expression and its zone.
#[derive(Clone, Debug)]
pub struct Cron {
    cron: croner::Cron,
    zone: Tz,
}

/// Why a schedule cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The cron expression (Metronome's message).
    #[error("Can not read cron expression \"{0}\"")]
    Cron(String),
    /// The time zone (Metronome's message).
    #[error("No time zone found with this id: \"{0}\"")]
    Zone(String),
}

/// The time zone named `name` (an IANA name such as `America/Chicago`).
pub fn zone(name: &str) -> Result<Tz, Invalid> {
    name.parse::<Tz>().map_err(|_| Invalid::Zone(name.into()))
}

impl Cron {
    /// Reads `expr` (five fields: minute hour day-of-month month day-of-week) in `zone`.
    /// Aliases (`@daily`) and seconds are not Metronome's syntax and are refused, as are
    /// expressions that never fire (`0 0 31 2 *`).
    pub fn new(expr: &str, zone_name: &str) -> Result<Cron, Invalid> {
        let zone = zone(zone_name)?;
        let bad = || Invalid::Cron(expr.into());
        if expr.trim().starts_with('@') || expr.split_whitespace().count() != 5 {
            return Err(bad());
        }
        let cron = croner::Cron::new(expr).parse().map_err(|_| bad())?;
        let cron = Cron { cron, zone };
        // An expression that matches no date (February 31st) never fires.
        let probe = DateTime::<Utc>::from_timestamp(0, 0).unwrap_or_default();
        cron.next_after(probe).ok_or_else(bad)?;
        Ok(cron)
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }
}

/// What to do about the fire times between the last one handled and now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatchUp {
    /// A missed fire time still within the starting deadline: start a run for it now.
    pub start: Option<DateTime<Utc>>,
    /// Missed fire times skipped (past their deadline, or older than the one started).
    pub skipped: u64,
    /// The last fire time handled, to remember.
    pub handled: Option<DateTime<Utc>>,
}

/// At most this many missed fire times are looked at (a minutely schedule down for two years
/// is still answered quickly); the rest are counted as skipped in bulk.
const CATCH_UP_LIMIT: u64 = 1_000_000;

/// Decides about the fire times of `cron` after `last` up to and including `now`.
pub fn catch_up(
    cron: &Cron,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    deadline_secs: u64,
) -> CatchUp {
    let mut missed = Vec::new();
    let mut t = last;
    let mut seen = 0;
    while let Some(next) = cron.next_after(t) {
        if next > now || seen >= CATCH_UP_LIMIT {
            break;
        }
        seen += 1;
        // Keep only the newest: the older ones are skipped either way.
        missed.clear();
        missed.push(next);
        t = next;
    }
    let Some(&newest) = missed.last() else {
        return CatchUp {
            start: None,
            skipped: 0,
            handled: None,
        };
    };
    let late = now.signed_duration_since(newest).num_milliseconds();
    let in_time = late <= i64::try_from(deadline_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    CatchUp {
        start: in_time.then_some(newest),
        skipped: if in_time { seen - 1 } else { seen },
        handled: Some(newest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_minute_fires_on_the_next_minute_boundary() {
        let c = Cron::new("* * * * *", "UTC").unwrap();
        assert_eq!(
            c.next_after(at("2024-01-01T10:00:59.500Z")),
            Some(at("2024-01-01T10:01:00Z"))
        );
        assert_eq!(
            c.next_after(at("2024-01-01T10:01:00Z")),
            Some(at("2024-01-01T10:02:00Z"))
        );
    }

    #[test]
    fn expressions_are_read_in_their_time_zone() {
        // 09:00 in Chicago is 15:00 UTC in January (CST, -6) and 14:00 in July (CDT, -5).
        let c = Cron::new("0 9 * * *", "America/Chicago").unwrap();
        assert_eq!(
            c.next_after(at("2024-01-10T00:00:00Z")),
            Some(at("2024-01-10T15:00:00Z"))
        );
        assert_eq!(
            c.next_after(at("2024-07-10T00:00:00Z")),
            Some(at("2024-07-10T14:00:00Z"))
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_in_metronome_words() {
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "@daily",
            "0 0 31 2 *",
            "* * * * * *",
            "x y z a b",
        ] {
            assert_eq!(
                Cron::new(bad, "UTC").unwrap_err(),
                Invalid::Cron(bad.into()),
                "{bad}"
            );
        }
        let e = Cron::new("* * * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(
            e.to_string(),
            "No time zone found with this id: \"Mars/Olympus\""
        );
    }

    #[test]
    fn a_missed_fire_time_within_the_deadline_is_started_older_ones_skipped() {
        let c = Cron::new("* * * * *", "UTC").unwrap();
        let last = at("2024-01-01T10:00:00Z");
        // Down for 3.5 minutes: 10:01, 10:02, 10:03 missed; 10:03 is 30 s late.
        let up = at("2024-01-01T10:03:30Z");
        let r = catch_up(&c, last, up, 60);
        assert_eq!(r.start, Some(at("2024-01-01T10:03:00Z")));
        assert_eq!(r.skipped, 2);
        assert_eq!(r.handled, Some(at("2024-01-01T10:03:00Z")));
        // With a 10 s deadline all three are skipped.
        let r = catch_up(&c, last, up, 10);
        assert_eq!((r.start, r.skipped), (None, 3));
        // Nothing missed.
        let r = catch_up(&c, last, at("2024-01-01T10:00:30Z"), 60);
        assert_eq!(
            r,
            CatchUp {
                start: None,
                skipped: 0,
                handled: None
            }
        );
    }

    #[test]
    fn zones_parse_by_iana_name() {
        assert!(zone("Europe/Berlin").is_ok());
        assert_eq!(zone("UTC").unwrap().name(), "UTC");
        let _ = Utc.timestamp_opt(0, 0);
    }
}
