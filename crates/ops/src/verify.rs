//! `cargo xtask verify --ledger FILE`: recomputes the aggregates a producer
//! ledger must produce and compares them, item by item, with the table:
//! missing, extra, different.

use std::collections::BTreeMap;
use std::path::Path;

use crate::aggregates::{self as verify, Key, Verification};
use anyhow::Context as _;
use wildrydes_core::Reading;

/// Every reading of a producer ledger (`producer --ledger`), as sent.
pub fn ledger_readings(path: &Path) -> anyhow::Result<Vec<Reading>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read ledger {}: pass the file `producer --ledger` wrote",
            path.display()
        )
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let entry: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("ledger {} line {} is not JSON", path.display(), i + 1))?;
            let data = entry
                .get("data")
                .map(ToString::to_string)
                .unwrap_or_default();
            Reading::from_json(data.as_bytes()).with_context(|| {
                format!(
                    "ledger {} line {} holds no valid reading",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

/// The expected aggregates of the ledgers' readings (several producers may
/// have written to the same stream) against the table's.
pub async fn verify_ledgers(
    ledgers: &[&Path],
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> anyhow::Result<(BTreeMap<Key, wildrydes_core::Aggregate>, Verification)> {
    let mut readings = Vec::new();
    for ledger in ledgers {
        readings.extend(ledger_readings(ledger)?);
    }
    let expected = verify::expected_aggregates(&readings);
    let (found, unreadable) = verify::table_aggregates(dynamodb, table)
        .await
        .map_err(anyhow::Error::msg)?;
    let mut verification = verify::compare(&expected, &found);
    verification.unreadable = unreadable;
    Ok((expected, verification))
}

/// The verification as an operator reads it; `limit` rows per kind.
pub fn describe(v: &Verification, limit: usize) -> String {
    let mut out = format!(
        "{} matching, {} missing, {} extra, {} different, {} unreadable: {}\n",
        v.matching,
        v.missing.len(),
        v.extra.len(),
        v.different.len(),
        v.unreadable.len(),
        if v.passed() { "PASSED" } else { "FAILED" }
    );
    for a in v.missing.iter().take(limit) {
        out.push_str(&format!("  missing   {}\n", a.to_json()));
    }
    for a in v.extra.iter().take(limit) {
        out.push_str(&format!("  extra     {}\n", a.to_json()));
    }
    for (want, got) in v.different.iter().take(limit) {
        out.push_str(&format!(
            "  expected  {}\n  found     {}\n",
            want.to_json(),
            got.to_json()
        ));
    }
    for u in v.unreadable.iter().take(limit) {
        out.push_str(&format!("  unreadable {u}\n"));
    }
    out
}
