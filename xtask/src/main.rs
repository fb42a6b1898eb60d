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
//! - `tools.rs`: finding (and, later, installing) the tools tasks need.

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
