//! `Ledger`: a record of every reading Kinesis acknowledged, for verifiers.
//!
//! `--ledger FILE` creates (or truncates) FILE and appends one JSON object per
//! acknowledged reading, one per line, in the order acknowledgements arrived:
//!
//! ```text
//! {"shard_id":"shardId-000000000000","sequence_number":"4959...","partition_key":"Shadowfax","data":{"Name":"Shadowfax","StatusTime":"2017-06-05 09:17:08.189",...}}
//! ```
//!
//! - `shard_id`, `sequence_number`: where Kinesis stored the record, as its
//!   PutRecords answer said; together they identify the record in the stream,
//!   so a verifier can match the ledger against what it reads back.
//! - `sub_sequence_number`, only with `--aggregate`: the reading's index in
//!   the KPL aggregated record that carried it, right after
//!   `sequence_number`: the pair is how the KCL addresses a user record.
//!   A line without it is a reading that was a record of its own.
//!
//!   ```text
//!   {"shard_id":"shardId-000000000000","sequence_number":"4959...","sub_sequence_number":17,"partition_key":"Shadowfax","data":{...}}
//!   ```
//! - `partition_key`: the key it was sent with (the unicorn's name; with
//!   `--aggregate`, its own key in the aggregate, whatever the record's).
//! - `data`: the reading exactly as sent, byte for byte: the workshop's JSON
//!   object, embedded as is (not as a string).
//!
//! Guarantees a verifier can build on:
//! - only acknowledged readings appear, each once (a reading that finally
//!   failed is reported by the producer and absent here);
//! - a unicorn's lines are in `StatusTime` order, one per simulated second,
//!   with a gap only where a reading finally failed; within one shard,
//!   sequence numbers increase down the file (with `--aggregate`, the
//!   readings of one record share its sequence number and follow each other
//!   in sub-sequence order);
//! - to recompute the expected per-minute aggregates, group `data` by `Name`
//!   and by the minute of `StatusTime` and take SUM(`Distance`) and
//!   MIN/MAX of `MagicPoints` and `HealthPoints`.
//!
//! Lines are flushed after each PutRecords call, so a stopped producer leaves
//! a ledger of everything acknowledged up to then.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::value::RawValue;

/// A ledger file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write ledger {path}: {source}; pass a writable path to --ledger")]
pub struct LedgerError {
    /// The ledger file.
    pub path: PathBuf,
    /// What the operating system said.
    #[source]
    pub source: std::io::Error,
}

/// One line of a ledger, as read back by a verifier.
#[derive(Debug, Deserialize)]
pub struct LedgerEntry {
    /// The shard that stored the record.
    pub shard_id: String,
    /// The record's sequence number in that shard.
    pub sequence_number: String,
    /// The reading's index in its KPL aggregated record (`--aggregate`);
    /// `None` for a reading that was a record of its own.
    #[serde(default)]
    pub sub_sequence_number: Option<u64>,
    /// The partition key it was sent with.
    pub partition_key: String,
    /// The record's data, the exact bytes sent.
    pub data: Box<RawValue>,
}

