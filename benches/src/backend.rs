//! The backend a measured process talks to, in a process of its own: the
//! embedded Kinesis and DynamoDB (`wildrydes-local-aws`, as in the tests and
//! the demo) or the [`crate::noop`] endpoint. Keeping it out of the measured
//! process means that process's CPU time and memory are its own, and the
//! backend's own cost can be read apart.
//!
//! A measurement program runs itself (or `wildrydes-bench`) with the
//! arguments `backend embedded|noop`, which calls [`serve`]; the parent's
//! [`Backend::start`] reads the `NAME=value` lines it prints up to `ready`
//! and hands them to the processes it starts. The backend stops when its
//! standard input closes, so it never outlives its parent.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::Context as _;
use tokio::net::TcpListener;
use wildrydes_local_aws::{
    ACCESS_KEY_ID, LocalAws, LocalAwsOptions, REGION, SECRET_ACCESS_KEY, ensure_stream, workshop,
};

use crate::usage::{self, Usage};

/// What the backend process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Kinesis and DynamoDB in memory, with the workshop's streams and tables.
    Embedded,
    /// DynamoDB that answers every call with "all written".
    Noop,
}

impl Kind {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Embedded => "embedded",
            Kind::Noop => "noop",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "embedded" => Ok(Kind::Embedded),
            "noop" => Ok(Kind::Noop),
            _ => anyhow::bail!("unknown backend {s:?}: embedded or noop"),
        }
    }
}

/// Most open shards the embedded Kinesis allows: room for the producer's
/// largest fleets (two shards per thousand unicorns).
const SHARD_LIMIT: u32 = 2_000;

/// The backend role: serves `kind` (with the extra `streams`, name and shard
/// count, on the embedded Kinesis), prints its environment and `ready` on
/// standard output, and runs until standard input closes. Kinesis takes
/// writes beyond a shard's limits, as the tests' backend does.
pub fn serve(kind: Kind, streams: &[(String, i32)]) -> anyhow::Result<()> {
    serve_with(kind, streams, false)
}

/// [`serve`], with the embedded Kinesis throttling writes as AWS does when
/// `enforce_limits` (per shard, 1,000 records/s and 1 MiB/s): what a
/// measurement of how much one shard carries needs.
pub fn serve_with(
    kind: Kind,
    streams: &[(String, i32)],
    enforce_limits: bool,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let _local;
        let mut env: Vec<(String, String)> = Vec::new();
        match kind {
            Kind::Embedded => {
                let local = LocalAws::start(LocalAwsOptions {
                    shard_limit: SHARD_LIMIT,
                    enforce_limits,
                    ..LocalAwsOptions::default()
                })
                .await?;
                workshop::ensure_workshop_resources(&local).await?;
                for (name, shards) in streams {
                    ensure_stream(&local.kinesis_client(), name, *shards).await?;
                }
                env.extend(local.env_vars().into_iter().map(|(k, v)| (k.to_owned(), v)));
                _local = Some(local);
            }
            Kind::Noop => {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                tokio::spawn(crate::noop::serve(listener));
                for (k, v) in [
                    ("AWS_ENDPOINT_URL_DYNAMODB", format!("http://{addr}")),
                    ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
                    ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
                    ("AWS_REGION", REGION.to_owned()),
                    ("AWS_DEFAULT_REGION", REGION.to_owned()),
                ] {
                    env.push((k.to_owned(), v));
                }
                _local = None;
            }
        }
        for (k, v) in &env {
            println!("{k}={v}");
        }
        println!("ready");
        // Until the parent closes our standard input (or goes away).
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await?;
        Ok(())
    })
}

/// A backend process started by a measurement program.
#[derive(Debug)]
pub struct Backend {
    kind: Kind,
    child: Child,
    /// Closing it stops the backend.
    stdin: Option<ChildStdin>,
    /// Kept open so the backend never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
    env: Vec<(String, String)>,
}

impl Backend {
    /// Starts `command` (a program run with `backend KIND ...`) and waits
    /// until it is ready.
    pub fn start(kind: Kind, mut command: Command) -> anyhow::Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start the {} backend", kind.name()))?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let mut env = Vec::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line)? == 0 {
                anyhow::bail!("the {} backend stopped before it was ready", kind.name());
            }
            let line = line.trim_end();
            if line == "ready" {
                break;
            }
            if let Some((k, v)) = line.split_once('=') {
                env.push((k.to_owned(), v.to_owned()));
            }
        }
        Ok(Self {
            kind,
            child,
            stdin,
            _stdout: stdout,
            env,
        })
    }

    /// What it serves.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The environment that points the SDK (and our binaries) at it.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// One variable of [`Self::env`].
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Its CPU time and memory so far.
    pub fn usage(&self) -> std::io::Result<Usage> {
        usage::of_process(self.child.id())
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
