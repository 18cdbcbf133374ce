//! When the golden-image loop may start a wave: days of the week and time ranges of the wall
//! clock in a named (IANA) time zone.
//!
//! Terragraph's rule (reference §7) is `<days>:<hhmm-hhmm>:<utc|local>`: one range, no wrap past
//! midnight (`2200-0200` never matches) and no zone but UTC or the server's. Here:
//! - several ranges, each `HH:MM-HH:MM`, half-open (`22:00-02:00` is open at 22:00 and 01:59,
//!   closed at 02:00); a range whose end is not after its start **crosses midnight** and belongs
//!   to the day it starts on (`fri 22:00-02:00` is open Friday 23:00 and Saturday 01:00, not
//!   Saturday 23:00); `00:00-24:00` is the whole day;
//! - days `mon`..`sun`, lists and spans (`mon-fri`, `sat,sun`, `fri-mon`), or `any`;
//! - the zone by IANA name (`Europe/Berlin`, `UTC`), with daylight saving as the zone's wall
//!   clock has it: on the spring-forward night the skipped hour never comes (a window inside it
//!   does not open that night, one that starts in it opens when the clock jumps), on the
//!   fall-back night the repeated hour is open both times.
//!
//! Text form (config, CLI, store): `"<days> <range>[,<range>…] <zone>"`, e.g.
//! `"mon-fri 22:00-02:00,12:00-13:00 Europe/Berlin"`.
//!
//! Pure: `now` is UNIX milliseconds passed in by the caller.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

/// A parsed window (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Bit `i` = `Weekday::num_days_from_monday() == i` is allowed.
    days: u8,
    /// Minutes since local midnight, `start < 1440`, `end <= 1440`; `end <= start` crosses
    /// midnight.
    ranges: Vec<(u16, u16)>,
    tz: Tz,
    text: String,
}

/// A window the parser cannot read; the message names the part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadWindow {
    /// Not `<days> <ranges> <zone>`.
    #[error("window {0:?}: want \"<days> <HH:MM-HH:MM>[,…] <IANA zone>\", e.g. \"mon-fri 22:00-02:00 Europe/Berlin\"")]
    Shape(String),
    #[error("window: bad days {0:?} (want any, mon..sun, lists and spans like mon-fri,sun)")]
    Days(String),
    #[error("window: bad time range {0:?} (want HH:MM-HH:MM, start and end different; 00:00-24:00 is the whole day)")]
    Range(String),
    #[error("window: unknown time zone {0:?} (want an IANA name like Europe/Berlin or UTC)")]
    Zone(String),
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_MINUTES: u16 = 24 * 60;
/// Longest window text accepted (operator input).
const MAX_LEN: usize = 512;

impl Window {
    /// Whether the window is open at `now` (UNIX ms).
    pub fn is_open(&self, now: u64) -> bool {
        let Some(local) = self.local(now) else { return false };
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let today = local.weekday();
        let yesterday = today.pred();
        self.ranges.iter().any(|&(start, end)| {
            if start < end {
                self.has(today) && (start..end).contains(&minute)
            } else {
                (self.has(today) && minute >= start) || (self.has(yesterday) && minute < end)
            }
        })
    }

    /// The first instant at or after `now` at which the window is open (`now` itself if it is
    /// open), or `None` if it never opens (no day allowed: not constructible) within 8 days.
    pub fn next_open(&self, now: u64) -> Option<u64> {
        if self.is_open(now) {
            return Some(now);
        }
        let today = self.local(now)?.date_naive();
        // A closed window opens at the start of one of its ranges (or, in a DST gap, when the
        // clock jumps past it): try every range start of the days around now.
        let mut best: Option<u64> = None;
        for offset in -1..=8i64 {
            let day = today + Duration::days(offset);
            if !self.has(day.weekday()) {
                continue;
            }
            for &(start, _) in &self.ranges {
                let Some(at) = self.instant(day, start) else { continue };
                if at > now && best.is_none_or(|b| at < b) && self.is_open(at) {
                    best = Some(at);
                }
            }
        }
        best
    }

