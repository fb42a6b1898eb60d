//! `cargo xtask rejects`: list the records the pipeline refused, and put them
//! back on their stream once the cause is fixed.

use anyhow::Context as _;
use wildrydes_core::aws::AwsArgs;
use wildrydes_core::rejects::{self, Reject};

/// What to do with the rejects.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Action {
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
        /// Re-drive only rejects of this pipeline (processor, aggregator, alarm).
        #[arg(long, value_name = "NAME")]
        pipeline: Option<String>,
        /// Re-drive every reject.
        #[arg(long, conflicts_with_all = ["record_ids", "pipeline"])]
        all: bool,
    },
}

/// Flags of `cargo xtask rejects`.
#[derive(Debug, clap::Args)]
pub(crate) struct Flags {
    #[command(subcommand)]
    pub(crate) action: Action,
    /// The rejects table.
    #[arg(long, global = true, env = "REJECTS_TABLE_NAME", default_value = wildrydes_core::resources::REJECTS_TABLE)]
    pub(crate) table: String,
    #[command(flatten)]
    pub(crate) aws: AwsArgs,
}

#[tokio::main(flavor = "current_thread")]
pub(crate) async fn run(flags: Flags) -> anyhow::Result<()> {
    let config = flags.aws.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    match flags.action {
        Action::List => {
            let all = rejects::list_rejects(&dynamodb, &flags.table)
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
                all || record_ids.contains(&r.record_id())
                    || pipeline.as_deref() == Some(r.pipeline.as_str())
            };
            let report = rejects::redrive(&dynamodb, &kinesis, &flags.table, select)
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
