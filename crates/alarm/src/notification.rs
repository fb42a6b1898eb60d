//! `Notification`: what operators are told about one transition, and the id
//! that makes telling them twice harmless.
//!
//! The id is `unicorn/STATE/reading time` (`Shadowfax/ALARM/2017-06-05T09:17:08.189Z`):
//! the same transition always gets the same id, whoever sends it and however
//! often. The alarm sends each transition once in practice, but a crash
//! between a receiver accepting it and the state table recording it makes the
//! retry send it again; receivers that must never show a repeat dedupe on
//! this id (SNS message attribute `notification_id`, webhook header
//! `Idempotency-Key` and field `id`).

use serde_json::{Value, json};
use wildrydes_core::{StatusTime, UnicornName};

use crate::detector::{AlarmState, Detector};
use crate::observation::{Observation, Position, Shape};

/// One transition of one unicorn, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Idempotency id: unicorn, new state, reading time.
    pub id: String,
    /// Which unicorn.
    pub unicorn: UnicornName,
    /// The state it went into.
    pub state: AlarmState,
    /// The magic points that caused it (an aggregate's minimum).
    pub magic_points: i16,
    /// Below this it is ALARM.
    pub threshold: i16,
    /// At or above this it is OK again.
    pub recovery_level: i16,
    /// When the figure was measured.
    pub status_time: StatusTime,
    /// Where the unicorn was last seen, if the record said.
    pub position: Option<Position>,
    /// Which kind of record it came from.
    pub shape: Shape,
}

/// Longest SNS subject is 99 characters (it must be under 100).
const MAX_SUBJECT_CHARS: usize = 99;

impl Notification {
    /// The notification for `observation` taking its unicorn to `state`.
    pub fn new(observation: &Observation, state: AlarmState, detector: &Detector) -> Self {
        Self {
            id: id(&observation.name, state, observation.status_time),
            unicorn: observation.name.clone(),
            state,
            magic_points: observation.magic_points,
            threshold: detector.threshold(),
            recovery_level: detector.recovery_level(),
            status_time: observation.status_time,
            position: observation.position,
            shape: observation.shape,
        }
    }

    /// A one-line subject: plain ASCII under 100 characters, as SNS (and
    /// e-mail) require.
    pub fn subject(&self) -> String {
        let name: String = self
            .unicorn
            .as_str()
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        let figures = match self.state {
            AlarmState::Alarm => format!("{} < {}", self.magic_points, self.threshold),
            AlarmState::Ok => format!("{} >= {}", self.magic_points, self.recovery_level),
        };
        let subject = format!("Wild Rydes {}: {name} magic points {figures}", self.state);
        subject.chars().take(MAX_SUBJECT_CHARS).collect()
    }

    /// The message for a human: which unicorn, ALARM or OK, the value, the
    /// levels, when, and where it was last seen.
    pub fn message(&self) -> String {
        let when = format!("{} UTC", self.status_time);
        let what = match (self.state, self.shape) {
            (AlarmState::Alarm, Shape::Reading) => format!(
                "unicorn {} has {} magic points, below the threshold of {}, at {when}",
                self.unicorn, self.magic_points, self.threshold
            ),
            (AlarmState::Alarm, Shape::Aggregate) => format!(
                "unicorn {} fell to {} magic points, below the threshold of {}, in the minute from {when}",
                self.unicorn, self.magic_points, self.threshold
            ),
            (AlarmState::Ok, Shape::Reading) => format!(
                "unicorn {} has recovered: {} magic points, at or above {} (threshold {} + hysteresis {}), at {when}",
                self.unicorn,
                self.magic_points,
                self.recovery_level,
                self.threshold,
                self.recovery_level - self.threshold
            ),
            (AlarmState::Ok, Shape::Aggregate) => format!(
                "unicorn {} has recovered: at least {} magic points, at or above {} (threshold {} + hysteresis {}), throughout the minute from {when}",
                self.unicorn,
                self.magic_points,
                self.recovery_level,
                self.threshold,
                self.recovery_level - self.threshold
            ),
        };
        let where_ = match self.position {
            Some(p) => format!(
                "last seen at latitude {:.6}, longitude {:.6}",
                p.latitude, p.longitude
            ),
            None => "position unknown".to_owned(),
        };
        format!("{}: {what}; {where_}.", self.state)
    }

