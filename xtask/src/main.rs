//! Developer tasks for this repository, run as `cargo xtask <task>` from any
//! folder of it (the alias lives in `.cargo/config.toml`).
//!
//! Follows rust-analyzer's xtask convention: this file only parses flags and
//! dispatches, external commands run through `xshell` without a shell in
//! between, and the crate stays light (clap, anyhow, xshell) so that
//! `cargo xtask --help` builds in seconds on a clean clone.
//!
//! - `test` (in `test.rs`): the format check and every test of the workspace;
//!   what CI runs.
//! - `bench` (in `bench.rs`): the benchmarks, release builds, figures in
//!   `target/bench/`; never part of `test`.
//! - `tools` (in `tools.rs`): the pinned Python tools (cargo-lambda, moto,
//!   cfn-lint) in `target/xtask/venv`, and Debian's chromium.
//! - The operations a user runs (`deploy`, `destroy`, `demo`, `local`,
//!   `verify`, `tail`, `rejects`) are the `wildrydes-ops` crate's
//!   (`crates/ops`): `ops.rs` builds its binary, with the binaries it runs,
//!   in one `cargo build` of the workspace's features, and runs it with the
//!   arguments as given.

mod bench;
mod ops;
mod test;
mod tools;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use xshell::Shell;

/// Developer tasks for the wildrydes workspace. The operations (deploy,
/// destroy, demo, local, verify, tail, rejects) are built on first use; each
/// takes `--help`.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

/// The arguments of an operation, passed on untouched (`--help` included).
#[derive(Debug, clap::Args)]
struct Passed {
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Check formatting, lint the templates, then run every test of the
    /// workspace (what CI runs).
    Test,
    /// Measure the pipeline (core benches, the stream processor's handler,
    /// the Lambda binary, the daemon, the producer; release builds) and
    /// write the figures to target/bench/. Not part of `test`.
    Bench(bench::Flags),
    /// Install the pinned Python tools (cargo-lambda, moto, cfn-lint) into
    /// target/xtask/venv and Debian's chromium (for the console's browser
    /// test), and print where they are; plain `cargo test` finds them there.
    Tools,
    /// Serve Kinesis and DynamoDB on 127.0.0.1 with the workshop's streams and
    /// tables, print the environment that points AWS tools at them, and run
    /// until Ctrl-C.
    #[command(disable_help_flag = true)]
    Local(Passed),
    /// List the records the pipeline refused, or put them back on their
    /// stream after a fix.
    #[command(disable_help_flag = true)]
    Rejects(Passed),
    /// Build the Lambda functions and create or update the whole pipeline
    /// on AWS (CloudFormation stack of infra/wildrydes.yaml) through a
    /// change set; a second run with no change changes nothing.
    #[command(disable_help_flag = true)]
    Deploy(Passed),
    /// Delete the stack; the tables of aggregates and rejects are kept
    /// unless --delete-data.
    #[command(disable_help_flag = true)]
    Destroy(Passed),
    /// The whole pipeline on the embedded backend in about a minute: a
    /// producer fleet, the daemon's aggregate, process and alarm pipelines,
    /// then a report and a check of the table against the producer's ledger.
    #[command(disable_help_flag = true)]
    Demo(Passed),
    /// Recompute the aggregates producer ledgers imply and compare them,
    /// item by item, with the table.
    #[command(disable_help_flag = true)]
    Verify(Passed),
    /// Print a stream's records as they arrive, as indented JSON.
    #[command(disable_help_flag = true)]
    Tail(Passed),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    match cli.task {
        Task::Test => test::run(&sh),
        Task::Bench(flags) => bench::run(&sh, &flags),
        Task::Tools => {
            println!("{}", tools::ensure_venv(&sh)?.bin.display());
            println!("{}", tools::ensure_chromium(&sh)?.display());
            Ok(())
        }
        Task::Local(p) => ops::run(&sh, "local", &p.args),
        Task::Rejects(p) => ops::run(&sh, "rejects", &p.args),
        Task::Deploy(p) => ops::run(&sh, "deploy", &p.args),
        Task::Destroy(p) => ops::run(&sh, "destroy", &p.args),
        Task::Demo(p) => ops::run(&sh, "demo", &p.args),
        Task::Verify(p) => ops::run(&sh, "verify", &p.args),
        Task::Tail(p) => ops::run(&sh, "tail", &p.args),
    }
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
    fn an_operations_flags_are_passed_on_untouched() {
        let parsed = Cli::try_parse_from([
            "xtask",
            "deploy",
            "--help",
            "--region",
            "eu-west-1",
            "--skip-build",
        ])
        .unwrap();
        let Task::Deploy(p) = parsed.task else {
            panic!("not deploy: {parsed:?}")
        };
        assert_eq!(p.args, ["--help", "--region", "eu-west-1", "--skip-build"]);
    }

    #[test]
    fn project_root_is_the_workspace_that_holds_xtask() {
        let root = project_root();
        for file in ["xtask/Cargo.toml", ".cargo/config.toml"] {
            let path = root.join(file);
            assert!(path.is_file(), "{}", path.display());
        }
    }
}
