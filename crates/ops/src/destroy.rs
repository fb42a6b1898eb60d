//! `cargo xtask destroy`: deletes the stack `cargo xtask deploy` made.
//!
//! The tables that hold data (the aggregates and the rejects) are retained
//! by the template (`DeletionPolicy: Retain`), so deleting the stack keeps
//! them; destroy says so and how to remove them. `--delete-data` deletes
//! them after the stack (and also when the stack is already gone). The
//! bucket of the zips is not part of the stack and is kept.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use wildrydes_cli::AwsArgs;

use crate::deploy::table_exists;
use crate::stack::{self, EventWatcher};
use crate::template::{self, ARTIFACT_BUCKET_PARAMETER, KEPT_TABLES};
use crate::{artifacts, aws_error};

/// Pause between two checks that a deleted table is gone.
const TABLE_POLL: Duration = Duration::from_millis(200);

/// Flags of `cargo xtask destroy`.
#[derive(Debug, clap::Args)]
pub struct Flags {
    /// CloudFormation stack to delete.
    #[arg(long, value_name = "NAME", default_value = template::DEFAULT_STACK_NAME)]
    pub stack_name: String,

    /// Also delete the tables of aggregates and rejects, which are kept
    /// otherwise. Their data is lost.
    #[arg(long)]
    pub delete_data: bool,

    /// Longest wait for CloudFormation, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub timeout: u64,

    #[command(flatten)]
    pub aws: AwsArgs,
}

/// What to destroy.
#[derive(Debug, Clone)]
pub struct DestroyOptions {
    /// The stack.
    pub stack_name: String,
    /// Also delete the kept tables.
    pub delete_data: bool,
    /// Longest wait for CloudFormation and DynamoDB.
    pub timeout: Duration,
}

/// What a destroy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestroyReport {
    /// Whether there was a stack to delete.
    pub stack_deleted: bool,
    /// The stack events that arrived while deleting, as printed.
    pub events: Vec<String>,
    /// Tables that hold data and still exist.
    pub kept_tables: Vec<String>,
    /// Tables deleted after the stack (`--delete-data`).
    pub deleted_tables: Vec<String>,
    /// The bucket of the zips, if the stack named it.
    pub bucket: Option<String>,
}

/// `cargo xtask destroy`, with the AWS settings of the flags and the
/// provider chain.
pub fn run(flags: Flags) -> anyhow::Result<()> {
    let options = DestroyOptions {
        stack_name: flags.stack_name,
        delete_data: flags.delete_data,
        timeout: Duration::from_secs(flags.timeout),
    };
    crate::block_on(async {
        let config = flags.aws.sdk_config().await;
        destroy(&config, &options).await.map(|_| ())
    })
}

/// Deletes the stack with `config` as `options` say, printing progress.
pub async fn destroy(
    config: &SdkConfig,
    options: &DestroyOptions,
) -> anyhow::Result<DestroyReport> {
    let deadline = Instant::now() + options.timeout;
    let stack_name = options.stack_name.as_str();
    let sts = aws_sdk_sts::Client::new(config);
    let account = artifacts::account_id(&sts).await?;
    let cfn = aws_sdk_cloudformation::Client::new(config);
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let mut report = DestroyReport::default();

    // The kept tables' names: the stack's own, or the template's when the
    // stack is gone.
    let mut kept: Vec<String> = KEPT_TABLES
        .iter()
        .map(|t| t.table_name.to_owned())
        .collect();
    match stack::describe(&cfn, stack_name).await? {
        None => println!("Stack {stack_name} does not exist in account {account}."),
        Some(info) if info.is_busy() => anyhow::bail!(
            "stack {stack_name} is busy ({}): wait until it is done, then destroy again",
            info.status
        ),
        Some(info) => {
            println!("Deleting stack {stack_name} from account {account}; stack events:");
            let resources = stack::resources(&cfn, &info.id).await?;
            kept = KEPT_TABLES
                .iter()
                .map(|t| {
                    resources
                        .get(t.logical_id)
                        .cloned()
                        .unwrap_or_else(|| t.table_name.to_owned())
                })
                .collect();
            report.bucket = info.parameters.get(ARTIFACT_BUCKET_PARAMETER).cloned();
            let mut events = EventWatcher::start(&cfn, &info.id).await?;
            stack::delete_stack(&cfn, &info.id).await?;
            let status = stack::wait_until_settled(&cfn, &info.id, &mut events, deadline).await?;
            report.events = events.lines;
            if status != "DELETE_COMPLETE" {
                anyhow::bail!(
                    "destroy failed: stack {stack_name} is {status}{}",
                    match events.failures.first() {
                        Some(first) => format!("; first failure: {first}"),
                        None => String::new(),
                    }
                );
            }
            report.stack_deleted = true;
            println!("Stack {stack_name} deleted.");
        }
    }

    for table in kept {
        if !table_exists(&dynamodb, &table).await? {
            continue;
        }
        if options.delete_data {
            delete_table(&dynamodb, &table, deadline).await?;
            println!("Deleted table {table} and its data.");
            report.deleted_tables.push(table);
        } else {
            report.kept_tables.push(table);
        }
    }
    if !report.kept_tables.is_empty() {
        let tables = report.kept_tables.join(", ");
        println!("Kept tables {tables}: they hold the pipeline's data.");
        println!(
            "  Remove them with `cargo xtask destroy --stack-name {stack_name} --delete-data` \
             (or `aws dynamodb delete-table --table-name NAME`); a new deploy needs them gone."
        );
    }
    if let Some(bucket) = &report.bucket {
        println!(
            "Kept bucket {bucket} (the functions' zips; later deploys reuse it). \
             Remove it with `aws s3 rb s3://{bucket} --force`."
        );
    }
    Ok(report)
}

/// Deletes the table `name` and waits until it is gone.
async fn delete_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
    deadline: Instant,
) -> anyhow::Result<()> {
    match dynamodb.delete_table().table_name(name).send().await {
        Ok(_) => {}
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) => {}
        Err(err) => {
            return Err(aws_error::explain(
                err,
                format!("cannot delete table {name}"),
            ));
        }
    }
    while table_exists(dynamodb, name).await? {
        if Instant::now() >= deadline {
            anyhow::bail!("table {name} is still being deleted: gave up waiting (raise --timeout)");
        }
        tokio::time::sleep(TABLE_POLL).await;
    }
    Ok(())
}
