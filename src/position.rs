//! One oplog position type for the whole engine: parsed from what operators type (`t:i`, a bare
//! `t`, a local or UTC time) and from the old state file's strings, printed one way (`t:i`, or with
//! its UTC and local times), and serialized as `{"t": .., "i": ..}` in the manifest and reports.
//! Converting to and from the driver's `Timestamp` happens here and nowhere else.

use std::fmt;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use mongodb::bson::Timestamp;
use serde::{Deserialize, Serialize};

/// A BSON oplog timestamp: seconds since the epoch and an ordinal within that second. Ordered as
/// the oplog is (seconds first).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Position {
    pub t: u32,
    pub i: u32,
}

impl Position {
    pub const fn new(t: u32, i: u32) -> Self {
        Position { t, i }
    }

    /// The last position of second `t`: "up to and including that second".
    pub const fn end_of_second(t: u32) -> Self {
        Position { t, i: u32::MAX }
    }

    /// A point typed by an operator (`--until`, `restore_until`): an oplog timestamp `t:i` or `t`
    /// (the whole second), a local time `YYYY-mm-dd HH:MM[:SS]` (also with `T`), or a time with an
    /// offset (`…Z`, `…+08:00`). Times mean the end of that second.
    pub fn parse_point(text: &str) -> Result<Position, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "\"{text}\" is neither a time (2015-11-24 18:30:00, local time) nor an oplog timestamp (1448361000:1)"
            )
        };
        if let Some((secs, inc)) = t.split_once(':') {
            if !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()) {
                return match (secs.parse(), inc.parse()) {
                    (Ok(t), Ok(i)) => Ok(Position::new(t, i)),
                    _ => Err(bad()),
                };
            }
        }
        if let Ok(secs) = t.parse::<u32>() {
            return Ok(Position::end_of_second(secs));
        }
        if let Ok(with_offset) = DateTime::parse_from_rfc3339(t) {
            return seconds(with_offset.timestamp())
                .map(Position::end_of_second)
                .ok_or_else(bad);
        }
        for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(t, format) {
                let local = naive.and_local_timezone(Local).earliest().ok_or_else(bad)?;
                return seconds(local.timestamp())
                    .map(Position::end_of_second)
                    .ok_or_else(bad);
            }
        }
        Err(bad())
    }

    /// The old state file's strings (`{"time": "1448345493", "inc": "7"}`).
    pub fn from_state_strings(time: &str, inc: &str) -> Option<Position> {
        Some(Position::new(
            time.trim().parse().ok()?,
            inc.trim().parse().ok()?,
        ))
    }

    /// `2015-11-24 18:30:00` in the machine's local time (what the cycle names use).
    pub fn local_time(&self) -> String {
        Local
            .timestamp_opt(i64::from(self.t), 0)
            .single()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    }

    /// `2015-11-24 18:30:00 (1448361000:1)`, local time: for listings.
    pub fn label(&self) -> String {
        format!("{} ({self})", self.local_time())
    }

    /// `1448361000:1 (2015-11-24 10:30:00 UTC, 2015-11-24 18:30:00 local)`: for summaries and
    /// refusals, where the operator must not have to guess the time zone.
    pub fn describe(&self) -> String {
        let utc = Utc
            .timestamp_opt(i64::from(self.t), 0)
            .single()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        format!("{self} ({utc}, {} local)", self.local_time())
    }
}

fn seconds(unix: i64) -> Option<u32> {
    u32::try_from(unix).ok()
}

/// `t:i`; the end of a second prints as `t:max` would not read back, so it prints as `t` (which
/// `parse_point` reads as the whole second).
impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.i == u32::MAX {
            write!(f, "{}", self.t)
        } else {
            write!(f, "{}:{}", self.t, self.i)
        }
    }
}

impl From<Timestamp> for Position {
    fn from(ts: Timestamp) -> Self {
        Position::new(ts.time, ts.increment)
    }
}

impl From<Position> for Timestamp {
    fn from(p: Position) -> Self {
        Timestamp {
            time: p.t,
            increment: p.i,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_operators_type() {
        assert_eq!(
            Position::parse_point("1448361000:1"),
            Ok(Position::new(1448361000, 1))
        );
        assert_eq!(
            Position::parse_point(" 1448361000 "),
            Ok(Position::end_of_second(1448361000))
        );
        assert_eq!(
            Position::parse_point("2015-11-24T10:30:00Z"),
            Ok(Position::end_of_second(1448361000))
        );
        assert_eq!(
            Position::parse_point("2015-11-24T18:30:00+08:00"),
            Ok(Position::end_of_second(1448361000))
        );
        let local = Position::parse_point("2015-11-24 18:30").unwrap();
        assert_eq!(local.local_time(), "2015-11-24 18:30:00");
        assert!(Position::parse_point("yesterday").is_err());
        assert!(Position::parse_point("12:xx").is_err());
    }

    #[test]
    fn orders_and_prints_one_way() {
        assert!(Position::new(5, 9) < Position::new(6, 0));
        assert!(Position::new(6, 1) > Position::new(6, 0));
        assert_eq!(Position::new(5, 9).to_string(), "5:9");
        assert_eq!(
            Position::parse_point(&Position::end_of_second(7).to_string()),
            Ok(Position::end_of_second(7))
        );
        assert!(Position::new(0, 1)
            .describe()
            .starts_with("0:1 (1970-01-01 00:00:00 UTC, "));
        assert_eq!(
            Position::from_state_strings(" 12", "3 "),
            Some(Position::new(12, 3))
        );
        let ts: Timestamp = Position::new(1, 2).into();
        assert_eq!(Position::from(ts), Position::new(1, 2));
        assert_eq!(
            serde_json::to_string(&Position::new(1, 2)).unwrap(),
            r#"{"t":1,"i":2}"#
        );
    }
}
