//! Settings read from the environment, checked once at start-up with a
//! message that says which variable to set and to what.

use std::time::Duration;

/// A setting is missing or unreadable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {name} is not set: set it to {what}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// What it must hold.
        what: &'static str,
    },
    /// A variable holds something that cannot be used.
    #[error("environment variable {name}={value:?} is not valid: expected {what}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it must hold.
        what: &'static str,
    },
    /// The alarm refused its settings (levels, webhook URL).
    #[error(transparent)]
    Alarm(#[from] wildrydes_alarm::AlarmError),
}

/// A required, non-empty variable.
pub fn required(name: &'static str, what: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing { name, what }),
    }
}

/// An optional variable, or `default` when unset.
pub fn optional(name: &'static str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// An optional positive integer, or `default` when unset.
pub fn number(name: &'static str, default: u64, what: &'static str) -> Result<u64, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) if v.trim().is_empty() => Ok(default),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(ConfigError::Invalid {
                name,
                value: v,
                what,
            }),
    }
}

/// An optional duration in milliseconds, or `default` when unset.
pub fn millis(
    name: &'static str,
    default: Duration,
    what: &'static str,
) -> Result<Duration, ConfigError> {
    let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    number(name, default_ms, what).map(Duration::from_millis)
}
