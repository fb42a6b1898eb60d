//! Running a real Lambda binary under cargo-lambda's runtime API emulator:
//! what the runtime tests of every function share.
//!
//! cargo-lambda is found by [`crate::tools`].

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};
use wildrydes_local_aws::LocalAws;

/// The cargo-lambda program.
pub fn cargo_lambda() -> PathBuf {
    crate::tools::program("cargo-lambda")
}

/// cargo-lambda's Lambda runtime API on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct RuntimeApi {
    /// Its port: functions and invocations go there.
    pub port: u16,
    _server: Child,
}

impl RuntimeApi {
    /// Starts it on a free port and waits until it accepts connections.
    pub async fn start() -> Self {
        Self::start_with(&cargo_lambda()).await
    }

    /// Starts it with the cargo-lambda program `cargo_lambda`.
    pub async fn start_with(cargo_lambda: &Path) -> Self {
        // cargo-lambda takes a port number, not a listener: take a free one.
        let port = crate::free_port();
        let server = Command::new(cargo_lambda)
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", cargo_lambda.display()));
        crate::until_listening(port).await;
        Self {
            port,
            _server: server,
        }
    }

    /// Starts the function binary `exe` against this API and `local`, with
    /// `env` on top; its stdout and stderr are piped.
    pub fn function(&self, exe: &str, local: &LocalAws, env: &[(&str, &str)]) -> Child {
        Command::new(exe)
            .env_clear()
            .envs(local.env_vars())
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{}/.rt", self.port),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"))
    }

    /// Invokes the function with the event in `file`; its JSON answer.
    pub async fn invoke(&self, file: &Path) -> serde_json::Value {
        let output = Command::new(cargo_lambda())
            .args(["lambda", "invoke", "-A", "127.0.0.1", "-P"])
            .arg(self.port.to_string())
            .args(["--output-format", "json", "--data-file"])
            .arg(file)
            .output()
            .await
            .expect("cannot run cargo lambda invoke");
        assert!(
            output.status.success(),
            "invoke failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("the function answers JSON")
    }
}
