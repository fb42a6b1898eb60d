//! `producer`: parses the flags, installs logging and the stop signals, and
//! hands over to `wildrydes_producer::app`.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use wildrydes_producer::Cli;
use wildrydes_producer::app::{self, EXIT_ERROR, EXIT_USAGE};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs();
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

/// Logs to stderr, `info` for the producer and `warn` for libraries unless
/// `RUST_LOG` says otherwise.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,wildrydes_producer=info,producer=info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Resolves on the first Ctrl-C or SIGTERM; a second one exits at once,
/// without flushing. If signals cannot be watched, never resolves.
async fn stop_requested() {
    match signal().await {
        Ok(name) => {
            tracing::info!("{name} received: finishing; press Ctrl-C again to exit at once");
            tokio::spawn(async {
                if let Ok(name) = signal().await {
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

/// The next Ctrl-C (SIGINT) or, on Unix, SIGTERM, by name.
async fn signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.map(|()| "Ctrl-C"),
            _ = terminate.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| "Ctrl-C")
    }
}
