//! `wildrydes-daemon`: the pipeline's consumers as one long-running process
//! per host, sharing a stream's shards with the other daemons through a
//! lease table. Every option is also an environment variable.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use wildrydes_alarm::AlarmConfig;
use wildrydes_alarm::detector::Detector;
use wildrydes_cli::{AwsArgs, LogFormat};
use wildrydes_core::aggregation::Aggregator;
use wildrydes_core::minute_store::MinuteStore;
use wildrydes_core::names::{
    AGGREGATES_STREAM, AGGREGATOR_STATE_TABLE, ALARM_TABLE, READINGS_STREAM, REJECTS_TABLE,
    SENSOR_TABLE,
};
use wildrydes_core::process::Processor;
use wildrydes_core::rejects::RejectStore;
use wildrydes_core::retry::RetryPolicy;
use wildrydes_core::stream_writer::StreamWriter;
use wildrydes_core::window::WindowRules;
use wildrydes_core::writer::{DEFAULT_MAX_IN_FLIGHT, TableWriter, WriterConfig};
use wildrydes_daemon::balance::Balance;
use wildrydes_daemon::consumer::ConsumerConfig;
use wildrydes_daemon::lease::{Checkpoint, LeaseTable};
use wildrydes_daemon::metrics::{self, Metrics};
use wildrydes_daemon::pipeline::Pipeline;
use wildrydes_daemon::worker::{Worker, WorkerConfig};

/// The Wild Rydes pipeline as a long-running Kinesis consumer. Run one
/// process per host (or container) and per pipeline; processes of the same
/// pipeline share the stream's shards through a DynamoDB lease table (the
/// Kinesis Client Library's protocol) and take over each other's shards.
///
/// Example, against `cargo xtask local`:
///   wildrydes-daemon aggregate &
///   wildrydes-daemon process
#[derive(Debug, Parser)]
#[command(name = "wildrydes-daemon", version)]
struct Cli {
    #[command(subcommand)]
    pipeline: PipelineCommand,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Aggregates (wildrydes-aggregated) into the table, as the
    /// WildRydesStreamProcessor function does.
    Process(ProcessArgs),
    /// Readings (wildrydes) into per-minute aggregates on
    /// wildrydes-aggregated, as the WildRydesAggregator function does.
    Aggregate(AggregateArgs),
    /// Readings (wildrydes, or aggregates with --stream
    /// wildrydes-aggregated) into ALARM/OK notifications when a unicorn's
    /// magic points fall below the threshold and recover, as the
    /// WildRydesAlarm function does.
    Alarm(AlarmArgs),
    /// A live web page of the fleet and the pipeline for operators: the
    /// unicorns on a map (from the readings stream), their minutes and
    /// alarm history, open alarms, rejects, and each pipeline's lag and
    /// throughput. Reads only. Open the URL it prints.
    ///
    /// Against `cargo xtask local`:
    ///   wildrydes-daemon console --metrics http://127.0.0.1:9464/metrics
    /// Against AWS:
    ///   wildrydes-daemon console --region eu-west-1 --cloudwatch
    Console(ConsoleArgs),
}

