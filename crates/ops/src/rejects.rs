//! `cargo xtask rejects`: list the records the pipeline refused, and put them
//! back on their stream once the cause is fixed.

use anyhow::Context as _;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use wildrydes_cli::AwsArgs;
use wildrydes_core::names::{PipelineName, REJECTS_TABLE_KEY};
use wildrydes_core::rejects::{Reject, RejectError};

/// What to do with the rejects.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Print every reject: when, which pipeline, where from, why, and the
    /// start of its bytes.
    List,
    /// Put rejects back on the stream they came from (with their partition
    /// key), then remove them from the table. A record that still fails is
    /// rejected again under its new sequence number.
    Redrive {
        /// Re-drive only these RecordIds (as `list` prints them).
        #[arg(long = "record-id", value_name = "ID", required_unless_present_any = ["all", "pipeline"])]
        record_ids: Vec<String>,
        /// Re-drive only rejects of this pipeline (aggregate, process, alarm).
        #[arg(long, value_name = "NAME")]
        pipeline: Option<PipelineName>,
        /// Re-drive every reject.
        #[arg(long, conflicts_with_all = ["record_ids", "pipeline"])]
        all: bool,
    },
}

/// Flags of `cargo xtask rejects`.
#[derive(Debug, clap::Args)]
pub struct Flags {
    #[command(subcommand)]
    pub action: Action,
    /// The rejects table.
    #[arg(long, global = true, env = "REJECTS_TABLE_NAME", default_value = wildrydes_core::names::REJECTS_TABLE)]
    pub table: String,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[tokio::main(flavor = "current_thread")]
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    let config = flags.aws.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    match flags.action {
        Action::List => {
            let all = list_rejects(&dynamodb, &flags.table)
                .await
                .context("cannot list rejects")?;
            for r in &all {
                print_reject(r);
            }
            println!("{} rejects in table {}", all.len(), flags.table);
        }
        Action::Redrive {
            record_ids,
            pipeline,
            all,
        } => {
            let kinesis = aws_sdk_kinesis::Client::new(&config);
            let select = |r: &Reject| {
                all || record_ids.contains(&r.record_id()) || pipeline == Some(r.pipeline)
            };
            let report = redrive(&dynamodb, &kinesis, &flags.table, select)
                .await
                .context("cannot re-drive rejects")?;
            for id in &report.redriven {
                println!("re-driven {id}");
            }
            for (id, why) in &report.skipped {
                println!("left {id}: {why}");
            }
            println!(
                "{} re-driven, {} left in table {}",
                report.redriven.len(),
                report.skipped.len(),
                flags.table
            );
            if !report.skipped.is_empty() {
                anyhow::bail!(
                    "{} rejects could not be re-driven; see above",
                    report.skipped.len()
                );
            }
        }
    }
    Ok(())
}

fn print_reject(r: &Reject) {
    let shown = String::from_utf8_lossy(&r.data[..r.data.len().min(120)]).into_owned();
    println!(
        "{}  {}  {}\n  reason: {}\n  data ({} bytes): {shown:?}",
        r.rejected_at.to_rfc3339(),
        r.pipeline,
        r.record_id(),
        r.reason,
        r.size
    );
}

/// Every reject in `table`, oldest first.
pub async fn list_rejects(client: &Client, table: &str) -> Result<Vec<Reject>, RejectError> {
    let table_error = |message: String| RejectError::Table {
        action: "scan",
        table: table.to_owned(),
        message,
    };
    let mut pages = client
        .scan()
        .table_name(table)
        .into_paginator()
        .items()
        .send();
    let mut rejects = Vec::new();
    while let Some(item) = pages.next().await {
        let item = item.map_err(|e| {
            table_error(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())
        })?;
        rejects.push(Reject::from_item(&item)?);
    }
    rejects.sort_by_key(|r| (r.rejected_at, r.record_id()));
    Ok(rejects)
}

/// Removes one reject, once it has been re-driven.
pub async fn delete_reject(
    client: &Client,
    table: &str,
    record_id: &str,
) -> Result<(), RejectError> {
    client
        .delete_item()
        .table_name(table)
        .key(
            REJECTS_TABLE_KEY[0],
            AttributeValue::S(record_id.to_owned()),
        )
        .send()
        .await
        .map_err(|e| RejectError::Table {
            action: "delete from",
            table: table.to_owned(),
            message: aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
        })?;
    Ok(())
}

/// What a re-drive did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// Rejects put back on their stream and removed from the table.
    pub redriven: Vec<String>,
    /// Rejects left in the table, with why.
    pub skipped: Vec<(String, String)>,
}

/// Puts the rejects whose `RecordId` passes `select` back on the stream they
/// came from, with their partition key, then removes each from the table.
/// A reject whose bytes were cut at [`MAX_KEPT_BYTES`] cannot be re-driven
/// and stays. A put that fails stops nothing: that reject stays, with why.
pub async fn redrive(
    dynamodb: &Client,
    kinesis: &aws_sdk_kinesis::Client,
    table: &str,
    select: impl Fn(&Reject) -> bool,
) -> Result<RedriveReport, RejectError> {
    let mut report = RedriveReport::default();
    for reject in list_rejects(dynamodb, table)
        .await?
        .into_iter()
        .filter(|r| select(r))
    {
        let id = reject.record_id();
        if reject.size > reject.data.len() {
            report.skipped.push((
                id,
                format!(
                    "only {} of its {} bytes were kept",
                    reject.data.len(),
                    reject.size
                ),
            ));
            continue;
        }
        let put = kinesis
            .put_record()
            .stream_arn(&reject.stream_arn)
            .partition_key(&reject.partition_key)
            .data(aws_sdk_kinesis::primitives::Blob::new(reject.data))
            .send()
            .await;
        match put {
            Ok(_) => {
                delete_reject(dynamodb, table, &id).await?;
                report.redriven.push(id);
            }
            Err(e) => {
                let why = aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string();
                report.skipped.push((
                    id,
                    format!("cannot put it back on {}: {why}", reject.stream_arn),
                ));
            }
        }
    }
    Ok(report)
}
