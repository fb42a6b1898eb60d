//! The `producer` binary as an operator meets it: help, bad arguments, and
//! one clear line for each way it cannot start; and a short real run.

mod common;

use std::process::Output;

use common::{bounded, local_aws, stream};
use tokio::process::Command;

/// The binary with a clean environment and an empty home: nothing from the
/// host's AWS setup (no ~/.aws, no AWS_* variables, no instance metadata).
fn producer(home: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_producer"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true);
    cmd
}

/// `producer` with test credentials.
fn with_credentials(home: &std::path::Path) -> Command {
    let mut cmd = producer(home);
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    cmd
}

async fn output(cmd: &mut Command) -> Output {
    cmd.output().await.expect("the producer binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn help_tells_a_new_user_what_to_do() {
    bounded(async {
        let home = tempfile::tempdir().unwrap();
        let out = output(producer(home.path()).arg("--help")).await;
        assert!(out.status.success());
        let help = text(&out.stdout);
        for expected in [
            "--name <NAME>",
            "--count <N>",
            "[env: WILDRYDES_STREAM=]",
            "[default: wildrydes]",
            "--region <REGION>",
            "--profile <NAME>",
            "--endpoint-url <URL>",
            "magic-drain",
            "--time-scale <X>",
            "--duration <DURATION>",
            "--start-time <TIME>",
            "--seed <N>",
            "--ledger <FILE>",
            "--quiet",
            "Examples:",
            "Exit status",
        ] {
            assert!(
                help.contains(expected),
                "--help lacks {expected:?}:\n{help}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn bad_arguments_exit_2_with_a_message() {
    bounded(async {
        let home = tempfile::tempdir().unwrap();
        for (args, message) in [
            (
                vec!["--time-scale", "0"],
                "error: invalid value '0' for '--time-scale <X>': must be above 0",
            ),
            (
                vec!["--duration", "later"],
                "error: invalid value 'later' for '--duration <DURATION>'",
            ),
            (
                vec!["--name", "A", "--name", "A"],
                "error: --name A is given twice",
            ),
            (
                vec!["--frobnicate"],
                "error: unexpected argument '--frobnicate'",
            ),
        ] {
            let out = output(producer(home.path()).args(&args)).await;
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            let stderr = text(&out.stderr);
            assert!(stderr.starts_with(message), "{args:?}: {stderr}");
        }
    })
    .await;
}

#[tokio::test]
async fn an_unknown_stream_is_one_clear_line() {
    bounded(async {
        let local = local_aws(false).await;
        let home = tempfile::tempdir().unwrap();
        let endpoint = local.kinesis_endpoint();
        let out = output(with_credentials(home.path()).args([
            "--stream",
            "nope",
            "--region",
            "us-west-2",
            "--endpoint-url",
            &endpoint,
            "--quiet",
        ]))
        .await;
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stderr),
            format!(
                "error: stream nope not found in us-west-2 at {endpoint}: create it (cargo xtask local does) or pass --stream\n"
            )
        );
        local.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_endpoint_is_one_clear_line() {
    bounded(async {
        // A port nobody listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home = tempfile::tempdir().unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let out = output(
            with_credentials(home.path())
                .env("AWS_ENDPOINT_URL_KINESIS", &endpoint)
                .env("AWS_REGION", "eu-west-1"),
        )
        .await;
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: cannot reach kinesis at {endpoint} (region eu-west-1): "
            )),
            "{stderr}"
        );
        assert!(stderr.contains("refused"), "{stderr}");
        assert!(
            stderr
                .trim_end()
                .ends_with("check --endpoint-url, that the service is running, and the network"),
            "{stderr}"
        );
    })
    .await;
}

#[tokio::test]
async fn missing_credentials_are_one_clear_line() {
    bounded(async {
        let home = tempfile::tempdir().unwrap();
        let out =
            output(producer(home.path()).args(["--endpoint-url", "http://127.0.0.1:9"])).await;
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("error: no AWS credentials found ("),
            "{stderr}"
        );
        assert!(
            stderr.contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
            "{stderr}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_short_run_prints_dots_and_a_summary() {
    bounded(async {
        let local = local_aws(false).await;
        stream(&local, "wildrydes", 1).await;
        let home = tempfile::tempdir().unwrap();
        let mut cmd = producer(home.path());
        cmd.envs(local.env_vars()).args([
            "--count",
            "2",
            "--duration",
            "5s",
            "--time-scale",
            "1000",
            "--seed",
            "3",
        ]);
        let out = output(&mut cmd).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert_eq!(text(&out.stdout), "..........\n");
        assert!(
            stderr.contains("stream wildrydes, seed 3, 2 unicorn(s)"),
            "{stderr}"
        );
        assert!(
            stderr.contains("generated 10, sent 10, retried 0, failed 0, unsent 0"),
            "{stderr}"
        );
        assert!(stderr.contains("Unicorn-0001"), "{stderr}");
        local.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn ctrl_c_flushes_and_prints_a_summary() {
    bounded(async {
        use tokio::io::AsyncReadExt as _;

        let local = local_aws(false).await;
        stream(&local, "wildrydes", 1).await;
        let home = tempfile::tempdir().unwrap();
        let mut cmd = producer(home.path());
        cmd.envs(local.env_vars())
            .args(["--count", "2", "--time-scale", "10"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // The first dot means a reading was acknowledged: now interrupt.
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 1];
        stdout.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b".");
        let pid = child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).await.unwrap();
        let out = child.wait_with_output().await.unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains("Ctrl-C received"), "{stderr}");
        assert!(
            stderr.contains("stopped on request; buffered readings were flushed first"),
            "{stderr}"
        );
        let dots = 1 + rest.trim_end().len();
        assert!(
            stderr.contains(&format!("sent {dots}, retried 0, failed 0, unsent 0")),
            "{dots} dots: {stderr}"
        );
        local.shutdown().await.unwrap();
    })
    .await;
}
