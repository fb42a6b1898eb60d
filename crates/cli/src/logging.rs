//! Logs of the command-line binaries (the producer, the daemon, the
//! operations): to stderr, human or JSON, our crates at `info` and the AWS
//! SDK's at `error` unless asked. The SDK's credential chain logs each
//! provider it tries (environment, profile, IMDS) at WARN, a dozen lines
//! before the one error that says what to do; a new user without
//! credentials should see only that line. `-v` or `RUST_LOG` shows them.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The filter of `verbosity` (0: ours at info, libraries at error; 1: ours
/// at debug, libraries at warn; 2 or more: everything at debug), unless
/// `RUST_LOG` is set, which wins.
pub fn filter(verbosity: u8) -> EnvFilter {
    if let Ok(filter) = EnvFilter::try_from_default_env() {
        return filter;
    }
    EnvFilter::new(default_directives(verbosity))
}

/// The directives [`filter`] uses without `RUST_LOG`.
pub fn default_directives(verbosity: u8) -> String {
    // Our libraries and binaries, by their tracing targets.
    const OURS: [&str; 8] = [
        "wildrydes_core",
        "wildrydes_alarm",
        "wildrydes_daemon",
        "wildrydes_producer",
        "wildrydes_ops",
        "wildrydes_local_aws",
        "producer",
        "wildrydes_cli",
    ];
    let (ours, libraries) = match verbosity {
        0 => ("info", "error"),
        1 => ("debug", "warn"),
        _ => return "debug".to_owned(),
    };
    let mut directives = vec![libraries.to_owned()];
    directives.extend(OURS.iter().map(|target| format!("{target}={ours}")));
    directives.join(",")
}

/// Installs the subscriber: `format` to stderr, colours only on a terminal.
pub fn init(format: LogFormat, verbosity: u8) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(verbosity))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_the_sdk_says_only_errors() {
        let d = default_directives(0);
        assert!(d.starts_with("error,"), "{d}");
        assert!(d.contains("wildrydes_producer=info"), "{d}");
        assert!(d.contains("producer=info"), "{d}");
        assert!(default_directives(1).starts_with("warn,"));
        assert_eq!(default_directives(3), "debug");
        // Every form parses.
        for v in 0..3 {
            EnvFilter::new(default_directives(v));
        }
    }
}
