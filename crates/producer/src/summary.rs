//! `Summary`: what a run did, per unicorn and in total, printed when it ends
//! and used for the exit code.

use std::fmt;
use std::time::Duration;

use wildrydes_core::{StatusTime, UnicornName};

/// Rows of the per-unicorn table shown at most; unicorns with losses are
/// always shown.
const SHOWN_ROWS: usize = 20;
/// Lag worth mentioning in the summary.
const NOTABLE_LAG: Duration = Duration::from_secs(2);

/// What happened to one unicorn's readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnicornTally {
    /// The unicorn.
    pub name: UnicornName,
    /// Readings simulated.
    pub generated: u64,
    /// Readings Kinesis acknowledged.
    pub sent: u64,
    /// Times one of its readings was sent again after a failure.
    pub retried: u64,
    /// Readings given up on after the last attempt, or refused for good.
    pub failed: u64,
    /// Readings still buffered when the run was aborted, never sent.
    pub unsent: u64,
}

impl UnicornTally {
    /// An empty tally for `name`.
    pub fn new(name: UnicornName) -> Self {
        Self {
            name,
            generated: 0,
            sent: 0,
            retried: 0,
            failed: 0,
            unsent: 0,
        }
    }

    /// Whether any of its readings was lost.
    pub fn lost_any(&self) -> bool {
        self.failed > 0 || self.unsent > 0
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The stream written to.
    pub stream: String,
    /// The seed used: pass it to `--seed` (with `--start-time`) to replay.
    pub seed: u64,
    /// Per unicorn, in fleet order.
    pub unicorns: Vec<UnicornTally>,
    /// `StatusTime` of the first and last simulated seconds, if any.
    pub simulated: Option<(StatusTime, StatusTime)>,
    /// PutRecords calls made.
    pub calls: u64,
    /// With `--aggregate`, the Kinesis records acknowledged, which carried
    /// the `sent` readings; `None` when each reading was a record.
    pub aggregated_records: Option<u64>,
    /// Real time the run took.
    pub elapsed: Duration,
    /// Largest lag of generation behind simulated time.
    pub max_behind: Duration,
    /// Open shards at the end, for explaining a lag.
    pub shards: usize,
    /// Whether a stop was requested (Ctrl-C, SIGTERM) before the end.
    pub interrupted: bool,
    /// Why the run stopped early on an error, if it did.
    pub aborted: Option<String>,
}

impl Summary {
    /// The sum over all unicorns.
    pub fn total(&self) -> (u64, u64, u64, u64, u64) {
        self.unicorns.iter().fold((0, 0, 0, 0, 0), |t, u| {
            (
                t.0 + u.generated,
                t.1 + u.sent,
                t.2 + u.retried,
                t.3 + u.failed,
                t.4 + u.unsent,
            )
        })
    }

    /// Whether every reading generated was acknowledged.
    pub fn is_complete(&self) -> bool {
        self.aborted.is_none() && !self.unicorns.iter().any(UnicornTally::lost_any)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (generated, sent, retried, failed, unsent) = self.total();
        write!(
            f,
            "stream {}, seed {}, {} unicorn(s)",
            self.stream,
            self.seed,
            self.unicorns.len()
        )?;
        if let Some((first, last)) = self.simulated {
            write!(f, ", simulated {first} to {last}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  generated {generated}, sent {sent}, retried {retried}, failed {failed}, unsent {unsent}; {} PutRecords calls in {:.1}s",
            self.calls,
            self.elapsed.as_secs_f64()
        )?;
        if let Some(records) = self.aggregated_records {
            let per_record = if records == 0 {
                0.0
            } else {
                sent as f64 / records as f64
            };
            writeln!(
                f,
                "  aggregated: {sent} readings in {records} Kinesis records ({per_record:.1} per record)"
            )?;
        }
        if self.max_behind >= NOTABLE_LAG {
            // Aggregated, a shard's bytes are what run out.
            let limit = match self.aggregated_records {
                Some(_) => "1 MiB/s",
                None => "1,000 records/s",
            };
            writeln!(
                f,
                "  fell behind simulated time by up to {:.1}s: {} shard(s) take {limit} each; lower --time-scale or --count, or add shards",
                self.max_behind.as_secs_f64(),
                self.shards
            )?;
        }
        if self.interrupted {
            writeln!(
                f,
                "  stopped on request; buffered readings were flushed first"
            )?;
        }
        if let Some(reason) = &self.aborted {
            writeln!(f, "  aborted: {reason}")?;
        }
        writeln!(
            f,
            "  {:<32} {:>9} {:>9} {:>8} {:>7} {:>7}",
            "unicorn", "generated", "sent", "retried", "failed", "unsent"
        )?;
        let mut hidden = 0usize;
        for (i, u) in self.unicorns.iter().enumerate() {
            if i >= SHOWN_ROWS && !u.lost_any() {
                hidden += 1;
                continue;
            }
            writeln!(
                f,
                "  {:<32} {:>9} {:>9} {:>8} {:>7} {:>7}",
                u.name.as_str(),
                u.generated,
                u.sent,
                u.retried,
                u.failed,
                u.unsent
            )?;
        }
        if hidden > 0 {
            writeln!(f, "  ... and {hidden} more unicorn(s), all delivered")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(name: &str, failed: u64) -> UnicornTally {
        UnicornTally {
            generated: 10,
            sent: 10 - failed,
            failed,
            ..UnicornTally::new(UnicornName::new(name).unwrap())
        }
    }

    fn summary(unicorns: Vec<UnicornTally>) -> Summary {
        Summary {
            stream: "wildrydes".into(),
            seed: 42,
            unicorns,
            simulated: None,
            calls: 3,
            aggregated_records: None,
            elapsed: Duration::from_secs(1),
            max_behind: Duration::ZERO,
            shards: 1,
            interrupted: false,
            aborted: None,
        }
    }

    #[test]
    fn totals_and_completeness() {
        let ok = summary(vec![tally("A", 0), tally("B", 0)]);
        assert_eq!(ok.total(), (20, 20, 0, 0, 0));
        assert!(ok.is_complete());
        let lossy = summary(vec![tally("A", 0), tally("B", 2)]);
        assert!(!lossy.is_complete());
        let text = lossy.to_string();
        assert!(
            text.contains("generated 20, sent 18, retried 0, failed 2, unsent 0"),
            "{text}"
        );
    }

    #[test]
    fn aggregated_runs_say_how_many_records_carried_the_readings() {
        let plain = summary(vec![tally("A", 0), tally("B", 0)]);
        assert!(!plain.to_string().contains("aggregated"), "{plain}");
        let aggregated = Summary {
            aggregated_records: Some(3),
            ..plain
        };
        let text = aggregated.to_string();
        assert!(
            text.contains("\n  aggregated: 20 readings in 3 Kinesis records (6.7 per record)\n"),
            "{text}"
        );
    }

    #[test]
    fn long_fleets_show_the_first_rows_and_every_loss() {
        let mut unicorns: Vec<_> = (0..30).map(|i| tally(&format!("U{i}"), 0)).collect();
        unicorns[25] = tally("Lossy", 1);
        let text = summary(unicorns).to_string();
        assert!(text.contains("Lossy"));
        assert!(!text.contains("U26"));
        assert!(
            text.contains("... and 9 more unicorn(s), all delivered"),
            "{text}"
        );
    }
}
