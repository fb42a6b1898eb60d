//! moto's server on a free port of 127.0.0.1: CloudFormation, IAM, Lambda,
//! S3, SNS, SQS and STS for the deploy and SNS tests, stopped when dropped.

use std::process::Stdio;

use aws_config::SdkConfig;
use tokio::process::{Child, Command};

/// moto's fixed account id.
pub const ACCOUNT: &str = "123456789012";

/// A moto server of its own.
#[derive(Debug)]
pub struct Moto {
    /// Its URL, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// SDK configuration for it: test credentials, region
    /// [`wildrydes_local_aws::REGION`], nothing from the host.
    pub config: SdkConfig,
    _server: Child,
}

impl Moto {
    /// Starts moto and waits until it accepts connections.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts moto with AWS's managed IAM policies loaded, as
    /// CloudFormation stacks that attach them need.
    pub async fn start_with_managed_policies() -> Self {
        Self::start_with(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]).await
    }

    async fn start_with(env: &[(&str, &str)]) -> Self {
        let port = crate::free_port();
        let program = crate::tools::program("moto_server");
        let mut server = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        tokio::select! {
            () = crate::until_listening(port) => {}
            status = server.wait() => panic!("moto_server exited before answering: {status:?}"),
        }
        let endpoint = format!("http://127.0.0.1:{port}");
        Self {
            config: wildrydes_local_aws::static_sdk_config(Some(&endpoint)),
            endpoint,
            _server: server,
        }
    }
}
