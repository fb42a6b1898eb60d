//! What the producer shows while it runs: on a terminal, one progress line
//! redrawn in place (counts, rate, simulated time, lag); on a pipe, one `.`
//! per acknowledged reading (aggregated or not), as the workshop's producer
//! printed one per record; nothing with `--quiet`. Logs and the final
//! summary go to stderr, never here.

use std::io::Write;
use std::time::Duration;

use tokio::time::Instant;
use wildrydes_core::StatusTime;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// A progress line redrawn in place (stdout is a terminal).
    Line,
    /// One `.` per acknowledged reading (stdout is a pipe or a file).
    Dots,
    /// Nothing (`--quiet`).
    Quiet,
}

impl OutputMode {
    /// The mode for this process: quiet if asked, else a line on a terminal
    /// and dots elsewhere.
    pub fn detect(quiet: bool) -> Self {
        use std::io::IsTerminal as _;
        if quiet {
            Self::Quiet
        } else if std::io::stdout().is_terminal() {
            Self::Line
        } else {
            Self::Dots
        }
    }
}

/// Counts shown on the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Readings acknowledged so far.
    pub sent: u64,
    /// Entries sent again after a failure.
    pub retried: u64,
    /// Readings given up on.
    pub failed: u64,
    /// Readings generated but not yet acknowledged.
    pub buffered: usize,
    /// With `--aggregate`, the Kinesis records that carried the `sent`
    /// readings; `None` when each reading is a record.
    pub records: Option<u64>,
    /// Simulated time of the newest reading generated.
    pub simulated: Option<StatusTime>,
    /// How far generation trails simulated time converted to real time.
    pub behind: Duration,
}

/// Redraw the line at most this often: enough to look live, cheap at any rate.
const REDRAW_EVERY: Duration = Duration::from_millis(200);
/// Lag below this is normal scheduling noise and not shown.
const SHOWN_LAG: Duration = Duration::from_secs(1);

/// The progress display.
pub struct Progress {
    /// How to show progress.
    mode: OutputMode,
    /// Where to show it (stdout in the binary, a buffer in tests).
    out: Box<dyn Write + Send>,
    /// When the line was last drawn, with the count then, for the rate.
    last: Option<(Instant, u64)>,
    /// Records per second over the last redraw interval.
    rate: f64,
    /// Whether a line is on screen (so the end needs a newline).
    drawn: bool,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Progress {
    /// A display in `mode` writing to `out`.
    pub fn new(mode: OutputMode, out: Box<dyn Write + Send>) -> Self {
        Self {
            mode,
            out,
            last: None,
            rate: 0.0,
            drawn: false,
        }
    }

    /// A display in `mode` on standard output.
    pub fn stdout(mode: OutputMode) -> Self {
        Self::new(mode, Box::new(std::io::stdout()))
    }

    /// Reports `n` more readings acknowledged.
    pub fn acknowledged(&mut self, n: usize) {
        if self.mode == OutputMode::Dots && n > 0 {
            // A broken pipe only loses dots; the run goes on.
            let _ = self.out.write_all(".".repeat(n).as_bytes());
            let _ = self.out.flush();
            self.drawn = true;
        }
    }

    /// Redraws the progress line if it is due.
    pub fn update(&mut self, snapshot: &Snapshot, now: Instant) {
        if self.mode != OutputMode::Line {
            return;
        }
        match self.last {
            Some((at, _)) if now.duration_since(at) < REDRAW_EVERY => return,
            Some((at, sent)) => {
                let seconds = now.duration_since(at).as_secs_f64();
                self.rate = snapshot.sent.saturating_sub(sent) as f64 / seconds;
            }
            None => {}
        }
        self.last = Some((now, snapshot.sent));
        let line = render(snapshot, self.rate);
        let _ = write!(self.out, "\r{line}\x1b[K");
        let _ = self.out.flush();
        self.drawn = true;
    }

    /// Ends the display: the final line (if any) and a newline.
    pub fn finish(&mut self, snapshot: &Snapshot) {
        if self.mode == OutputMode::Line {
            let _ = write!(self.out, "\r{}\x1b[K", render(snapshot, self.rate));
            self.drawn = true;
        }
        if self.drawn {
            let _ = writeln!(self.out);
            let _ = self.out.flush();
        }
    }
}

/// The progress line's text.
fn render(s: &Snapshot, rate: f64) -> String {
    let mut line = format!("{} sent ({rate:.0}/s)", s.sent);
    if let Some(records) = s.records {
        line.push_str(&format!(" in {records} records"));
    }
    line.push_str(&format!(
        ", {} retried, {} failed, {} buffered",
        s.retried, s.failed, s.buffered
    ));
    if let Some(t) = s.simulated {
        line.push_str(&format!(", simulated {t}"));
    }
    if s.behind >= SHOWN_LAG {
        line.push_str(&format!(", {:.1}s behind", s.behind.as_secs_f64()));
    }
    line
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer tests can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn snapshot(sent: u64) -> Snapshot {
        Snapshot {
            sent,
            retried: 2,
            failed: 0,
            buffered: 5,
            records: None,
            simulated: StatusTime::parse("2017-06-05 09:17:08.189").ok(),
            behind: Duration::from_secs(3),
        }
    }

    #[test]
    fn dots_are_one_per_record() {
        let out = Shared::default();
        let mut p = Progress::new(OutputMode::Dots, Box::new(out.clone()));
        p.acknowledged(3);
        p.acknowledged(2);
        p.update(&snapshot(5), Instant::now());
        p.finish(&snapshot(5));
        assert_eq!(out.text(), ".....\n");
    }

    #[test]
    fn quiet_shows_nothing() {
        let out = Shared::default();
        let mut p = Progress::new(OutputMode::Quiet, Box::new(out.clone()));
        p.acknowledged(3);
        p.update(&snapshot(3), Instant::now());
        p.finish(&snapshot(3));
        assert_eq!(out.text(), "");
    }

    #[tokio::test(start_paused = true)]
    async fn the_line_is_redrawn_in_place_with_a_rate() {
        let out = Shared::default();
        let mut p = Progress::new(OutputMode::Line, Box::new(out.clone()));
        p.update(&snapshot(0), Instant::now());
        tokio::time::advance(Duration::from_millis(500)).await;
        p.update(&snapshot(100), Instant::now());
        // Too soon: not redrawn.
        p.update(&snapshot(150), Instant::now());
        p.finish(&snapshot(150));
        let text = out.text();
        assert_eq!(text.matches('\r').count(), 3, "{text:?}");
        assert!(text.contains("100 sent (200/s), 2 retried, 0 failed, 5 buffered, simulated 2017-06-05 09:17:08.189, 3.0s behind"), "{text:?}");
        assert!(text.ends_with("\x1b[K\n"));
    }

    #[test]
    fn aggregated_progress_counts_records_too() {
        let s = Snapshot {
            records: Some(4),
            ..snapshot(1_000)
        };
        assert_eq!(
            render(&s, 50.0),
            "1000 sent (50/s) in 4 records, 2 retried, 0 failed, 5 buffered, simulated 2017-06-05 09:17:08.189, 3.0s behind"
        );
    }
}
