//! `cargo xtask deploy`: the whole pipeline on AWS with one command.
//!
//! Builds the three Lambda zips with cargo-lambda, uploads them to an S3
//! bucket under content-addressed keys, then creates or updates the stack of
//! `infra/wildrydes.yaml` through a change set, printing the stack's events
//! as they arrive and its outputs at the end. Running it again with nothing
//! changed changes nothing ("no changes"); `--dry-run` shows the change set
//! and throws it away.
//!
//! The flags describe the whole deployment: one left out takes its default,
//! not the value of the previous deploy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::ChangeSetType;
use wildrydes_cli::AwsArgs;
use xshell::Shell;

use crate::artifacts::{self, Architecture, Artifact, BucketState};
use crate::aws_error;
use crate::stack::{self, ChangeSet, EventWatcher, PlannedChange};
use crate::template::{self, ARTIFACT_BUCKET_PARAMETER, FUNCTIONS, KEPT_TABLES};

/// Where the alarm starts reading `wildrydes` when its trigger is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StartingPosition {
    /// Only readings that arrive after the trigger exists.
    #[default]
    #[value(name = "LATEST")]
    Latest,
    /// Every reading still in the stream (24 h).
    #[value(name = "TRIM_HORIZON")]
    TrimHorizon,
}

impl StartingPosition {
    fn as_str(self) -> &'static str {
        match self {
            Self::Latest => "LATEST",
            Self::TrimHorizon => "TRIM_HORIZON",
        }
    }
}

/// Flags of `cargo xtask deploy`.
#[derive(Debug, clap::Args)]
pub struct Flags {
    /// CloudFormation stack to create or update.
    #[arg(long, value_name = "NAME", default_value = template::DEFAULT_STACK_NAME)]
    pub stack_name: String,

    /// Email address subscribed to the operators' alarm topic (it must
    /// confirm the subscription) [default: none].
    #[arg(long, value_name = "ADDRESS")]
    pub operator_email: Option<String>,

    /// S3 bucket for the functions' zips, created if missing [default:
    /// wildrydes-artifacts-ACCOUNT-REGION].
    #[arg(long, value_name = "NAME")]
    pub bucket: Option<String>,

    /// Show what would change (the change set), then throw it away: nothing
    /// is uploaded, created or modified.
    #[arg(long)]
    pub dry_run: bool,

    /// Most records per stream processor invocation.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,

    /// Longest wait to fill a stream processor batch, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=300))]
    pub batching_window: u32,

    /// Instruction set of the functions (the zips are built for it).
    #[arg(long, value_enum, default_value_t = Architecture::X86_64)]
    pub architecture: Architecture,

    /// Where the alarm's trigger starts reading `wildrydes` when created.
    #[arg(long, value_enum, value_name = "POSITION", default_value_t = StartingPosition::Latest)]
    pub alarm_starting_position: StartingPosition,

    /// Give the alarm an enhanced fan-out consumer of `wildrydes`
    /// (`wildrydes-alarm`), so that it no longer shares each shard's 5 reads
    /// a second with the aggregator. Costs a consumer-shard-hour charge for
    /// every shard plus a per-GB charge for the data read; turning it on or
    /// off replaces the alarm's trigger, which starts again at
    /// --alarm-starting-position.
    #[arg(long)]
    pub alarm_enhanced_fan_out: bool,

    /// Retries of a failing batch before Lambda gives up on it and sends its
    /// metadata to the failure queue.
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub max_retry_attempts: u32,

    /// Age in seconds after which a failing batch is given up on.
    #[arg(long, value_name = "SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u32).range(60..=86_400))]
    pub max_record_age: u32,

    /// Do not build: deploy the zips already in the artifacts folder (CI
    /// artifacts, or a build made earlier). Nothing checks that they are
    /// current or built for --architecture.
    #[arg(long)]
    pub skip_build: bool,

    /// Folder of the zips, laid out as `cargo lambda build` writes them
    /// (DIR/<binary>/bootstrap.zip): built into, or taken from with
    /// --skip-build [default: target/lambda].
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,