    /// The notification as one JSON object: the console's line and the
    /// webhook's body. `text` is the message, so a chat incoming webhook
    /// (Slack, Mattermost, Google Chat) shows it as it is.
    pub fn to_json(&self) -> Value {
        json!({
            "notification": "wildrydes-alarm",
            "id": self.id,
            "unicorn": self.unicorn.as_str(),
            "state": self.state,
            "magicPoints": self.magic_points,
            "threshold": self.threshold,
            "recoveryLevel": self.recovery_level,
            "statusTime": self.status_time.to_string(),
            "source": self.shape,
            "position": self.position.map(|p| json!({
                "latitude": p.latitude,
                "longitude": p.longitude,
            })),
            "text": self.message(),
        })
    }
}

/// The idempotency id of `name` going to `state` because of the figure
/// measured at `time`.
pub fn id(name: &UnicornName, state: AlarmState, time: StatusTime) -> String {
    let t = time
        .to_datetime()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!("{name}/{state}/{t}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(magic: i16, position: Option<Position>, shape: Shape) -> Observation {
        Observation {
            name: UnicornName::new("Shadowfax").unwrap(),
            status_time: StatusTime::parse("2017-06-05 09:17:08.189").unwrap(),
            magic_points: magic,
            position,
            shape,
        }
    }

    /// The notification of that observation entering `state` at the
    /// default levels.
    fn at_default_levels(
        magic: i16,
        position: Option<Position>,
        shape: Shape,
        state: AlarmState,
    ) -> Notification {
        Notification::new(
            &observation(magic, position, shape),
            state,
            &Detector::default(),
        )
    }

    const HERE: Option<Position> = Some(Position {
        latitude: 42.264444250051326,
        longitude: -71.97582884770408,
    });

    #[test]
    fn an_alarm_says_who_what_levels_when_and_where() {
        let n = at_default_levels(45, HERE, Shape::Reading, AlarmState::Alarm);
        assert_eq!(n.id, "Shadowfax/ALARM/2017-06-05T09:17:08.189Z");
        assert_eq!(
            n.subject(),
            "Wild Rydes ALARM: Shadowfax magic points 45 < 50"
        );
        assert_eq!(
            n.message(),
            "ALARM: unicorn Shadowfax has 45 magic points, below the threshold of 50, at 2017-06-05 09:17:08.189 UTC; last seen at latitude 42.264444, longitude -71.975829."
        );
        let json = n.to_json();
        assert_eq!(json["state"], "ALARM");
        assert_eq!(json["magicPoints"], 45);
        assert_eq!(json["position"]["latitude"], 42.264444250051326);
        assert_eq!(json["text"], n.message());
    }

    #[test]
    fn a_recovery_from_an_aggregate_says_position_unknown() {
        let n = at_default_levels(61, None, Shape::Aggregate, AlarmState::Ok);
        assert_eq!(
            n.subject(),
            "Wild Rydes OK: Shadowfax magic points 61 >= 60"
        );
        assert_eq!(
            n.message(),
            "OK: unicorn Shadowfax has recovered: at least 61 magic points, at or above 60 (threshold 50 + hysteresis 10), throughout the minute from 2017-06-05 09:17:08.189 UTC; position unknown."
        );
        assert_eq!(n.to_json()["position"], Value::Null);
        assert_eq!(n.to_json()["source"], "aggregate");
    }

    #[test]
    fn subjects_are_plain_ascii_under_100_characters() {
        let mut o = observation(1, None, Shape::Reading);
        o.name = UnicornName::new(&format!("Étoile ☆ {}", "✨".repeat(23))).unwrap();
        let n = Notification::new(&o, AlarmState::Alarm, &Detector::new(32_000, 0).unwrap());
        let subject = n.subject();
        assert!(
            subject.is_ascii() && subject.chars().count() < 100,
            "{subject}"
        );
        assert!(
            subject.starts_with("Wild Rydes ALARM: ?toile ? ???"),
            "{subject}"
        );
    }
}
