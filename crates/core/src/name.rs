//! `UnicornName`: who a record is about; the partition key of both the streams and the table.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::error::truncate_for_display;

/// Longest accepted name, in characters: the workshop's SQL declared `Name VARCHAR(32)`.
pub const MAX_NAME_CHARS: usize = 32;

/// A validated unicorn name: 1 to 32 characters, not blank, no control characters.
///
/// Cheap to clone (shared), because the window and the writers hold one per
/// open minute and per item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnicornName(Arc<str>);

/// Why a name was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty or only white space.
    #[error("is empty")]
    Empty,
    /// Longer than [`MAX_NAME_CHARS`].
    #[error("has {chars} characters, more than the {MAX_NAME_CHARS} allowed: {shown}")]
    TooLong {
        /// Its length in characters.
        chars: usize,
        /// The start of it, for the operator.
        shown: String,
    },
    /// Holds a control character (a newline, a NUL, an escape...).
    #[error("contains control characters: {shown}")]
    ControlCharacter {
        /// The name with the control characters escaped.
        shown: String,
    },
}

impl UnicornName {
    /// Validates `s` as a unicorn name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        if s.trim().is_empty() {
            return Err(NameError::Empty);
        }
        let chars = s.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(NameError::TooLong {
                chars,
                shown: truncate_for_display(s),
            });
        }
        if s.chars().any(char::is_control) {
            return Err(NameError::ControlCharacter {
                shown: truncate_for_display(s),
            });
        }
        Ok(Self(Arc::from(s)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UnicornName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for UnicornName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Serialises as its text: the `Name` of a reading's or an aggregate's JSON.
impl Serialize for UnicornName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_workshop_names() {
        for ok in [
            "Shadowfax",
            "Rocinante",
            "Bucephalus 2",
            "Ünïcörn",
            &"x".repeat(32),
        ] {
            assert_eq!(UnicornName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_bad_names_with_the_reason() {
        assert_eq!(UnicornName::new(""), Err(NameError::Empty));
        assert_eq!(UnicornName::new("  \t"), Err(NameError::Empty));
        assert!(matches!(
            UnicornName::new(&"y".repeat(33)),
            Err(NameError::TooLong { chars: 33, .. })
        ));
        assert!(matches!(
            UnicornName::new("bad\nname"),
            Err(NameError::ControlCharacter { .. })
        ));
        assert!(matches!(
            UnicornName::new("nul\0"),
            Err(NameError::ControlCharacter { .. })
        ));
    }
}
