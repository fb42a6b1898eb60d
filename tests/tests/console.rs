//! The operator console in a real browser (headless Chromium, Debian's
//! package, driven over the DevTools protocol), against the embedded
//! backend with the producer and the three pipelines running as their
//! binaries, as `cargo xtask local` runs them.
//!
//! Phase one, a live fleet of 20 with a magic drain: the map shows every
//! unicorn the stream carries, names that are markup show as text, the
//! drained unicorn's ALARM shows within seconds of the alarm's
//! notification, its minutes and alarm history load, the pipelines show,
//! a bad request gets a 4xx with a reason. Phase two, 5,000 unicorns: the
//! page's first render and each update's main-thread cost, as the page
//! measures them. Screenshots go to `target/console/`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};
use wildrydes_local_aws::{LocalAws, workshop};
use wildrydes_testkit::binaries::cargo_bin;
use wildrydes_testkit::browser::Browser;
use wildrydes_testkit::{free_port, read_stream, start_local_aws};

/// Names that are markup: the page must show them as text, run nothing.
const MARKUP_NAMES: [&str; 2] = [
    "<img src=x onerror=window.x=1>",
    "<script>window.y=1</script>",
];

fn screenshots() -> PathBuf {
    wildrydes_testkit::tools::workspace_root().join("target/console")
}

/// A process with the backend's environment, killed when dropped.
fn spawn(local: &LocalAws, program: &PathBuf, args: &[&str], stdout: Stdio) -> Child {
    Command::new(program)
        .env_clear()
        .envs(local.env_vars())
        .env("RUST_LOG", "warn")
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()))
}

/// A pipeline daemon with its /metrics on a free port; gives the URL.
fn pipeline(local: &LocalAws, daemon: &PathBuf, args: &[&str]) -> (Child, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut all = args.to_vec();
    all.extend(["--metrics-addr", &addr, "--lease-duration", "3s"]);
    let child = spawn(local, daemon, &all, Stdio::piped());
    (child, format!("http://{addr}/metrics"))
}

/// Lines of a child's standard output, as they come.
fn lines(child: &mut Child) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = out.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A plain HTTP/1.1 GET of `path` on the console at `url`.
async fn get(url: &str, path: &str) -> (u16, String) {
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the console's URL has a port");
    wildrydes_testkit::http_get(port, path)
        .await
        .expect("the console answers")
}

async fn sigterm(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
}

