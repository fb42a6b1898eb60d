//! `AlarmError`: everything that can go wrong in the alarm, each variant
//! saying what failed, on what, and what to do about it.

/// Why the alarm could not start, judge, notify or remember.
#[derive(Debug, thiserror::Error)]
pub enum AlarmError {
    /// Nothing would receive the notifications: an alarm that tells no one is
    /// worse than none, so the function refuses to start.
    #[error(
        "no notifier is configured: give an SNS topic ARN, a webhook URL or the console (ALARM_TOPIC_ARN, ALARM_WEBHOOK_URL or ALARM_CONSOLE=true)"
    )]
    NoNotifier,

    /// Two notifiers with one name: which of them accepted a notification
    /// would be ambiguous.
    #[error("two notifiers are named {name}: give each a distinct name")]
    DuplicateNotifier {
        /// The name.
        name: String,
    },

    /// The invocation's time ran out before the work was done.
    #[error("deadline reached while {what}: the record is delivered again")]
    Deadline {
        /// What was being done.
        what: String,
    },

    /// Threshold and hysteresis that cannot work together.
    #[error(
        "magic threshold {threshold} with hysteresis {hysteresis} is not usable: the hysteresis must be 0 or more and threshold + hysteresis at most 32767 (MAGIC_THRESHOLD, MAGIC_HYSTERESIS)"
    )]
    Levels {
        /// The threshold asked for.
        threshold: i64,
        /// The hysteresis asked for.
        hysteresis: i64,
    },

    /// The webhook URL cannot be used.
    #[error("webhook URL {shown} is not usable: {reason} (ALARM_WEBHOOK_URL)")]
    WebhookUrl {
        /// The URL without its path and query, which often hold a secret.
        shown: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An https webhook needs the system's root certificates to check the
    /// receiver, and none could be loaded.
    #[error(
        "cannot load the system's root certificates for the https webhook: {message}; install ca-certificates or use the SNS notifier"
    )]
    RootCertificates {
        /// What rustls-native-certs reported.
        message: String,
    },

    /// A notifier did not accept a notification.
    #[error("notifier {notifier} did not accept notification {id}: {reason}")]
    Delivery {
        /// Which notifier (`sns`, `webhook`, `console`, ...).
        notifier: String,
        /// The notification's idempotency id.
        id: String,
        /// What the receiver or the network said.
        reason: String,
        /// Whether sending again may work (throttling, 5xx, timeout); a
        /// permanent refusal (403, 404, bad request) is not retried within
        /// the invocation, but the batch still fails so nothing is lost.
        transient: bool,
    },

    /// The alarm-state table could not be read or written.
    #[error("cannot {action} the state of unicorn {unicorn} in table {table}: {message}")]
    StateTable {
        /// What was being done (`read`, `claim`, `commit`, `release`).
        action: &'static str,
        /// The table.
        table: String,
        /// The unicorn.
        unicorn: String,
        /// The SDK's account of the failure.
        message: String,
        /// Whether sending again may work (throttling, 5xx, network).
        transient: bool,
    },

    /// An item of the alarm-state table is not one this program wrote.
    #[error(
        "the state of unicorn {unicorn} in table {table} has no valid {attribute} attribute: was it written by another program? Delete the item to start that unicorn afresh"
    )]
    StateItem {
        /// The table.
        table: String,
        /// The unicorn.
        unicorn: String,
        /// The attribute.
        attribute: &'static str,
    },

    /// The history of transitions, or the open alarms, could not be read.
    #[error("cannot read {what} from table {table}: {message}")]
    History {
        /// What was being read (`the transitions of unicorn Shadowfax`,
        /// `the open alarms (index OpenAlarms)`).
        what: String,
        /// The table.
        table: String,
        /// The SDK's account of the failure.
        message: String,
        /// Whether sending again may work (throttling, 5xx, network).
        transient: bool,
    },

    /// An item read as a transition is not one this program wrote.
    #[error(
        "a transition of unicorn {unicorn} in table {table} has no valid {attribute} attribute: was it written by another program?"
    )]
    TransitionItem {
        /// The table.
        table: String,
        /// The unicorn, as far as the item tells.
        unicorn: String,
        /// The attribute.
        attribute: &'static str,
    },
}

impl AlarmError {
    /// Whether trying the same thing again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Delivery { transient, .. }
            | Self::StateTable { transient, .. }
            | Self::History { transient, .. } => *transient,
            _ => false,
        }
    }
}