    /// The window's text form.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn has(&self, day: Weekday) -> bool {
        self.days & (1 << day.num_days_from_monday()) != 0
    }

    fn local(&self, now: u64) -> Option<chrono::DateTime<Tz>> {
        let ms = i64::try_from(now).ok()?;
        Utc.timestamp_millis_opt(ms).single().map(|t| t.with_timezone(&self.tz))
    }

    /// UNIX ms of local `minute` on `day`: the earlier of a repeated time, and for a time the
    /// clock skips, the first minute after the jump.
    fn instant(&self, day: NaiveDate, minute: u16) -> Option<u64> {
        let naive = day.and_time(NaiveTime::from_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)?);
        // DST gaps are at most a few hours (Lord Howe's is 30 minutes, most are 60).
        for skip in 0..=240 {
            let t = naive + Duration::minutes(skip);
            if let Some(at) = self.tz.from_local_datetime(&t).earliest() {
                return u64::try_from(at.timestamp_millis()).ok();
            }
        }
        None
    }
}

impl FromStr for Window {
    type Err = BadWindow;

    fn from_str(text: &str) -> Result<Window, BadWindow> {
        if text.len() > MAX_LEN {
            return Err(BadWindow::Shape(text.chars().take(64).collect()));
        }
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [days, ranges, zone] = parts[..] else { return Err(BadWindow::Shape(text.to_string())) };
        let days = parse_days(days)?;
        let ranges = ranges.split(',').map(parse_range).collect::<Result<Vec<_>, _>>()?;
        let tz = Tz::from_str(zone).map_err(|_| BadWindow::Zone(zone.to_string()))?;
        Ok(Window { days, ranges, tz, text: parts.join(" ") })
    }
}

fn parse_days(text: &str) -> Result<u8, BadWindow> {
    if text.eq_ignore_ascii_case("any") {
        return Ok(0x7f);
    }
    let bad = || BadWindow::Days(text.to_string());
    let day = |s: &str| DAY_NAMES.iter().position(|d| d.eq_ignore_ascii_case(s)).ok_or_else(bad);
    let mut mask = 0u8;
    for item in text.split(',') {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                // A span wraps past Sunday: `fri-mon` is fri, sat, sun, mon.
                let mut d = a;
                loop {
                    mask |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => mask |= 1 << day(item)?,
        }
    }
    Ok(mask)
}