    /// Longest wait for CloudFormation, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub timeout: u64,

    #[command(flatten)]
    pub aws: AwsArgs,
}

/// The template's settings other than the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Instruction set of the functions.
    pub architecture: Architecture,
    /// Stream processor batch size.
    pub batch_size: u32,
    /// Stream processor batching window, in seconds.
    pub batching_window_secs: u32,
    /// Retries before a batch goes to the failure queue.
    pub max_retry_attempts: u32,
    /// Age before a failing batch goes to the failure queue, in seconds.
    pub max_record_age_secs: u32,
    /// Where the alarm starts reading.
    pub alarm_starting_position: StartingPosition,
    /// Whether the alarm reads through an enhanced fan-out consumer of its
    /// own instead of polling the stream beside the aggregator.
    pub alarm_enhanced_fan_out: bool,
    /// Subscribed to the alarm topic, if any.
    pub operator_email: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            architecture: Architecture::X86_64,
            batch_size: 100,
            batching_window_secs: 0,
            max_retry_attempts: 10,
            max_record_age_secs: 3600,
            alarm_starting_position: StartingPosition::Latest,
            alarm_enhanced_fan_out: false,
            operator_email: None,
        }
    }
}

/// What to deploy, where from, and how.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The stack.
    pub stack_name: String,
    /// The template's settings.
    pub settings: Settings,
    /// Bucket of the zips; `None` for the account's default.
    pub bucket: Option<String>,
    /// Folder of the zips (`<binary>/bootstrap.zip`).
    pub lambda_dir: PathBuf,
    /// Only show the change set.
    pub dry_run: bool,
    /// Longest wait for CloudFormation.
    pub timeout: Duration,
}

/// How a deploy ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The stack was created.
    Created,
    /// The stack was updated.
    Updated,
    /// Nothing to change: CloudFormation was not asked to do anything.
    Unchanged,
    /// A dry run: what would change; nothing was.
    Planned(Vec<PlannedChange>),
}

/// What a deploy did.
#[derive(Debug, Clone)]
pub struct DeployReport {
    /// How it ended.
    pub outcome: Outcome,
    /// The bucket of the zips.
    pub bucket: String,
    /// The S3 keys uploaded now (the others were there already).
    pub uploaded: Vec<String>,
    /// The stack events that arrived while deploying, as printed.
    pub events: Vec<String>,
    /// The stack's outputs (empty after a dry run of a new stack).
    pub outputs: BTreeMap<String, String>,
}

impl Flags {
    /// The deploy these flags describe; relative paths are taken from the
    /// current folder, the default zip folder from `root` (the workspace).
    pub fn options(&self, root: &Path) -> anyhow::Result<DeployOptions> {
        let lambda_dir = match &self.artifacts {
            Some(dir) => std::path::absolute(dir)
                .with_context(|| format!("cannot resolve {}", dir.display()))?,
            None => root.join(artifacts::DEFAULT_LAMBDA_DIR),
        };
        Ok(DeployOptions {
            stack_name: self.stack_name.clone(),
            settings: Settings {
                architecture: self.architecture,
                batch_size: self.batch_size,
                batching_window_secs: self.batching_window,
                max_retry_attempts: self.max_retry_attempts,
                max_record_age_secs: self.max_record_age,
                alarm_starting_position: self.alarm_starting_position,
                alarm_enhanced_fan_out: self.alarm_enhanced_fan_out,
                operator_email: self.operator_email.clone(),
            },
            bucket: self.bucket.clone(),
            lambda_dir,
            dry_run: self.dry_run,
            timeout: Duration::from_secs(self.timeout),
        })
    }
}