#[derive(Debug, Args)]
struct ConsoleArgs {
    /// Address the page is served on (127.0.0.1: this host only; port 0
    /// picks a free one)
    #[arg(long, env = "WILDRYDES_CONSOLE_ADDR", default_value = "127.0.0.1:9470")]
    addr: String,
    /// A daemon's /metrics URL whose pipeline figures the page shows
    /// (repeat the flag, or separate with commas)
    #[arg(
        long = "metrics",
        env = "WILDRYDES_CONSOLE_METRICS",
        value_delimiter = ','
    )]
    metrics: Vec<String>,
    /// Read the pipelines' figures from CloudWatch (the Lambda functions'
    /// IteratorAge and EMF metrics), as on AWS; needs
    /// cloudwatch:GetMetricData
    #[arg(long, env = "WILDRYDES_CONSOLE_CLOUDWATCH")]
    cloudwatch: bool,
    /// Table of aggregates (one unicorn's minutes)
    #[arg(long, env = "TABLE_NAME", default_value = SENSOR_TABLE)]
    table: String,
    /// Table of per-unicorn alarm state, with its OpenAlarms index
    #[arg(long, env = "ALARM_TABLE_NAME", default_value = ALARM_TABLE)]
    alarm_table: String,
    /// Table of alarm transitions
    #[arg(long, env = "ALARM_HISTORY_TABLE_NAME", default_value = wildrydes_core::names::ALARM_HISTORY_TABLE)]
    alarm_history_table: String,
    /// Time between two reads of one shard of the readings stream: 2 s or
    /// more (a tenth of the shard's 5 reads/s at most)
    #[arg(long, env = "WILDRYDES_CONSOLE_READ_INTERVAL", default_value = "2s", value_parser = read_interval)]
    read_interval: Duration,
    /// How far back positions are read at start
    #[arg(long, env = "WILDRYDES_CONSOLE_LOOKBACK", default_value = "5m", value_parser = humantime::parse_duration)]
    lookback: Duration,
    /// A unicorn with no reading for this long is shown silent
    #[arg(long, env = "WILDRYDES_CONSOLE_SILENT_AFTER", default_value = "30s", value_parser = humantime::parse_duration)]
    silent_after: Duration,
}

/// A read interval of at least 2 s.
fn read_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(2) {
        return Err(format!(
            "{s} is under 2s: the console would take more than a tenth of each shard's 5 reads/s"
        ));
    }
    Ok(d)
}

#[derive(Debug, Args)]
struct AlarmArgs {
    /// Table of per-unicorn alarm state (hash key Name S)
    #[arg(long, env = "ALARM_TABLE_NAME", default_value = ALARM_TABLE)]
    alarm_table: String,
    /// Table of every transition, written with the state (hash key Name S, range key StatusTime N)
    #[arg(long, env = "ALARM_HISTORY_TABLE_NAME", default_value = wildrydes_core::names::ALARM_HISTORY_TABLE)]
    history_table: String,
    /// SNS topic that receives the notifications
    #[arg(long, env = "ALARM_TOPIC_ARN")]
    topic_arn: Option<String>,
    /// URL that receives each notification as a JSON POST (a chat incoming webhook, say)
    #[arg(long, env = "ALARM_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// Longest wait for one webhook call
    #[arg(long, env = "ALARM_WEBHOOK_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    webhook_timeout: Duration,
    /// Print each notification as a JSON line on standard output
    #[arg(long, env = "ALARM_CONSOLE")]
    console: bool,
    /// ALARM when magic points fall below this
    #[arg(long, env = "MAGIC_THRESHOLD", default_value_t = 50)]
    threshold: i64,
    /// OK again only at threshold + hysteresis, so a hovering value does not flap
    #[arg(long, env = "MAGIC_HYSTERESIS", default_value_t = 10)]
    hysteresis: i64,
}