/// A JavaScript string literal of `s`.
fn js(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_fleet_its_alarms_and_5000_unicorns_in_a_browser() {
    tokio::time::timeout(Duration::from_secs(400), run())
        .await
        .expect("the browser test finished within 400 s");
}

async fn run() {
    let local = start_local_aws().await;
    workshop::ensure_workshop_resources(&local).await.unwrap();
    let daemon = cargo_bin("wildrydes-daemon", "wildrydes-daemon");
    let producer = cargo_bin("wildrydes-producer", "producer");

    // ---- phase one: a live fleet of 20, one unicorn drained of magic ----
    let (mut aggregate, aggregate_metrics) = pipeline(
        &local,
        &daemon,
        &[
            "aggregate",
            "--allowed-lateness",
            "2s",
            "--idle-flush-after",
            "3s",
            "--checkpoint-interval",
            "1s",
        ],
    );
    let (mut process, process_metrics) = pipeline(&local, &daemon, &["process"]);
    let (mut alarm, alarm_metrics) = pipeline(&local, &daemon, &["alarm", "--console"]);
    let mut notifications = lines(&mut alarm);
    let metrics = [aggregate_metrics, process_metrics, alarm_metrics].join(",");
    let mut console = spawn(
        &local,
        &daemon,
        &["console", "--addr", "127.0.0.1:0", "--metrics", &metrics],
        Stdio::piped(),
    );
    let mut console_out = lines(&mut console);
    eprintln!("pipelines started; starting the console");
    let url = loop {
        let line = console_out
            .recv()
            .await
            .expect("the console prints its URL");
        if let Some(url) = line.strip_prefix("console: ") {
            break url.to_owned();
        }
    };
    // Time scale 5: the drain starts 4 s in, and magic is below 50 some
    // 4 s later.
    let mut fleet = spawn(
        &local,
        &producer,
        &[
            "--count",
            "20",
            "--scenario",
            "magic-drain",
            "--drain-start",
            "20s",
            "--time-scale",
            "5",
            "--duration",
            "30m",
            "--seed",
            "3",
            "--quiet",
        ],
        Stdio::null(),
    );
    // Two unicorns whose names are markup.
    let kinesis = local.kinesis_client();
    let base = wildrydes_core::Aggregate::from_json(
        wildrydes_testkit::WORKSHOP_DAY
            .lines()
            .next()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let mut reading = wildrydes_testkit::readings_of_minute(&base, 0).remove(0);
    reading.status_time = wildrydes_core::StatusTime::from_epoch_millis(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
    )
    .unwrap();
    for name in MARKUP_NAMES {
        reading.name = wildrydes_core::UnicornName::new(name).unwrap();
        kinesis
            .put_records()
            .stream_name(wildrydes_core::names::READINGS_STREAM)
            .records(
                PutRecordsRequestEntry::builder()
                    .partition_key(name)
                    .data(Blob::new(reading.to_json()))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    // What the stream carries, read apart from the console.
    eprintln!("producer started; reading the stream for its unicorns");
    let expected: BTreeSet<String> = loop {
        let names: BTreeSet<String> = read_stream(&kinesis, wildrydes_core::names::READINGS_STREAM)
            .await
            .into_iter()
            .map(|r| r.partition_key)
            .collect();
        if names.len() >= 22 {
            break names;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        expected.len(),
        22,
        "20 unicorns and 2 markup names: {expected:?}"
    );

    eprintln!(
        "the stream carries {} unicorns; opening {url}",
        expected.len()
    );
    let browser = Browser::start(1400, 1100).await;
    let mut page = browser.page().await;
    page.open(&url).await;
    page.until(
        "document.querySelectorAll('#map circle[data-name]').length === 22",
        Duration::from_secs(30),
        "every unicorn on the map",
        "[...document.querySelectorAll('#map circle')].map(c => c.dataset.name)",
    )
    .await;
    let shown: BTreeSet<String> = serde_json::from_value(
        page.eval(
            "[...document.querySelectorAll('#map circle[data-name]')].map(c => c.dataset.name)",
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        shown, expected,
        "the map shows exactly the stream's unicorns"
    );
    // Markup in a name is text: nothing ran, no element was made of it.
    let labels: BTreeSet<String> = serde_json::from_value(
        page.eval("[...document.querySelectorAll('#labels text')].map(t => t.textContent)")
            .await,
    )
    .unwrap();
    for name in MARKUP_NAMES {
        assert!(labels.contains(name), "{name} is shown as text: {labels:?}");
    }
    assert_eq!(
        page.eval("[window.x, window.y, document.querySelectorAll('img').length, document.querySelectorAll('body script').length]")
            .await,
        serde_json::json!([null, null, 0, 0]),
        "no markup from a name ran or became an element"
    );

    // The drained unicorn's ALARM: first the alarm's notification, then
    // the page, within seconds.
    eprintln!("the map shows every unicorn; waiting for the drained unicorn's ALARM");
    let drained = loop {
        let line = notifications.recv().await.expect("the alarm daemon runs");
        let Ok(n) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if n["state"] == "ALARM" {
            break n["unicorn"].as_str().unwrap().to_owned();
        }
    };
    let notified = tokio::time::Instant::now();
    page.until(
        &format!(
            "[...document.querySelectorAll('#alarms li')].some(li => li.dataset.name === {name}) && document.querySelector('#map circle[data-name=\"' + CSS.escape({name}) + '\"]').classList.contains('alarm')",
            name = js(&drained)
        ),
        Duration::from_secs(15),
        "the ALARM on the page",
        "document.getElementById('alarms').textContent",
    )
    .await;
    let shown_after = notified.elapsed();
    eprintln!("ALARM of {drained} on the page {shown_after:?} after the alarm's notification");
    assert!(
        shown_after < Duration::from_secs(10),
        "the ALARM shows within seconds: {shown_after:?}"
    );
    page.until(
        "document.querySelectorAll('#pipelines tbody tr').length === 3 && [...document.querySelectorAll('#pipelines tbody td:first-child')].map(td => td.textContent).sort().join() === 'aggregate,alarm,process'",
        Duration::from_secs(20),
        "the three pipelines' figures",
        "document.getElementById('pipelines').textContent",
    )
    .await;
    page.screenshot(&screenshots().join("fleet.png")).await;

    // The drained unicorn's minutes (from UnicornSensorData: three at
    // least) and alarm history, asked for by name (its alarm may have
    // cleared by then: the drain lasts about 16 s at this time scale), and
    // again until the pipeline has written them.
    let click = format!(
        "document.getElementById('find-name').value = {}; document.getElementById('find').requestSubmit()",
        js(&drained)
    );
    let loaded = "!document.getElementById('unicorn').hidden && document.querySelectorAll('#chart-distance rect').length >= 3 && document.querySelectorAll('#chart-magic polygon').length === 1 && document.querySelectorAll('#transitions tbody tr').length >= 1";
    let started = tokio::time::Instant::now();
    loop {
        page.eval(&click).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        if page.eval(loaded).await == Value::Bool(true) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the unicorn's minutes and history load: {}",
            page.eval("document.getElementById('unicorn').textContent")
                .await
        );
    }
    assert_eq!(
        page.eval("document.getElementById('unicorn-title').textContent")
            .await,
        Value::String(drained.clone())
    );
    let states = page
        .eval("[...document.querySelectorAll('#transitions tbody tr td:first-child')].map(td => td.textContent)")
        .await;
    assert!(
        states == serde_json::json!(["ALARM"]) || states == serde_json::json!(["OK", "ALARM"]),
        "the drain's transitions, newest first: {states}"
    );
    page.eval("document.getElementById('unicorn').scrollIntoView()")
        .await;
    page.screenshot(&screenshots().join("unicorn.png")).await;

    // Bad requests: a 4xx with the reason, and the console still serves.
    for (path, status, says) in [
        ("/api/unicorn", 400, "name is missing"),
        ("/api/unicorn?name=", 400, "empty"),
        (
            "/api/unicorn?name=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            400,
            "more than the 32",
        ),
        ("/api/unicorn?name=Shadowfax&minutes=0", 400, "minutes"),
        ("/api/unicorn?name=Shadowfax&minutes=lots", 400, "minutes"),
        ("/nowhere", 404, "no such page"),
    ] {
        let (got, body) = get(&url, path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    let (ok, _) = get(&url, "/").await;
    assert_eq!(ok, 200);

    // ---- phase two: 5,000 unicorns, the page's own costs ----
    for child in [&mut fleet, &mut aggregate, &mut process, &mut alarm] {
        sigterm(child).await;
    }
    let mut big = spawn(
        &local,
        &producer,
        &[
            "--count",
            "5000",
            "--time-scale",
            "1",
            "--duration",
            "10m",
            "--seed",
            "9",
            "--quiet",
        ],
        Stdio::null(),
    );
    // A fresh page once the console knows them all: its first render
    // draws 5,000 unicorns.
    page.until(
        "window.wildrydesConsole.unicorns >= 5000",
        Duration::from_secs(90),
        "the console knows 5,000 unicorns",
        "window.wildrydesConsole.unicorns",
    )
    .await;
    page.open(&url).await;
    page.until(
        "window.wildrydesConsole.firstRenderMs !== null && window.wildrydesConsole.rendered.length >= 10",
        Duration::from_secs(60),
        "ten updates after the first render",
        "JSON.stringify(window.wildrydesConsole)",
    )
    .await;
    let perf = page.eval("window.wildrydesConsole").await;
    let unicorns = perf["unicorns"].as_u64().unwrap();
    let first = perf["firstRenderMs"].as_f64().unwrap();
    let updates: Vec<f64> = serde_json::from_value(perf["updates"].clone()).unwrap();
    let rendered: Vec<f64> = serde_json::from_value(perf["rendered"].clone()).unwrap();
    let worst = rendered.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "{unicorns} unicorns: first render {first} ms after navigation (its script {} ms); updates, script {updates:?} ms, to the next frame {rendered:?} ms; long tasks {}",
        perf["firstRenderCostMs"], perf["longTasks"]
    );
    assert!(unicorns >= 5000, "{unicorns} unicorns drawn");
    assert_eq!(
        page.eval("document.querySelectorAll('#map circle[data-name]').length")
            .await,
        Value::from(unicorns),
        "one dot per unicorn"
    );
    assert!(
        first < 2000.0,
        "the page renders 5,000 unicorns in under 2 s: {first} ms"
    );
    assert!(
        worst < 100.0,
        "an update costs under 100 ms of the main thread, drawn: {rendered:?}"
    );
    page.screenshot(&screenshots().join("fleet-5000.png")).await;
    sigterm(&mut big).await;
    sigterm(&mut console).await;
}
