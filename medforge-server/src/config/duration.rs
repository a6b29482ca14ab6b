//! Durations in the config: written as humantime (`"30s"`, `"10m"`,
//! `"2h"`, `"1day"`; `"0"` is zero). A whole number is read as seconds,
//! so that the keys that used to be `*_secs` (still read under their old
//! names: `super::legacy`) keep their values. Written back as humantime.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"30s\", \"10m\" or \"2h\" (or a whole number of seconds)")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v).map(Duration::from_secs).map_err(|_| E::custom("a duration cannot be negative"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        let v = v.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Ok(Duration::from_secs(secs));
        }
        humantime::parse_duration(v)
            .map_err(|e| E::custom(format!("{v:?} is not a duration ({e}): write it as \"30s\", \"10m\", \"2h\"")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
    struct T {
        #[serde(with = "super")]
        d: Duration,
    }

    fn read(text: &str) -> Result<T, String> {
        use figment::providers::Format;
        figment::Figment::from(figment::providers::Toml::string(text)).extract().map_err(|e| e.to_string())
    }

    #[test]
    fn humantime_and_whole_seconds_read_and_humantime_is_written() {
        for (text, secs) in [
            ("d = \"30s\"", 30),
            ("d = \"10m\"", 600),
            ("d = \"2h\"", 7200),
            ("d = \"0\"", 0),
            ("d = 45", 45),
            ("d = \"90\"", 90),
            ("d = \"1h 30m\"", 5400),
        ] {
            let t: T = read(text).expect(text);
            assert_eq!(t.d, Duration::from_secs(secs), "{text}");
        }
        for bad in ["d = \"soon\"", "d = -1", "d = \"5 fortnights\""] {
            assert!(read(bad).is_err(), "{bad} accepted");
        }
        let written = serde_json::to_value(T { d: Duration::from_secs(5400) }).expect("write");
        assert_eq!(written["d"], "1h 30m");
    }
}