/// Options every pipeline has.
#[derive(Debug, Args)]
struct Common {
    /// Stream to consume [default: wildrydes-aggregated for process,
    /// wildrydes for aggregate]
    #[arg(long, global = true, env = "WILDRYDES_STREAM")]
    stream: Option<String>,
    /// DynamoDB lease table shared by the workers of this pipeline; created
    /// if missing [default: wildrydes-daemon-<pipeline>]
    #[arg(long, global = true, env = "WILDRYDES_LEASE_TABLE")]
    lease_table: Option<String>,
    /// This worker's id in the lease table; unique per process [default:
    /// host name and process id]
    #[arg(long, global = true, env = "WILDRYDES_WORKER_ID")]
    worker_id: Option<String>,
    /// Failover time: a worker that has not renewed a lease for this long
    /// loses it to the others
    #[arg(long, global = true, env = "WILDRYDES_LEASE_DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// Where a shard with no checkpoint starts
    #[arg(long, global = true, env = "WILDRYDES_INITIAL_POSITION", value_enum, default_value_t = Position::TrimHorizon)]
    initial_position: Position,
    /// Address of the /metrics (Prometheus) and /healthz endpoints
    #[arg(
        long,
        global = true,
        env = "WILDRYDES_METRICS_ADDR",
        default_value = "127.0.0.1:9464"
    )]
    metrics_addr: String,
    /// Log format
    #[arg(long, global = true, env = "WILDRYDES_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// More log lines: -v shows ours at debug and the AWS SDK's warnings,
    /// -vv everything at debug (RUST_LOG, if set, wins)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// On SIGTERM or Ctrl-C: how long consumers get to finish their batch
    /// and checkpoint before the leases are released
    #[arg(long, global = true, env = "WILDRYDES_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    shutdown_timeout: Duration,
    /// Wait after a read that found no new records, before reading again
    #[arg(long, global = true, env = "WILDRYDES_IDLE_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    idle_poll_interval: Duration,
    /// /healthz answers 503 when a shard's records have waited this long
    /// with no progress (no checkpoint moved, tip not reached): a stuck
    /// consumer. Longer than --checkpoint-interval
    #[arg(long, global = true, env = "WILDRYDES_STUCK_AFTER", default_value = "60s", value_parser = humantime::parse_duration)]
    stuck_after: Duration,
    /// Table of records refused by validation
    #[arg(long, global = true, env = "REJECTS_TABLE_NAME", default_value = REJECTS_TABLE)]
    rejects_table: String,
    /// Read with enhanced fan-out (SubscribeToShard) instead of polling
    /// GetRecords: records pushed within ~70 ms, and 2 MB/s per shard of
    /// this pipeline's own instead of a share of 5 reads/s. Costs a
    /// consumer-shard hour per shard plus a fee per GB read. The consumer
    /// is registered if missing, shared by this pipeline's workers, and
    /// never deregistered by the daemon
    #[arg(long, global = true, env = "WILDRYDES_ENHANCED_FAN_OUT")]
    enhanced_fan_out: bool,
    /// What the pipeline's workers share evenly: the load (bytes read per
    /// second, which each worker publishes in the lease table) or the
    /// number of leases. By load, a worker more than 10 % under its fair
    /// share takes one lease from the busiest, at most one every two
    /// lease durations
    #[arg(long, global = true, env = "WILDRYDES_BALANCE", value_enum, default_value_t = BalanceBy::Load)]
    balance: BalanceBy,
    /// Name of the enhanced fan-out consumer [default: the lease table's
    /// name]
    #[arg(
        long,
        global = true,
        env = "WILDRYDES_CONSUMER_NAME",
        requires = "enhanced_fan_out"
    )]
    consumer_name: Option<String>,
}

#[derive(Debug, Args)]
struct ProcessArgs {
    /// Table of aggregates
    #[arg(long, env = "TABLE_NAME", default_value = SENSOR_TABLE)]
    table: String,
    /// BatchWriteItem calls in flight at once
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
}

