//! The `producer` binary as an operator meets it: help, bad arguments, and
//! one clear line for each way it cannot start; and a short real run.

mod common;

use common::{Limits, on_backend};
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};
use wildrydes_testkit::{bounded, free_port};

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

/// Test credentials, for runs that must get past the credential check.
fn credentials() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
    ]
}

/// What a finished run of the binary left: its exit code and its output.
struct Finished {
    /// The exit status; `None` if a signal ended it.
    code: Option<i32>,
    /// Its standard output, as text.
    stdout: String,
    /// Its standard error, as text.
    stderr: String,
}

impl Finished {
    /// Asserts that the binary could not start (exit status 1) and said why
    /// in one line on stderr, starting with `start` and mentioning each of
    /// `mentions`; returns that line.
    fn error_line(&self, start: &str, mentions: &[&str]) -> &str {
        assert_eq!(self.code, Some(1), "{}", self.stderr);
        assert_eq!(self.stderr.lines().count(), 1, "{}", self.stderr);
        let line = self.stderr.trim_end();
        assert!(line.starts_with(start), "{line}");
        for mention in mentions {
            assert!(line.contains(mention), "{line} lacks {mention:?}");
        }
        line
    }
}

/// Runs the binary to the end with the arguments of `command_line` (split
/// at white space), in a clean environment and an empty home (see
/// [`producer`]) with `envs` on top.
async fn run_producer(envs: Vec<(&str, String)>, command_line: &str) -> Finished {
    let home = tempfile::tempdir().expect("a temporary home");
    let out = producer(home.path())
        .envs(envs)
        .args(command_line.split_whitespace())
        .output()
        .await
        .expect("the producer binary runs");
    Finished {
        code: out.status.code(),
        stdout: text(&out.stdout),
        stderr: text(&out.stderr),
    }
}

/// Output as text, whatever its bytes.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Sends SIGINT to `child`, as Ctrl-C in its terminal would.
fn interrupt(child: &Child) {
    let pid = child.id().expect("the producer is running");
    let kill = std::process::Command::new("kill")
        .arg("-INT")
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(kill.success(), "kill -INT {pid}");
}

#[tokio::test]
async fn help_tells_a_new_user_what_to_do() {
    bounded(async {
        let run = run_producer(vec![], "--help").await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
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
            "--aggregate",
            "[env: WILDRYDES_AGGREGATE=]",
            "--quiet",
            "Examples:",
            "Exit status",
        ] {
            assert!(
                run.stdout.contains(expected),
                "--help lacks {expected:?}:\n{}",
                run.stdout
            );
        }
    })
    .await;
}

#[tokio::test]
async fn bad_arguments_exit_2_with_a_message() {
    bounded(async {
        for (args, message) in [
            (
                "--time-scale 0",
                "error: invalid value '0' for '--time-scale <X>': must be above 0",
            ),
            (
                "--duration later",
                "error: invalid value 'later' for '--duration <DURATION>'",
            ),
            ("--name A --name A", "error: --name A is given twice"),
            ("--frobnicate", "error: unexpected argument '--frobnicate'"),
        ] {
            let run = run_producer(vec![], args).await;
            assert_eq!(run.code, Some(2), "{args}");
            assert!(run.stderr.starts_with(message), "{args}: {}", run.stderr);
        }
    })
    .await;
}

#[tokio::test]
async fn an_unknown_stream_is_one_clear_line() {
    on_backend(Limits::Off, &[], async |local| {
        let endpoint = local.kinesis_endpoint();
        let args = format!("--stream nope --region us-west-2 --endpoint-url {endpoint} --quiet");
        let run = run_producer(credentials(), &args).await;
        assert_eq!(run.code, Some(1));
        assert_eq!(
            run.stderr,
            format!(
                "error: stream nope not found in us-west-2 at {endpoint}: create it (cargo xtask local does) or pass --stream\n"
            )
        );
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_endpoint_is_one_clear_line() {
    bounded(async {
        // A port nobody listens on.
        let endpoint = format!("http://127.0.0.1:{}", free_port());
        let mut envs = credentials();
        envs.push(("AWS_ENDPOINT_URL_KINESIS", endpoint.clone()));
        envs.push(("AWS_REGION", "eu-west-1".to_owned()));
        let run = run_producer(envs, "").await;
        let start = format!("error: cannot reach kinesis at {endpoint} (region eu-west-1): ");
        let line = run.error_line(&start, &["refused"]);
        assert!(
            line.ends_with("check --endpoint-url, that the service is running, and the network"),
            "{line}"
        );
    })
    .await;
}

#[tokio::test]
async fn missing_credentials_are_one_clear_line() {
    bounded(async {
        let run = run_producer(vec![], "--endpoint-url http://127.0.0.1:9").await;
        run.error_line(
            "error: no AWS credentials found (",
            &["set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"],
        );
    })
    .await;
}

#[tokio::test]
async fn a_short_run_prints_dots_and_a_summary() {
    on_backend(Limits::Off, &[("wildrydes", 1)], async |local| {
        let args = "--count 2 --duration 5s --time-scale 1000 --seed 3";
        let run = run_producer(local.env_vars(), args).await;
        let stderr = &run.stderr;
        assert_eq!(run.code, Some(0), "{stderr}");
        assert_eq!(run.stdout, "..........\n");
        assert!(
            stderr.contains("stream wildrydes, seed 3, 2 unicorn(s)"),
            "{stderr}"
        );
        assert!(
            stderr.contains("generated 10, sent 10, retried 0, failed 0, unsent 0"),
            "{stderr}"
        );
        assert!(stderr.contains("Unicorn-0001"), "{stderr}");
    })
    .await;
}

#[tokio::test]
async fn ctrl_c_flushes_and_prints_a_summary() {
    on_backend(Limits::Off, &[("wildrydes", 1)], async |local| {
        let home = tempfile::tempdir().unwrap();
        let mut child = producer(home.path())
            .envs(local.env_vars())
            .args(["--count", "2", "--time-scale", "10"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The first dot means a reading was acknowledged: now interrupt.
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 1];
        stdout.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b".");
        interrupt(&child);
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
    })
    .await;
}
