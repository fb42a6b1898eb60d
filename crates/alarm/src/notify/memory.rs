//! `MemoryNotifier`: keeps what it is sent, and can be told to refuse, so
//! tests see exactly which notifications went out and how often.

use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;

use super::{Notifier, refused};
use crate::error::AlarmError;
use crate::notification::Notification;

/// A notifier that records notifications in memory; clones share the record.
#[derive(Debug, Clone)]
pub struct MemoryNotifier {
    /// Its name among the configured notifiers.
    name: String,
    /// What was accepted and what is still to be refused, shared by clones so
    /// a test keeps a handle on the notifier it gave away.
    inner: Arc<Mutex<Record>>,
}

/// The shared record.
#[derive(Debug, Default)]
struct Record {
    /// Every notification accepted, in order.
    accepted: Vec<Notification>,
    /// Calls to `send`, accepted or not.
    attempts: u32,
    /// How many of the next calls fail (transiently).
    refusals_left: u32,
    /// Whether every call fails (permanently).
    broken: bool,
}

impl MemoryNotifier {
    /// An empty recorder called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            inner: Arc::default(),
        }
    }

    /// Makes the next `n` sends fail with a transient error.
    pub fn refuse_next(&self, n: u32) {
        self.lock().refusals_left = n;
    }

    /// Makes every send fail with a permanent error until `repair`.
    pub fn break_down(&self) {
        self.lock().broken = true;
    }

    /// Undoes [`Self::break_down`].
    pub fn repair(&self) {
        self.lock().broken = false;
    }

    /// The notifications accepted so far, in order.
    pub fn accepted(&self) -> Vec<Notification> {
        self.lock().accepted.clone()
    }

    /// The ids of the notifications accepted so far, in order.
    pub fn ids(&self) -> Vec<String> {
        self.lock().accepted.iter().map(|n| n.id.clone()).collect()
    }

    /// Calls to `send` so far, refused ones included.
    pub fn attempts(&self) -> u32 {
        self.lock().attempts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Notifier for MemoryNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), AlarmError>> {
        let result = {
            let mut record = self.lock();
            record.attempts += 1;
            if record.broken {
                Err(refused(
                    &self.name,
                    notification,
                    "broken down (test)",
                    false,
                ))
            } else if record.refusals_left > 0 {
                record.refusals_left -= 1;
                Err(refused(&self.name, notification, "refused (test)", true))
            } else {
                record.accepted.push(notification.clone());
                Ok(())
            }
        };
        Box::pin(std::future::ready(result))
    }
}
