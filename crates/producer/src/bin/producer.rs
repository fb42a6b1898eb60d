//! `producer`: parses the flags, installs logging and the stop signals, and
//! hands over to `wildrydes_producer::app`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use wildrydes_producer::Cli;
use wildrydes_producer::app::{self, EXIT_ERROR, EXIT_USAGE};

fn main() -> ExitCode {
    let cli = Cli::parse();
    wildrydes_cli::logging::init(wildrydes_cli::LogFormat::Human, cli.verbose);
    let settings = match cli.settings() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(&cli, &settings) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Builds the runtime and the SDK configuration, runs the producer and
/// prints its summary; returns the exit status.
fn run(cli: &Cli, settings: &wildrydes_producer::Settings) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let sdk = app::load_sdk_config(&cli.aws).await;
        let summary =
            app::start(settings, &sdk, cli.aws.profile.as_deref(), stop_requested()).await?;
        eprint!("{summary}");
        Ok(app::exit_status(&summary))
    })
}

/// Resolves on the first Ctrl-C or SIGTERM; a second one exits at once,
/// without flushing. If signals cannot be watched, never resolves.
async fn stop_requested() {
    match wildrydes_cli::stop_requested().await {
        Ok(name) => {
            tracing::info!("{name} received: finishing; press Ctrl-C again to exit at once");
            tokio::spawn(async {
                if let Ok(name) = wildrydes_cli::stop_requested().await {
                    eprintln!("\n{name} received again: exiting without flushing");
                    std::process::exit(130);
                }
            });
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot watch for Ctrl-C; stop with --duration or kill");
            std::future::pending::<()>().await;
        }
    }
}