/// The folder of cargo-lambda (and the zig it builds with):
/// `WILDRYDES_TOOLS_BIN`, which `cargo xtask deploy` sets once it has
/// installed the pinned tools.
pub fn tools_bin_from_env() -> anyhow::Result<PathBuf> {
    std::env::var_os("WILDRYDES_TOOLS_BIN")
        .map(PathBuf::from)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "cannot build the Lambda functions: cargo-lambda's folder is unknown; run `cargo xtask deploy` (it installs the tools), pass --skip-build, or set WILDRYDES_TOOLS_BIN to the folder `cargo xtask tools` prints"
            )
        })
}

/// `cargo xtask deploy`: builds (unless `--skip-build`, with the tools of the
/// folder `tools_bin` returns), then deploys with the AWS settings of the
/// flags and the provider chain. `sh` is at the workspace root.
pub fn run(
    sh: &Shell,
    flags: Flags,
    tools_bin: impl FnOnce() -> anyhow::Result<PathBuf>,
) -> anyhow::Result<()> {
    let options = flags.options(&sh.current_dir())?;
    if !flags.skip_build {
        artifacts::build(
            sh,
            &tools_bin()?,
            options.settings.architecture,
            &options.lambda_dir,
        )?;
    }
    crate::block_on(async {
        let config = flags.aws.sdk_config().await;
        deploy(&config, &options).await.map(|_| ())
    })
}

/// Deploys with `config` (credentials, region, endpoint) as `options` say,
/// printing progress, and reports what it did.
pub async fn deploy(config: &SdkConfig, options: &DeployOptions) -> anyhow::Result<DeployReport> {
    let deadline = Instant::now() + options.timeout;
    let stack_name = options.stack_name.as_str();
    // Local files first: a missing zip is the cheapest failure.
    let zips = FUNCTIONS
        .iter()
        .map(|f| Artifact::read(&options.lambda_dir, *f))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let region = config
        .region()
        .map(|r| r.to_string())
        .context("no AWS region: pass --region or set AWS_REGION")?;
    let sts = aws_sdk_sts::Client::new(config);
    let account = artifacts::account_id(&sts).await?;
    println!("Deploying stack {stack_name} to account {account}, region {region}.");

    let cfn = aws_sdk_cloudformation::Client::new(config);
    let existing = stack::describe(&cfn, stack_name).await?;
    let kind = match &existing {
        None => ChangeSetType::Create,
        // A change set that creates the stack was made and never executed.
        Some(s) if s.status == "REVIEW_IN_PROGRESS" => ChangeSetType::Create,
        Some(s) if s.is_busy() => anyhow::bail!(
            "stack {stack_name} is busy ({}): wait until it is done, then deploy again",
            s.status
        ),
        Some(s)
            if ["ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"]
                .contains(&s.status.as_str()) =>
        {
            anyhow::bail!(
                "stack {stack_name} is {} and cannot be updated: remove it with `cargo xtask destroy --stack-name {stack_name}`, then deploy again",
                s.status
            )
        }
        Some(_) => ChangeSetType::Update,
    };
    if kind == ChangeSetType::Create {
        refuse_kept_tables(config, stack_name).await?;
    }

    let bucket = match &options.bucket {
        Some(bucket) => bucket.clone(),
        None => artifacts::default_bucket(&account, &region),
    };
    let s3 = s3_client(config);
    let uploaded = upload_all(&s3, &bucket, &region, &zips, options.dry_run).await?;

    let mut parameters = vec![(ARTIFACT_BUCKET_PARAMETER, bucket.clone())];
    parameters.extend(
        zips.iter()
            .map(|zip| (zip.function.code_key_parameter, zip.key())),
    );
    parameters.extend(settings_parameters(&options.settings));

    println!("Preparing a change set...");
    let change_set = stack::create_change_set(
        &cfn,
        stack_name,
        kind.clone(),
        template::TEMPLATE,
        &parameters,
        deadline,
    )
    .await?;
    let (id, changes) = match change_set {
        ChangeSet::NoChanges => {
            println!("No changes: stack {stack_name} is up to date.");
            let outputs = outputs_of(&cfn, stack_name).await?;
            return Ok(DeployReport {
                outcome: Outcome::Unchanged,
                bucket,
                uploaded,
                events: Vec::new(),
                outputs,
            });
        }
        ChangeSet::Ready { id, changes } => (id, changes),
    };
    if changes.is_empty() {
        println!("The change set lists no resource changes (only parameters differ).");
    } else {
        println!("Changes ({}):", changes.len());
        for change in &changes {
            println!("  {change}");
        }
    }

    if options.dry_run {
        stack::delete_change_set(&cfn, stack_name, &id).await?;
        if kind == ChangeSetType::Create && existing.is_none() {
            // Creating the change set created an empty stack to hold it.
            stack::delete_stack(&cfn, stack_name).await?;
        }
        println!("Dry run: nothing was changed.");
        let outputs = existing.map(|s| s.outputs).unwrap_or_default();
        return Ok(DeployReport {
            outcome: Outcome::Planned(changes),
            bucket,
            uploaded,
            events: Vec::new(),
            outputs,
        });
    }

    let stack_id = stack::describe(&cfn, stack_name)
        .await?
        .map(|s| s.id)
        .context("the stack of the change set is gone")?;
    let mut events = EventWatcher::start(&cfn, &stack_id).await?;
    println!("Executing the change set; stack events:");
    stack::execute_change_set(&cfn, stack_name, &id).await?;
    let status = stack::wait_until_settled(&cfn, &stack_id, &mut events, deadline).await?;
    let outcome = match status.as_str() {
        "CREATE_COMPLETE" => Outcome::Created,
        "UPDATE_COMPLETE" => Outcome::Updated,
        _ => anyhow::bail!(
            "deploy failed: stack {stack_name} is {status}{}",
            match events.failures.first() {
                Some(first) => format!("; first failure: {first}"),
                None => String::new(),
            }
        ),
    };
    println!(
        "Stack {stack_name} {}.",
        if outcome == Outcome::Created {
            "created"
        } else {
            "updated"
        }
    );
    let outputs = outputs_of(&cfn, stack_name).await?;
    Ok(DeployReport {
        outcome,
        bucket,
        uploaded,
        events: events.lines,
        outputs,
    })
}

