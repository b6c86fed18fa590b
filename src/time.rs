//! Time as the server sees it: a clock the tests can drive, and the local wall-clock arithmetic
//! of timetables (weekday, "HH:MM", dates) in the schools' fixed UTC offset. A leaf: it must
//! never import another module of this crate.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Where "now" comes from. The server uses the system clock; tests use [`ManualClock`] so
/// a lesson's opening and end are driven, not slept through.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in milliseconds since the epoch.
    fn now(&self) -> Millis;
    /// A receiver that changes whenever the clock is moved by hand (never, for the system
    /// clock), so the scheduler re-evaluates at once.
    fn changes(&self) -> tokio::sync::watch::Receiver<Millis>;
}

/// The real clock.
#[derive(Debug)]
pub struct SystemClock {
    // Never sent on; held so `changes()` receivers stay open.
    tx: tokio::sync::watch::Sender<Millis>,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            tx: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as Millis
    }
    fn changes(&self) -> tokio::sync::watch::Receiver<Millis> {
        self.tx.subscribe()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
    tx: tokio::sync::watch::Sender<Millis>,
}

impl ManualClock {
    /// A clock standing at `now`.
    pub fn new(now: Millis) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: AtomicI64::new(now),
            tx: tokio::sync::watch::channel(now).0,
        })
    }

    /// Moves the clock to `t` and wakes whoever watches it.
    pub fn set(&self, t: Millis) {
        self.now.store(t, Ordering::SeqCst);
        self.tx.send_replace(t);
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: Millis) {
        self.set(self.now() + ms);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }
    fn changes(&self) -> tokio::sync::watch::Receiver<Millis> {
        self.tx.subscribe()
    }
}

/// Parses "+08:00" / "-05:30" / "Z".
pub fn parse_offset(s: &str) -> Option<UtcOffset> {
    if s == "Z" || s == "+00:00" {
        return Some(UtcOffset::UTC);
    }
    UtcOffset::parse(
        s,
        format_description!("[offset_hour sign:mandatory]:[offset_minute]"),
    )
    .ok()
}

/// Parses "HH:MM" (24 h).
pub fn parse_hhmm(s: &str) -> Option<Time> {
    Time::parse(
        s.trim(),
        format_description!("[hour padding:none]:[minute]"),
    )
    .ok()
}

/// Formats a time as "HH:MM".
pub fn fmt_hhmm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// Parses "YYYY-MM-DD".
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s.trim(), format_description!("[year]-[month]-[day]")).ok()
}

/// Formats a date as "YYYY-MM-DD".
pub fn fmt_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The instant of local `date` + `t` in `offset`, in epoch milliseconds.
pub fn local_to_millis(date: Date, t: Time, offset: UtcOffset) -> Millis {
    let odt = PrimitiveDateTime::new(date, t).assume_offset(offset);
    (odt.unix_timestamp_nanos() / 1_000_000) as Millis
}

/// The local date and time of `ms` in `offset`.
pub fn millis_to_local(ms: Millis, offset: UtcOffset) -> OffsetDateTime {
    let utc = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    utc.to_offset(offset)
}

/// ISO weekday, Monday = 1 … Sunday = 7.
pub fn iso_weekday(d: Date) -> u8 {
    d.weekday().number_from_monday()
}

/// RFC 3339 text of `ms` in `offset` (what the API returns beside the raw milliseconds).
pub fn rfc3339(ms: Millis, offset: UtcOffset) -> String {
    millis_to_local(ms, offset)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_arithmetic_in_china_time() {
        let off = parse_offset("+08:00").unwrap();
        let d = parse_date("2026-09-07").unwrap();
        assert_eq!(iso_weekday(d), 1, "7 Sep 2026 is a Monday");
        let t = parse_hhmm("8:00").unwrap();
        let ms = local_to_millis(d, t, off);
        // 08:00 in Beijing is midnight UTC.
        assert_eq!(ms % 86_400_000, 0);
        assert_eq!(rfc3339(ms, off), "2026-09-07T08:00:00+08:00");
        assert_eq!(fmt_hhmm(millis_to_local(ms, off).time()), "08:00");
        assert!(parse_hhmm("25:00").is_none());
        assert!(parse_hhmm("nine").is_none());
        assert!(parse_date("2026-02-30").is_none());
        assert!(parse_offset("8").is_none());
    }

    #[test]
    fn manual_clock_wakes_watchers() {
        let c = ManualClock::new(1000);
        let mut rx = c.changes();
        c.advance(500);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 1500);
        assert_eq!(c.now(), 1500);
    }
}