#[derive(Debug, Args)]
struct AggregateArgs {
    /// Stream the aggregates are put on
    #[arg(long, env = "OUTPUT_STREAM", default_value = AGGREGATES_STREAM)]
    output_stream: String,
    /// How far a unicorn's own clock must pass a minute's end before the
    /// minute is first emitted (a later reading still counts: the minute is
    /// emitted again, complete)
    #[arg(long, env = "ALLOWED_LATENESS", default_value = "10s", value_parser = humantime::parse_duration)]
    allowed_lateness: Duration,
    /// How far behind its unicorn's newest reading (event time) a reading
    /// still counts; older ones are kept as rejects. Up to the stream's
    /// retention
    #[arg(long, env = "HORIZON", default_value = "1h", value_parser = humantime::parse_duration)]
    horizon: Duration,
    /// Wall time without a new reading after which a minute is emitted
    /// although its unicorn's clock has not passed it (the unicorn fell
    /// silent, or the whole shard did)
    #[arg(long, env = "IDLE_FLUSH_AFTER", default_value = "30s", value_parser = humantime::parse_duration)]
    idle_flush_after: Duration,
    /// Longest time between checkpoints; each one first writes the minutes
    /// that changed to the state table. Longer writes less, replays more
    /// after a crash
    #[arg(long, env = "CHECKPOINT_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    checkpoint_interval: Duration,
    /// Table of the aggregator's minutes, per unicorn (hash key Unicorn S,
    /// range key Minute N)
    #[arg(long, env = "STATE_TABLE_NAME", default_value = AGGREGATOR_STATE_TABLE)]
    state_table: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BalanceBy {
    /// The same load (KB/s read) per worker.
    Load,
    /// The same number of leases per worker (KCL 2's way).
    Count,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Position {
    /// The oldest record the stream keeps.
    TrimHorizon,
    /// Only records put after the start.
    Latest,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    wildrydes_cli::logging::init(cli.common.log_format, cli.common.verbose);
    let config = cli.aws.sdk_config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let rejects = RejectStore::new(TableWriter::new(
        dynamodb.clone(),
        &cli.common.rejects_table,
        WriterConfig::default(),
    ));
    let mut consumer = ConsumerConfig {
        idle_poll_interval: cli.common.idle_poll_interval,
        stuck_after: cli.common.stuck_after,
        ..ConsumerConfig::default()
    };
    let (pipeline, default_stream) = match &cli.pipeline {
        PipelineCommand::Console(args) => {
            let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
            return console(args, &cli.common, kinesis, dynamodb, cloudwatch).await;
        }
        PipelineCommand::Process(args) => {
            let writer = WriterConfig {
                max_in_flight: args.max_in_flight,
                ..WriterConfig::default()
            };
            let processor = Processor::new(
                TableWriter::new(dynamodb.clone(), &args.table, writer),
                rejects,
            );
            (Pipeline::Process(processor), AGGREGATES_STREAM)
        }
        PipelineCommand::Aggregate(args) => {
            anyhow::ensure!(
                args.horizon >= args.allowed_lateness,
                "--horizon ({}) is shorter than --allowed-lateness ({}): minutes would be forgotten before they are emitted; raise --horizon",
                humantime::format_duration(args.horizon),
                humantime::format_duration(args.allowed_lateness)
            );
            consumer.idle_flush_after = args.idle_flush_after;
            consumer.checkpoint_interval = args.checkpoint_interval;
            let output =
                StreamWriter::new(kinesis.clone(), &args.output_stream, RetryPolicy::default());
            let rules = WindowRules {
                allowed_lateness: args.allowed_lateness,
                horizon: args.horizon,
                idle_after: args.idle_flush_after,
            };
            let store = MinuteStore::new(dynamodb.clone(), &args.state_table, args.horizon);
            (
                Pipeline::Aggregate(Aggregator::new(output, rejects, store), rules),
                READINGS_STREAM,
            )
        }
        PipelineCommand::Alarm(args) => {
            let alarm = AlarmConfig {
                table_name: args.alarm_table.clone(),
                history_table_name: args.history_table.clone(),
                rejects_table_name: cli.common.rejects_table.clone(),
                topic_arn: args.topic_arn.clone(),
                webhook_url: args.webhook_url.clone(),
                webhook_timeout: args.webhook_timeout,
                console: args.console,
                detector: Detector::new(args.threshold, args.hysteresis)
                    .context("cannot configure the alarm")?,
            };
            anyhow::ensure!(
                alarm.has_notifier(),
                "the alarm tells no one: pass --topic-arn, --webhook-url or --console"
            );
            let alarm = alarm.alarm(&config).context("cannot configure the alarm")?;
            (Pipeline::Alarm(Arc::new(alarm)), READINGS_STREAM)
        }
    };
    let stream = cli
        .common
        .stream
        .clone()
        .unwrap_or_else(|| default_stream.to_owned());
    let lease_table = cli
        .common
        .lease_table
        .clone()
        .unwrap_or_else(|| pipeline.name().lease_table());
    let enhanced_fan_out = cli.common.enhanced_fan_out.then(|| {
        cli.common
            .consumer_name
            .clone()
            .unwrap_or_else(|| lease_table.clone())
    });
    let worker_id = cli
        .common
        .worker_id
        .clone()
        .unwrap_or_else(default_worker_id);
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind(&cli.common.metrics_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for /metrics: pass another --metrics-addr",
                cli.common.metrics_addr
            )
        })?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics and /healthz");
    let stop_metrics = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(metrics::serve(
        listener,
        metrics.clone(),
        stop_metrics.clone().cancelled_owned(),
    ));
    let worker = Worker::new(
        kinesis,
        LeaseTable::new(dynamodb, lease_table),
        Arc::new(pipeline),
        metrics,
        WorkerConfig {
            worker_id,
            stream,
            lease_duration: cli.common.lease_duration,
            initial_position: match cli.common.initial_position {
                Position::TrimHorizon => Checkpoint::TrimHorizon,
                Position::Latest => Checkpoint::Latest,
            },
            shutdown_timeout: cli.common.shutdown_timeout,
            consumer,
            enhanced_fan_out,
            balance: match cli.common.balance {
                BalanceBy::Load => Balance::Load,
                BalanceBy::Count => Balance::Count,
            },
        },
    );
    worker.run(shutdown_signal()).await?;
    stop_metrics.cancel();
    let _ = server.await;
    Ok(())
}

