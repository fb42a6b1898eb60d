//! Developer tasks for this repository, run as `cargo xtask <task>` from any
//! folder of it (the alias lives in `.cargo/config.toml`).
//!
//! Follows rust-analyzer's xtask convention: this file only parses flags and
//! dispatches; each task is a module with a `run` entry point, and external
//! commands are run with `xshell`, without a shell in between.
//!
//! - `test` (in `test.rs`): the format check and every test of the workspace;
//!   what CI runs.
//! - `local` (in `local.rs`): the embedded Kinesis and DynamoDB in the
//!   foreground, for the aws CLI and our binaries.
//! - `rejects` (in `rejects.rs`): list and re-drive refused records.
//! - `deploy` and `destroy` (in the library, `lib.rs`, so that tests drive
//!   them in-process): the pipeline on AWS, and taking it down.
//! - `demo`, `verify`, `tail` (in the library): the whole pipeline locally
//!   with its proof; a ledger against the table; a stream's records.
//! - `bench` (in `bench.rs`): the benchmarks, release builds, figures in
//!   `target/bench/`; never part of `test`.
//! - `tools.rs`: finding (and, later, installing) the tools tasks need.

mod bench;
mod local;
mod rejects;
mod test;
mod tools;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use xshell::Shell;

/// Developer tasks for the wildrydes workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Check formatting, then run every test of the workspace (what CI runs).
    Test,
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
    Deploy(xtask::deploy::Flags),
    /// Delete the stack; the tables of aggregates and rejects are kept
    /// unless --delete-data.
    Destroy(xtask::destroy::Flags),
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
    /// Measure the pipeline (core benches, the stream processor's handler,
    /// the Lambda binary, the daemon, the producer; release builds) and
    /// write the figures to target/bench/. Not part of `test`.
    Bench(bench::Flags),
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
    /// after 1 s, the processing daemon killed (SIGKILL) and restarted every 3 s
    #[arg(long)]
    faults: bool,
}

/// Flags of `cargo xtask verify`.
#[derive(Debug, Args)]
struct VerifyFlags {
    /// The ledger `producer --ledger` wrote; repeat it for several producers
    /// that wrote to the same stream
    #[arg(long, value_name = "FILE", required = true)]
    ledger: Vec<PathBuf>,
    /// The table of aggregates
    #[arg(long, env = "TABLE_NAME", default_value = wildrydes_core::resources::SENSOR_TABLE)]
    table: String,
    #[command(flatten)]
    aws: wildrydes_core::aws::AwsArgs,
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
    aws: wildrydes_core::aws::AwsArgs,
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
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    match cli.task {
        Task::Test => test::run(&sh),
        Task::Local(flags) => local::run(&flags),
        Task::Rejects(flags) => rejects::run(flags),
        Task::Deploy(flags) => xtask::deploy::run(&sh, flags, || Ok(tools::ensure_venv(&sh)?.bin)),
        Task::Destroy(flags) => xtask::destroy::run(flags),
        Task::Demo(flags) => demo(&sh, &flags),
        Task::Verify(flags) => verify(&flags),
        Task::Tail(flags) => tail(&flags),
        Task::Bench(flags) => bench::run(&sh, &flags),
    }
}

/// Builds the binaries the demo runs, runs it, prints the report; fails
/// when the verification does.
fn demo(sh: &Shell, flags: &DemoFlags) -> anyhow::Result<()> {
    xshell::cmd!(
        sh,
        "cargo build --quiet -p wildrydes-producer -p wildrydes-daemon"
    )
    .run()?;
    let root = project_root();
    let options = xtask::demo::DemoOptions {
        unicorns: flags.unicorns,
        duration_secs: flags.duration,
        time_scale: flags.time_scale,
        faults: flags.faults,
        work_dir: root.join("target/demo"),
        bin_dir: root.join("target/debug"),
        progress: true,
        settle_timeout: std::time::Duration::from_secs(90),
    };
    let report = tokio::runtime::Runtime::new()?.block_on(xtask::demo::run(&options))?;
    println!("{}", xtask::demo::describe(&report));
    println!("Ledger and logs: {}", options.work_dir.display());
    anyhow::ensure!(
        report.verification.passed(),
        "the table does not match the producer's ledger (see above)"
    );
    Ok(())
}

fn verify(flags: &VerifyFlags) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let config = flags.aws.sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let ledgers: Vec<_> = flags.ledger.iter().map(PathBuf::as_path).collect();
        let (_, v) = xtask::verify::verify_ledgers(&ledgers, &dynamodb, &flags.table).await?;
        print!("{}", xtask::verify::describe(&v, 20));
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

fn tail(flags: &TailFlags) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let config = flags.aws.sdk_config().await;
        xtask::tail::tail(
            &aws_sdk_kinesis::Client::new(&config),
            &flags.stream,
            flags.from_start,
        )
        .await
    })
}

/// The workspace root, found from this crate's manifest directory so that
/// `cargo xtask` behaves the same from any folder of the repository.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn in_memory_and_data_dir_exclude_each_other() {
        let parsed = Cli::try_parse_from(["xtask", "local", "--in-memory", "--data-dir", "x"]);
        assert!(parsed.is_err());
    }

    #[test]
    fn project_root_is_the_workspace() {
        let manifest =
            std::fs::read_to_string(project_root().join("Cargo.toml")).unwrap_or_default();
        assert!(manifest.contains("[workspace]"));
    }
}
