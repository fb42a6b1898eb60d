//! `wildrydes-ops`: the operations a user of this repository runs, each
//! also `cargo xtask <operation>` (xtask builds this binary and runs it):
//! the pipeline on AWS and off it again, the whole pipeline locally with its
//! proof, the embedded backend, and the tools to look at streams, tables
//! and rejects. Flags are parsed here; each operation is a module of the
//! library (`lib.rs`), which tests drive in-process.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use wildrydes_ops::{demo, local, rejects, tail, verify};
#[cfg(feature = "deploy")]
use wildrydes_ops::{deploy, destroy};

/// Operations of the Wild Rydes pipeline: deploy it to AWS, run it locally,
/// look at what it did. Every operation honours --region, --profile,
/// --endpoint-url and the AWS environment, like the aws CLI.
#[derive(Debug, Parser)]
#[command(name = "wildrydes-ops", version, about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Serve Kinesis and DynamoDB on 127.0.0.1 with the workshop's streams and
    /// table, print the environment that points AWS tools at them, and run
    /// until Ctrl-C.
    Local(LocalFlags),
    /// List the records the pipeline refused, or put them back on their
    /// stream after a fix (honours --region, --profile, --endpoint-url and
    /// the AWS environment, like the aws CLI).
    Rejects(rejects::Flags),
    /// Build the Lambda functions and create or update the whole pipeline
    /// on AWS (CloudFormation stack of infra/wildrydes.yaml) through a
    /// change set; a second run with no change changes nothing.
    #[cfg(feature = "deploy")]
    Deploy(deploy::Flags),
    /// Delete the stack; the tables of aggregates and rejects are kept
    /// unless --delete-data.
    #[cfg(feature = "deploy")]
    Destroy(destroy::Flags),
    /// The whole pipeline on the embedded backend in about a minute: a
    /// producer fleet (one unicorn draining its magic), the daemon's
    /// aggregate, process and alarm pipelines, then a report and a check of
    /// the table against the producer's ledger.
    Demo(DemoFlags),
    /// Recompute the aggregates a producer ledger implies and compare them,
    /// item by item, with the table (honours --region, --profile,
    /// --endpoint-url and the AWS environment).
    Verify(VerifyFlags),
    /// Print a stream's records as they arrive, as indented JSON (like the
    /// workshop's consumer); handy with `cargo xtask local`.
    Tail(TailFlags),
}

/// Flags of `cargo xtask demo`.
#[derive(Debug, Args)]
struct DemoFlags {
    /// Unicorns in the fleet; the first drains its magic below 50 and back
    #[arg(long, default_value_t = 5)]
    unicorns: usize,
    /// Simulated time to produce, in seconds
    #[arg(long, default_value_t = 360)]
    duration: u64,
    /// Simulated seconds per real second
    #[arg(long, default_value_t = 30)]
    time_scale: u32,
    /// Run under faults: Kinesis write limits enforced, iterators expiring
    /// after 1 s, half the BatchWriteItem calls throttled, the readings
    /// stream split and merged, a late device uploading a backlog, and the
    /// processing and aggregating daemons killed (SIGKILL) in turn and
    /// restarted, every 3 s at most
    #[arg(long)]
    faults: bool,
    /// The producer packs readings into KPL aggregates, as for fleets above
    /// ~1,000 unicorns per shard (the late device's too, with --faults);
    /// every consumer deaggregates, and the report counts the Kinesis
    /// records. The demo's one shard then takes about 5,000 readings a
    /// second (1,000 without): a fleet above that divided by --time-scale
    /// makes the producer fall behind, and the run lasts longer
    #[arg(long)]
    aggregate: bool,
    /// Longest wait, in seconds, for the table to match the ledger once the
    /// producer is done [default: 90, plus 10 per 100,000 readings]
    #[arg(long, value_name = "SECS")]
    settle_timeout: Option<u64>,
    /// Also start the operators' console (`wildrydes-daemon console`), print
    /// its URL, and after the verification keep the backend, the daemons
    /// and the console running until Ctrl-C
    #[arg(long)]
    console: bool,
    /// Folder of the `producer` and `wildrydes-daemon` binaries the demo
    /// starts [default: this program's folder, where `cargo xtask demo`
    /// has just built them]
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

/// Flags of `cargo xtask verify`.
#[derive(Debug, Args)]
struct VerifyFlags {
    /// The ledger `producer --ledger` wrote; repeat it for several producers
    /// that wrote to the same stream
    #[arg(long, value_name = "FILE", required = true)]
    ledger: Vec<PathBuf>,
    /// The table of aggregates
    #[arg(long, env = "TABLE_NAME", default_value = wildrydes_core::names::SENSOR_TABLE)]
    table: String,
    #[command(flatten)]
    aws: wildrydes_cli::AwsArgs,
}

/// Flags of `cargo xtask tail`.
#[derive(Debug, Args)]
struct TailFlags {
    /// The stream, e.g. wildrydes or wildrydes-aggregated
    stream: String,
    /// Start from the oldest record kept instead of from now
    #[arg(long)]
    from_start: bool,
    #[command(flatten)]
    aws: wildrydes_cli::AwsArgs,
}

/// Flags of `cargo xtask local`.
#[derive(Debug, Args)]
struct LocalFlags {
    /// Keep streams, records, tables and items in DIR across restarts
    /// (relative to the current folder) [default: target/local-aws at the
    /// root of the workspace].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Keep nothing on disk: start empty and lose everything on exit.
    #[arg(long, conflicts_with = "data_dir")]
    in_memory: bool,