/// The template's parameters for `settings`, every one of them: a deploy
/// states the whole configuration.
fn settings_parameters(settings: &Settings) -> Vec<(&'static str, String)> {
    vec![
        ("Architecture", settings.architecture.as_str().to_owned()),
        ("ProcessorBatchSize", settings.batch_size.to_string()),
        (
            "ProcessorBatchingWindowSeconds",
            settings.batching_window_secs.to_string(),
        ),
        (
            "MaximumRetryAttempts",
            settings.max_retry_attempts.to_string(),
        ),
        (
            "MaximumRecordAgeSeconds",
            settings.max_record_age_secs.to_string(),
        ),
        (
            "AlarmStartingPosition",
            settings.alarm_starting_position.as_str().to_owned(),
        ),
        (
            "AlarmEnhancedFanOut",
            settings.alarm_enhanced_fan_out.to_string(),
        ),
        (
            "OperatorEmail",
            settings.operator_email.clone().unwrap_or_default(),
        ),
    ]
}

/// S3 client for `config`; path-style addressing when an endpoint is set
/// (an emulator on 127.0.0.1 has no per-bucket host names).
pub(crate) fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// Makes sure every zip is in `bucket` (creating the bucket if needed),
/// uploading the missing ones; in a dry run only says what it would upload.
async fn upload_all(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    region: &str,
    zips: &[Artifact],
    dry_run: bool,
) -> anyhow::Result<Vec<String>> {
    let state = artifacts::ensure_bucket(s3, bucket, region, !dry_run).await?;
    match state {
        BucketState::Created => println!("Created bucket {bucket} for the functions' zips."),
        BucketState::Missing => println!("Would create bucket {bucket} for the functions' zips."),
        BucketState::Existing => {}
    }
    println!("Zips in s3://{bucket}:");
    let mut uploaded = Vec::new();
    for zip in zips {
        let key = zip.key();
        let size = zip.size.div_ceil(1024);
        let done = if dry_run {
            let there =
                state != BucketState::Missing && artifacts::is_uploaded(s3, bucket, &key).await?;
            if there { "unchanged" } else { "would upload" }
        } else if artifacts::upload(s3, bucket, zip).await? {
            uploaded.push(key.clone());
            "uploaded"
        } else {
            "unchanged"
        };
        println!("  {done:<12} {key} ({size} KiB)");
    }
    Ok(uploaded)
}