fn parse_range(text: &str) -> Result<(u16, u16), BadWindow> {
    let bad = || BadWindow::Range(text.to_string());
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let minute = |s: &str| -> Result<u16, BadWindow> {
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(h * 60 + m)
    };
    let (start, end) = (minute(a)?, minute(b)?);
    if start == end || start >= DAY_MINUTES {
        return Err(bad());
    }
    Ok((start, end))
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Window, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0).earliest().unwrap().timestamp_millis() as u64
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "",
            "mon-fri 22:00-02:00",
            "funday 22:00-02:00 UTC",
            "mon 22:00-22:00 UTC",
            "mon 25:00-02:00 UTC",
            "mon 2200-0200 UTC",
            "mon 22:00-02:00 Mars/Olympus",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad:?} should be refused");
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
        at(Tz::UTC, y, mo, d, h, mi)
    }

    #[test]
    fn a_range_crossing_midnight_belongs_to_the_day_it_starts() {
        // 2026-12-04 is a Friday.
        let w: Window = "fri 22:00-02:00 UTC".parse().unwrap();
        assert!(!w.is_open(utc(2026, 12, 4, 21, 59)));
        assert!(w.is_open(utc(2026, 12, 4, 22, 0)));
        assert!(w.is_open(utc(2026, 12, 5, 1, 59)), "Saturday 01:59 is still Friday night");
        assert!(!w.is_open(utc(2026, 12, 5, 2, 0)), "half-open: 02:00 is closed");
        assert!(!w.is_open(utc(2026, 12, 5, 23, 0)), "Saturday night is not Friday's");
        assert!(!w.is_open(utc(2026, 12, 4, 1, 0)), "Friday 01:00 belongs to Thursday night");
        assert_eq!(w.next_open(utc(2026, 12, 5, 2, 0)), Some(utc(2026, 12, 11, 22, 0)));
        assert_eq!(w.next_open(utc(2026, 12, 4, 23, 0)), Some(utc(2026, 12, 4, 23, 0)));
    }

    #[test]
    fn several_ranges_each_count() {
        let w: Window = "mon-fri 12:00-13:00,22:00-02:00 UTC".parse().unwrap();
        assert!(w.is_open(utc(2026, 12, 7, 12, 30)));
        assert!(!w.is_open(utc(2026, 12, 7, 14, 0)));
        assert_eq!(w.next_open(utc(2026, 12, 7, 14, 0)), Some(utc(2026, 12, 7, 22, 0)));
        // Saturday 01:00 is Friday night; Saturday noon is not open.
        assert!(w.is_open(utc(2026, 12, 12, 1, 0)));
        assert!(!w.is_open(utc(2026, 12, 12, 12, 30)));
        assert_eq!(w.next_open(utc(2026, 12, 12, 12, 30)), Some(utc(2026, 12, 14, 12, 0)));
    }

    #[test]
    fn spring_forward_in_berlin_opens_when_the_clock_jumps() {
        // 2026-03-29 (last Sunday of March): 02:00 CET → 03:00 CEST, at 01:00 UTC.
        let w: Window = "sun 02:30-03:30 Europe/Berlin".parse().unwrap();
        assert!(!w.is_open(utc(2026, 3, 29, 0, 59)), "01:59 CET");
        assert!(w.is_open(utc(2026, 3, 29, 1, 0)), "03:00 CEST, inside 02:30-03:30 wall time");
        assert!(!w.is_open(utc(2026, 3, 29, 1, 30)), "03:30 CEST: closed");
        assert_eq!(w.next_open(utc(2026, 3, 29, 0, 0)), Some(utc(2026, 3, 29, 1, 0)));
        // A week later the wall clock is CEST: 02:30 CEST = 00:30 UTC.
        assert_eq!(w.next_open(utc(2026, 3, 29, 2, 0)), Some(utc(2026, 4, 5, 0, 30)));
    }

    #[test]
    fn fall_back_in_berlin_is_open_for_both_repeated_hours_and_a_night_window_lasts_longer() {
        // 2026-10-25 (last Sunday of October): 03:00 CEST → 02:00 CET, at 01:00 UTC.
        let w: Window = "sun 02:00-03:00 Europe/Berlin".parse().unwrap();
        assert!(w.is_open(utc(2026, 10, 25, 0, 30)), "02:30 CEST");
        assert!(w.is_open(utc(2026, 10, 25, 1, 30)), "02:30 CET, the second time");
        assert!(!w.is_open(utc(2026, 10, 25, 2, 0)), "03:00 CET");
        let night: Window = "sat 22:00-04:00 Europe/Berlin".parse().unwrap();
        assert!(!night.is_open(utc(2026, 10, 24, 19, 59)), "21:59 CEST");
        assert!(night.is_open(utc(2026, 10, 24, 20, 0)), "22:00 CEST");
        assert!(night.is_open(utc(2026, 10, 25, 2, 59)), "03:59 CET: seven hours of wall clock six");
        assert!(!night.is_open(utc(2026, 10, 25, 3, 0)), "04:00 CET");
    }

    #[test]
    fn day_spans_wrap_past_sunday() {
        let w: Window = "fri-mon 00:00-24:00 UTC".parse().unwrap();
        // 2026-12-04 is a Friday.
        assert!(w.is_open(at(Tz::UTC, 2026, 12, 4, 12, 0)));
        assert!(w.is_open(at(Tz::UTC, 2026, 12, 7, 12, 0)));
        assert!(!w.is_open(at(Tz::UTC, 2026, 12, 8, 12, 0)));
    }
}