    /// Port for the Kinesis API on 127.0.0.1; pin it so endpoint URLs stay
    /// valid across restarts (0 picks a free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    kinesis_port: u16,

    /// Port for the DynamoDB API on 127.0.0.1; pin it so endpoint URLs stay
    /// valid across restarts (0 picks a free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    dynamodb_port: u16,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Local(flags) => local::run(&local::Options {
            data_dir: flags.data_dir,
            in_memory: flags.in_memory,
            kinesis_port: flags.kinesis_port,
            dynamodb_port: flags.dynamodb_port,
            root: project_root(),
        }),
        Task::Rejects(flags) => rejects::run(flags),
        #[cfg(feature = "deploy")]
        Task::Deploy(flags) => {
            let sh = xshell::Shell::new()?;
            sh.change_dir(project_root());
            deploy::run(&sh, flags, deploy::tools_bin_from_env)
        }
        #[cfg(feature = "deploy")]
        Task::Destroy(flags) => destroy::run(flags),
        Task::Demo(flags) => run_demo(&flags),
        Task::Verify(flags) => run_verify(&flags),
        Task::Tail(flags) => run_tail(&flags),
    }
}

/// Runs the demo with the binaries beside this one, prints the report;
/// fails when the verification does.
fn run_demo(flags: &DemoFlags) -> anyhow::Result<()> {
    let bin_dir = match &flags.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| anyhow::anyhow!("cannot tell this program's folder: pass --bin-dir"))?,
    };
    let root = project_root();
    let options = demo::DemoOptions {
        unicorns: flags.unicorns,
        duration_secs: flags.duration,
        time_scale: flags.time_scale,
        faults: flags.faults,
        aggregate: flags.aggregate,
        work_dir: root.join("target/demo"),
        bin_dir,
        progress: true,
        settle_timeout: flags.settle_timeout.map_or_else(
            || demo::DemoOptions::settle_timeout_for(flags.unicorns, flags.duration),
            std::time::Duration::from_secs,
        ),
        console: flags.console,
    };
    let report = tokio::runtime::Runtime::new()?.block_on(demo::run(&options))?;
    println!("{}", demo::describe(&report));
    println!("Ledger and logs: {}", options.work_dir.display());
    anyhow::ensure!(
        report.verification.passed(),
        "the table does not match the producer's ledger (see above)"
    );
    Ok(())
}

fn run_verify(flags: &VerifyFlags) -> anyhow::Result<()> {
    wildrydes_ops::block_on(async {
        let config = flags.aws.sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let ledgers: Vec<_> = flags.ledger.iter().map(PathBuf::as_path).collect();
        let (_, v) = verify::verify_ledgers(&ledgers, &dynamodb, &flags.table).await?;
        print!("{}", verify::describe(&v, 20));
        let names: Vec<_> = flags
            .ledger
            .iter()
            .map(|l| l.display().to_string())
            .collect();
        anyhow::ensure!(
            v.passed(),
            "table {} does not match ledger {}",
            flags.table,
            names.join(" + ")
        );
        Ok(())
    })
}

fn run_tail(flags: &TailFlags) -> anyhow::Result<()> {
    wildrydes_ops::block_on(async {
        let config = flags.aws.sdk_config().await;
        tail::tail(
            &aws_sdk_kinesis::Client::new(&config),
            &flags.stream,
            flags.from_start,
        )
        .await
    })
}

/// The workspace root, found from this crate's manifest directory so that
/// the operations behave the same from any folder of the repository.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/ops lives two levels below the workspace root")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn in_memory_and_data_dir_exclude_each_other() {
        let parsed =
            Cli::try_parse_from(["wildrydes-ops", "local", "--in-memory", "--data-dir", "x"]);
        assert!(parsed.is_err());
    }

    #[test]
    fn demo_aggregate_and_settle_timeout_are_parsed() {
        let Cli {
            task: Task::Demo(flags),
        } = Cli::try_parse_from([
            "wildrydes-ops",
            "demo",
            "--aggregate",
            "--settle-timeout",
            "300",
        ])
        .unwrap()
        else {
            panic!("not the demo");
        };
        assert!(flags.aggregate);
        assert_eq!(flags.settle_timeout, Some(300));
        let help = Cli::command()
            .find_subcommand_mut("demo")
            .unwrap()
            .render_long_help()
            .to_string();
        // Wrapped to the terminal's width: compare words.
        let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains("~1,000 unicorns per shard"), "{help}");
    }

    #[cfg(feature = "deploy")]
    #[test]
    fn deploy_alarm_enhanced_fan_out_is_off_unless_asked_for() {
        let settings = |args: &[&str]| {
            let Cli {
                task: Task::Deploy(flags),
            } = Cli::try_parse_from(["wildrydes-ops", "deploy"].iter().chain(args)).unwrap()
            else {
                panic!("not deploy");
            };
            flags.options(Path::new("/")).unwrap().settings
        };
        assert!(!settings(&[]).alarm_enhanced_fan_out);
        assert!(settings(&["--alarm-enhanced-fan-out"]).alarm_enhanced_fan_out);
        let help = Cli::command()
            .find_subcommand_mut("deploy")
            .unwrap()
            .render_long_help()
            .to_string();
        let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains("--alarm-enhanced-fan-out"), "{help}");
        assert!(words.contains("consumer-shard-hour charge"), "{help}");
    }

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn project_root_is_the_workspace_that_holds_this_crate() {
        let root = project_root();
        for file in ["crates/ops/Cargo.toml", "infra/wildrydes.yaml"] {
            let path = root.join(file);
            assert!(path.is_file(), "{}", path.display());
        }
    }
}
