//! Running an operation of `crates/ops`: build `wildrydes-ops` (and, for
//! the demo, the binaries it starts) in one `cargo build`, then run it.
//!
//! One cargo invocation over the workspace's unified features
//! (`crates/workspace-hack`) compiles each dependency once, shared with
//! `cargo test` and every other build; the binaries are the ones just built,
//! never a stale copy.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context as _;
use xshell::{Shell, cmd};

use crate::tools;

/// Runs `wildrydes-ops <operation> <args>` from the workspace root.
pub(crate) fn run(sh: &Shell, operation: &str, args: &[OsString]) -> anyhow::Result<()> {
    let help = args.iter().any(|a| a == "--help" || a == "-h");
    // The demo starts the producer and the daemon: build them with it.
    // Only deploy and destroy need the CloudFormation and S3 SDKs (ops'
    // default feature `deploy`, a third of a clean build).
    let packages: &[&str] = match operation {
        "deploy" | "destroy" => &["-p", "wildrydes-ops"],
        "demo" if !help => &[
            "--no-default-features",
            "-p",
            "wildrydes-ops",
            "-p",
            "wildrydes-producer",
            "-p",
            "wildrydes-daemon",
        ],
        _ => &["--no-default-features", "-p", "wildrydes-ops"],
    };
    eprintln!("xtask: building {operation} (the first build of a clean clone takes a few minutes)");
    cmd!(sh, "cargo build --quiet --bins {packages...}")
        .run()
        .with_context(|| format!("cannot build the {operation} operation (errors above)"))?;
    let exe = target_dir(sh).join("debug/wildrydes-ops");
    let mut command = std::process::Command::new(&exe);
    command
        .arg(operation)
        .args(args)
        .current_dir(sh.current_dir());
    // Deploy builds the Lambda zips with cargo-lambda from the pinned tools.
    if operation == "deploy" && !help {
        command.env(tools::TOOLS_BIN_ENV, tools::ensure_venv(sh)?.bin);
    }
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    // The operation has said what went wrong; pass its exit code on.
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// Where cargo puts what it builds: `CARGO_TARGET_DIR` if set, else
/// `target/` at the workspace root.
fn target_dir(sh: &Shell) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| sh.current_dir().join(d))
        .unwrap_or_else(|| sh.current_dir().join("target"))
}