/// Refuses to create the stack while a table it would create already exists
/// (kept by an earlier destroy): the creation would fail and roll back.
async fn refuse_kept_tables(config: &SdkConfig, stack_name: &str) -> anyhow::Result<()> {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    for table in KEPT_TABLES {
        if table_exists(&dynamodb, table.table_name).await? {
            anyhow::bail!(
                "table {} already exists (kept by an earlier `cargo xtask destroy`?), and stack {stack_name} would create it: \
                 back it up if needed, remove it with `cargo xtask destroy --stack-name {stack_name} --delete-data`, then deploy again",
                table.table_name
            );
        }
    }
    Ok(())
}

/// Whether the DynamoDB table `name` exists.
pub(crate) async fn table_exists(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> anyhow::Result<bool> {
    match dynamodb.describe_table().table_name(name).send().await {
        Ok(_) => Ok(true),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(err) => Err(aws_error::explain(
            err,
            format!("cannot look up table {name}"),
        )),
    }
}

/// Prints the outputs of `stack_name` and returns them.
async fn outputs_of(
    cfn: &aws_sdk_cloudformation::Client,
    stack_name: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let outputs = stack::describe(cfn, stack_name)
        .await?
        .map(|s| s.outputs)
        .unwrap_or_default();
    if !outputs.is_empty() {
        println!("Outputs of stack {stack_name}:");
        let width = outputs.keys().map(String::len).max().unwrap_or(0);
        for (key, value) in &outputs {
            println!("  {key:<width$}  {value}");
        }
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_becomes_a_template_parameter() {
        let parameters = settings_parameters(&Settings::default());
        for (key, _) in &parameters {
            assert!(
                template::TEMPLATE.contains(&format!("\n  {key}:\n")),
                "{key} is not a parameter of the template"
            );
        }
        let as_map: BTreeMap<_, _> = parameters.into_iter().collect();
        assert_eq!(as_map["ProcessorBatchSize"], "100");
        assert_eq!(as_map["Architecture"], "x86_64");
        assert_eq!(as_map["OperatorEmail"], "");
        assert_eq!(as_map["AlarmStartingPosition"], "LATEST");
        assert_eq!(as_map["AlarmEnhancedFanOut"], "false");
        let fan_out = Settings {
            alarm_enhanced_fan_out: true,
            ..Settings::default()
        };
        let as_map: BTreeMap<_, _> = settings_parameters(&fan_out).into_iter().collect();
        assert_eq!(as_map["AlarmEnhancedFanOut"], "true");
    }

    #[test]
    fn the_template_defaults_are_the_flag_defaults() {
        // A stack created by hand from the template behaves like a deploy
        // without flags.
        for (key, value) in settings_parameters(&Settings::default()) {
            if value.is_empty() {
                continue;
            }
            let at = template::TEMPLATE
                .find(&format!("\n  {key}:\n"))
                .expect("parameter");
            let block: String = template::TEMPLATE[at + 1..]
                .lines()
                .skip(1)
                .take_while(|l| l.starts_with("    "))
                .collect::<Vec<_>>()
                .join("\n");
            // Quoted where YAML would read another type ("false").
            let found = [format!("Default: {value}"), format!("Default: \"{value}\"")]
                .iter()
                .any(|d| block.contains(&format!("{d}\n")) || block.ends_with(d.as_str()));
            assert!(
                found,
                "{key}: template default differs from {value}:\n{block}"
            );
        }
    }
}
