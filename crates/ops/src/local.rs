//! `cargo xtask local`: the embedded Kinesis and DynamoDB in the foreground,
//! with the workshop's streams and table, until Ctrl-C or SIGTERM.

use anyhow::Context as _;
use wildrydes_local_aws::workshop::{
    AGGREGATES_STREAM, READINGS_STREAM, REJECTS_TABLE, SENSOR_TABLE, ensure_workshop_resources,
};
use wildrydes_local_aws::{LocalAws, LocalAwsOptions};

/// What `local` serves, and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// Keep state in this folder; `None` with `in_memory` false: the default
    /// folder below `root`.
    pub data_dir: Option<std::path::PathBuf>,
    /// Keep nothing on disk.
    pub in_memory: bool,
    /// Kinesis port (0: a free one).
    pub kinesis_port: u16,
    /// DynamoDB port (0: a free one).
    pub dynamodb_port: u16,
    /// The workspace root.
    pub root: std::path::PathBuf,
}

/// Default data directory, below the workspace root: inside `target/` so that
/// `cargo clean` also resets the local backend.
const DEFAULT_DATA_DIR: &str = "target/local-aws";

/// Starts the backend, prints how to reach it, and serves until stopped.
pub fn run(flags: &Options) -> anyhow::Result<()> {
    let data_dir = match (&flags.data_dir, flags.in_memory) {
        (_, true) => None,
        (Some(dir), false) => Some(
            std::path::absolute(dir)
                .with_context(|| format!("cannot resolve data directory {}", dir.display()))?,
        ),
        (None, false) => Some(flags.root.join(DEFAULT_DATA_DIR)),
    };
    let options = LocalAwsOptions {
        data_dir,
        kinesis_port: flags.kinesis_port,
        dynamodb_port: flags.dynamodb_port,
        ..LocalAwsOptions::default()
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(serve(options))
}

async fn serve(options: LocalAwsOptions) -> anyhow::Result<()> {
    let local = LocalAws::start(options).await?;
    // On error `local` is dropped, which stops the servers.
    ensure_workshop_resources(&local).await?;

    let state = match local.data_dir() {
        Some(dir) => format!("state kept in {}", dir.display()),
        None => "in memory, nothing kept".to_owned(),
    };
    println!("Local AWS is up ({state}).");
    println!(
        "  Kinesis:  {}  streams {READINGS_STREAM}, {AGGREGATES_STREAM}",
        local.kinesis_endpoint()
    );
    println!(
        "  DynamoDB: {}  tables {SENSOR_TABLE}, {REJECTS_TABLE}",
        local.dynamodb_endpoint()
    );
    println!();
    println!("Point the aws CLI, SDKs and our binaries at it from another shell:");
    for line in local.env_lines() {
        println!("export {line}");
    }
    println!();
    println!("Then try: aws kinesis list-streams; aws dynamodb list-tables");
    println!("Press Ctrl-C to stop.");

    let signal = wildrydes_cli::stop_requested()
        .await
        .context("cannot listen for Ctrl-C; stop the process another way")?;
    println!("{signal} received, stopping.");
    local.shutdown().await?;
    println!("Stopped cleanly.");
    Ok(())
}
