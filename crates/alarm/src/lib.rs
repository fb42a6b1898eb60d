//! The Wild Rydes alarm: warns operators when a unicorn's magic points fall
//! below 50, and again when they recover, exactly one notification per
//! transition.
//!
//! # Layout
//!
//! - [`observation`]: `Observation`, the figure judged in a record: a
//!   reading's `MagicPoints` or an aggregate's `MinMagicPoints`.
//! - [`detector`]: `Detector`, threshold and hysteresis; `AlarmState`.
//! - [`notification`]: `Notification`, the message and its idempotency id.
//! - [`notify`]: the `Notifier` trait and its SNS, webhook, console and
//!   in-memory implementations.
//! - [`store`]: `StateStore`, each unicorn's state in DynamoDB, changed only
//!   by conditional writes; a commit also records the transition in the
//!   history table, in the same transaction.
//! - [`history`]: `AlarmHistory`, the operators' console's reads: a
//!   unicorn's transitions, the open alarms, newest first, by Query.
//! - [`alarm`]: `MagicAlarm`, the batch logic (parse, group, walk, claim,
//!   notify, commit), shared by the Lambda function and the daemon.
//! - [`config`]: `AlarmConfig`, the alarm's settings, typed; the Lambda
//!   function (`wildrydes-lambda`) fills it from the environment, the daemon
//!   from its flags.
//! - [`error`]: `AlarmError`, the one error type.
//!
//! What a record means is core's (`Reading`, `Aggregate`); how a batch
//! arrives (a Lambda event, a shard's GetRecords) is the adapters'. This
//! crate decides when a figure is a transition and makes sure each
//! transition is told once.

pub mod alarm;
pub mod config;
pub mod detector;
pub mod error;
pub mod history;
pub mod notification;
pub mod notify;
pub mod observation;
pub mod store;

pub use alarm::{AlarmOutcome, AlarmSettings, MagicAlarm};
pub use config::AlarmConfig;
pub use detector::{AlarmState, Detector};
pub use error::AlarmError;
pub use history::{AlarmHistory, Transition};
pub use notification::Notification;
pub use notify::{ConsoleNotifier, MemoryNotifier, Notifier, SnsNotifier, WebhookNotifier};
pub use observation::Observation;
pub use store::StateStore;