/// Serves the console until SIGTERM or Ctrl-C.
async fn console(
    args: &ConsoleArgs,
    common: &Common,
    kinesis: aws_sdk_kinesis::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
) -> anyhow::Result<()> {
    use wildrydes_daemon::console::{self, ConsoleConfig};
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for the console: pass another --addr",
                args.addr
            )
        })?;
    let addr = listener.local_addr()?;
    let config = ConsoleConfig {
        readings_stream: common
            .stream
            .clone()
            .unwrap_or_else(|| READINGS_STREAM.to_owned()),
        sensor_table: args.table.clone(),
        alarm_table: args.alarm_table.clone(),
        history_table: args.alarm_history_table.clone(),
        rejects_table: common.rejects_table.clone(),
        metrics: args.metrics.clone(),
        cloudwatch: args.cloudwatch,
        read_interval: args.read_interval,
        lookback: args.lookback,
        silent_after: args.silent_after,
        ..ConsoleConfig::default()
    };
    tracing::info!(%addr, stream = %config.readings_stream, "console serving");
    // The URL on standard output, for a person or a script to open.
    println!("console: http://{addr}/");
    console::serve(
        listener,
        config,
        kinesis,
        dynamodb,
        cloudwatch,
        shutdown_signal(),
    )
    .await
    .context("the console's server failed")?;
    Ok(())
}

/// Resolves on SIGTERM (how containers and systemd stop a service) or
/// Ctrl-C; never, if signals cannot be listened for (kill still works).
async fn shutdown_signal() {
    match wildrydes_cli::stop_requested().await {
        Ok(signal) => tracing::info!(
            %signal,
            "stop requested: finishing batches, checkpointing, releasing leases"
        ),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for Ctrl-C or SIGTERM; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_alarms_defaults_are_the_alarm_crates() {
        let cli = Cli::try_parse_from(["wildrydes-daemon", "alarm", "--console"]).unwrap();
        let PipelineCommand::Alarm(args) = cli.pipeline else {
            panic!("not the alarm")
        };
        assert_eq!(
            args.webhook_timeout,
            wildrydes_alarm::notify::DEFAULT_WEBHOOK_TIMEOUT
        );
        let levels = Detector::new(args.threshold, args.hysteresis).unwrap();
        assert_eq!(levels, Detector::default());
    }

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }
}