impl LedgerEntry {
    /// Parses one ledger line.
    pub fn parse(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// An open ledger file.
#[derive(Debug)]
pub struct Ledger {
    /// Its path, for messages.
    path: PathBuf,
    /// Buffered, flushed after each call's acknowledgements.
    out: BufWriter<File>,
}

impl Ledger {
    /// Creates `path`, truncating an existing file: one ledger per run.
    pub fn create(path: &Path) -> Result<Self, LedgerError> {
        let file = File::create(path).map_err(|source| LedgerError {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            out: BufWriter::new(file),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the line of one acknowledged reading; `sub_sequence_number`
    /// is its index in the aggregated record that carried it, if any.
    pub fn record(
        &mut self,
        shard_id: &str,
        sequence_number: &str,
        sub_sequence_number: Option<usize>,
        partition_key: &str,
        data: &str,
    ) -> Result<(), LedgerError> {
        let line = line(
            shard_id,
            sequence_number,
            sub_sequence_number,
            partition_key,
            data,
        );
        writeln!(self.out, "{line}").map_err(|source| self.error(source))
    }

    /// Writes buffered lines to the file.
    pub fn flush(&mut self) -> Result<(), LedgerError> {
        self.out.flush().map_err(|source| self.error(source))
    }

    /// An I/O failure on this ledger, naming its path.
    fn error(&self, source: std::io::Error) -> LedgerError {
        LedgerError {
            path: self.path.clone(),
            source,
        }
    }
}

/// One ledger line, without its newline. `data` must be a JSON object (the
/// producer's own reading JSON); it is embedded verbatim. Without a
/// `sub_sequence_number` the line has no such key.
pub fn line(
    shard_id: &str,
    sequence_number: &str,
    sub_sequence_number: Option<usize>,
    partition_key: &str,
    data: &str,
) -> String {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let sub = sub_sequence_number
        .map(|n| format!(",\"sub_sequence_number\":{n}"))
        .unwrap_or_default();
    format!(
        "{{\"shard_id\":{},\"sequence_number\":{}{sub},\"partition_key\":{},\"data\":{data}}}",
        quote(shard_id),
        quote(sequence_number),
        quote(partition_key),
    )
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    const DATA: &str = r#"{"Name":"Shadowfax","StatusTime":"2017-06-05 09:17:08.189","Latitude":42.264444250051326,"Longitude":-71.97582884770408,"Distance":175,"MagicPoints":110,"HealthPoints":150}"#;

    #[test]
    fn lines_embed_the_data_verbatim_and_parse_back() {
        let l = line("shardId-000000000000", "4959", None, "Shadowfax", DATA);
        assert_eq!(
            l,
            format!(
                r#"{{"shard_id":"shardId-000000000000","sequence_number":"4959","partition_key":"Shadowfax","data":{DATA}}}"#
            )
        );
        let entry = LedgerEntry::parse(&l).unwrap();
        assert_eq!(entry.shard_id, "shardId-000000000000");
        assert_eq!(entry.sequence_number, "4959");
        assert_eq!(entry.sub_sequence_number, None);
        assert_eq!(entry.partition_key, "Shadowfax");
        assert_eq!(entry.data.get(), DATA);
    }

    #[test]
    fn an_aggregated_reading_names_its_index_in_the_record() {
        let l = line("shardId-000000000000", "4959", Some(17), "Shadowfax", DATA);
        assert_eq!(
            l,
            format!(
                r#"{{"shard_id":"shardId-000000000000","sequence_number":"4959","sub_sequence_number":17,"partition_key":"Shadowfax","data":{DATA}}}"#
            )
        );
        let entry = LedgerEntry::parse(&l).unwrap();
        assert_eq!(entry.sub_sequence_number, Some(17));
        assert_eq!(entry.data.get(), DATA);
    }

    #[test]
    fn keys_with_quotes_are_escaped() {
        let l = line("s", "1", None, "Uni\"corn", "{}");
        assert_eq!(LedgerEntry::parse(&l).unwrap().partition_key, "Uni\"corn");
    }

    #[test]
    fn a_ledger_file_holds_one_line_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let mut ledger = Ledger::create(&path).unwrap();
        ledger.record("s0", "1", None, "Shadowfax", DATA).unwrap();
        ledger
            .record("s0", "2", Some(0), "Shadowfax", DATA)
            .unwrap();
        ledger.flush().unwrap();
        let mut text = String::new();
        File::open(&path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn an_unwritable_path_says_which() {
        let err = Ledger::create(Path::new("/nonexistent-dir/ledger.jsonl")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot write ledger /nonexistent-dir/ledger.jsonl: "),
            "{err}"
        );
    }
}
