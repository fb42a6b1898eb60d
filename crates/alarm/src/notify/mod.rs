//! Notifiers: where operators are told. A small trait, so that several can be
//! configured at once (an SNS topic for e-mail and paging, a chat webhook, the
//! console for a local run) and tests can record what was sent.
//!
//! A notifier *accepts* a notification when its receiver has durably taken it
//! (SNS answered with a message id, the webhook answered 2xx, the line is
//! written). Only then does the alarm record the transition; a notifier that
//! does not accept is retried, and the batch fails at that record if it never
//! does.

mod console;
mod memory;
mod sns;
mod webhook;

pub use console::ConsoleNotifier;
pub use memory::MemoryNotifier;
pub use sns::SnsNotifier;
pub use webhook::{DEFAULT_WEBHOOK_TIMEOUT, WebhookNotifier};

use std::fmt;

use futures::future::BoxFuture;

use crate::error::AlarmError;
use crate::notification::Notification;

/// Something that tells operators about a transition.
pub trait Notifier: fmt::Debug + Send + Sync {
    /// A short name, distinct among the notifiers configured together: the
    /// alarm records which notifiers accepted a transition under it, so a
    /// retry sends only to those that did not.
    fn name(&self) -> &str;

    /// Delivers `notification`; `Ok` once the receiver has accepted it. A
    /// failure is an [`AlarmError::Delivery`] that says whether to retry.
    fn send<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), AlarmError>>;
}

/// The delivery failure of `notifier` for `notification`.
pub(crate) fn refused(
    notifier: &str,
    notification: &Notification,
    reason: impl Into<String>,
    transient: bool,
) -> AlarmError {
    AlarmError::Delivery {
        notifier: notifier.to_owned(),
        id: notification.id.clone(),
        reason: reason.into(),
        transient,
    }
}
