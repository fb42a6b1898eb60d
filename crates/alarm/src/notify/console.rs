//! `ConsoleNotifier`: one JSON line per notification on standard output, for
//! a local run (and, on Lambda, in the function's log).

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;

use super::{Notifier, refused};
use crate::error::AlarmError;
use crate::notification::Notification;

/// Where lines go: standard output, or a buffer in tests.
type Sink = Arc<Mutex<dyn Write + Send>>;

/// Writes each notification as one JSON object on its own line.
pub struct ConsoleNotifier {
    /// The output; locked for a whole line so lines never interleave.
    out: Option<Sink>,
}

impl std::fmt::Debug for ConsoleNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = if self.out.is_some() {
            "writer"
        } else {
            "stdout"
        };
        f.debug_struct("ConsoleNotifier")
            .field("out", &target)
            .finish()
    }
}

impl Default for ConsoleNotifier {
    fn default() -> Self {
        Self::stdout()
    }
}

impl ConsoleNotifier {
    /// Writes to standard output.
    pub fn stdout() -> Self {
        Self { out: None }
    }

    /// Writes to `out` instead (tests).
    pub fn to_writer(out: Arc<Mutex<dyn Write + Send>>) -> Self {
        Self { out: Some(out) }
    }

    /// Writes `line` and a newline, then flushes: accepted means written.
    fn write_line(&self, line: &str) -> std::io::Result<()> {
        match &self.out {
            None => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")?;
                out.flush()
            }
            Some(sink) => {
                let mut out = sink.lock().unwrap_or_else(PoisonError::into_inner);
                writeln!(out, "{line}")?;
                out.flush()
            }
        }
    }
}

impl Notifier for ConsoleNotifier {
    fn name(&self) -> &str {
        "console"
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), AlarmError>> {
        let result = self
            .write_line(&notification.to_json().to_string())
            .map_err(|e| {
                refused(
                    "console",
                    notification,
                    format!("cannot write to standard output: {e}"),
                    true,
                )
            });
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::{AlarmState, Detector};
    use crate::observation::{Observation, Shape};

    #[tokio::test]
    async fn each_notification_is_one_json_line() {
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        let console = ConsoleNotifier::to_writer(buffer.clone());
        let o = Observation {
            name: wildrydes_core::UnicornName::new("Shadowfax").unwrap(),
            status_time: wildrydes_core::StatusTime::parse("2017-06-05 09:17:08.189").unwrap(),
            magic_points: 42,
            position: None,
            shape: Shape::Aggregate,
        };
        let n = Notification::new(&o, AlarmState::Alarm, &Detector::default());
        console.send(&n).await.unwrap();
        console.send(&n).await.unwrap();
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["notification"], "wildrydes-alarm");
        assert_eq!(lines[0]["state"], "ALARM");
        assert_eq!(lines[0]["id"], n.id);
    }
}
