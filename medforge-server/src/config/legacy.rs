//! Keys that were renamed, read under their old names: the durations that
//! used to count seconds (`runtime.stop_timeout_secs = 30`) are now
//! written as durations (`runtime.stop_timeout = "30s"`). A file or an
//! environment that still says the old name gets the new key, unless it
//! names the new one too. (A serde alias cannot do this: the defaults
//! already provide the new key, and serde refuses both.)

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// (section, old key, new key).
const RENAMED: [(&str, &str, &str); 8] = [
    ("runtime", "stop_timeout_secs", "stop_timeout"),
    ("runtime", "poll_interval_secs", "poll_interval"),
    ("runtime", "ready_timeout_secs", "ready_timeout"),
    ("firewall", "check_interval_secs", "check_interval"),
    ("http", "header_read_timeout_secs", "header_read_timeout"),
    ("http", "keep_alive_idle_secs", "keep_alive_idle"),
    ("tls", "reload_check_secs", "reload_check"),
    ("auth", "invite_valid_secs", "invite_valid"),
];

/// A provider whose old key names are read as the new ones.
pub struct Legacy<P>(pub P);

impl<P: Provider> Provider for Legacy<P> {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut data = self.0.data()?;
        for dict in data.values_mut() {
            for (section, old, new) in RENAMED {
                if let Some(Value::Dict(_, table)) = dict.get_mut(section)
                    && let Some(value) = table.remove(old)
                {
                    table.entry(new.to_owned()).or_insert(value);
                }
            }
        }
        Ok(data)
    }
}
