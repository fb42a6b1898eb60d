//! Stopping on request: the one way every long-running binary (the daemon,
//! the producer, `local`) hears Ctrl-C and SIGTERM.

use std::fmt;

/// The signal that asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT: Ctrl-C at a terminal.
    Interrupt,
    /// SIGTERM: what `kill`, systemd, ECS and Kubernetes send.
    Terminate,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Interrupt => "Ctrl-C",
            Self::Terminate => "SIGTERM",
        })
    }
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM, naming the signal.
/// Fails only when the signals cannot be listened for at all.
pub async fn stop_requested() -> std::io::Result<Stop> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = interrupt.recv() => Ok(Stop::Interrupt),
            _ = terminate.recv() => Ok(Stop::Terminate),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| Stop::Interrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named_as_operators_know_them() {
        assert_eq!(Stop::Interrupt.to_string(), "Ctrl-C");
        assert_eq!(Stop::Terminate.to_string(), "SIGTERM");
    }
}
