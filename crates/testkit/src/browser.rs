//! Headless Chromium driven over the Chrome DevTools Protocol, for tests
//! of the console's page in a real browser: open a URL, evaluate
//! JavaScript in the page, take screenshots. Only the four or five CDP
//! methods the tests need, over one WebSocket per page.
//!
//! The browser is Debian's `chromium` ([`crate::tools::chromium`]), in a
//! profile of its own that is removed with it, with no network beyond
//! 127.0.0.1 needed.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A running headless Chromium; killed when dropped.
#[derive(Debug)]
pub struct Browser {
    _child: tokio::process::Child,
    _profile: tempfile::TempDir,
    /// Its DevTools HTTP port on 127.0.0.1.
    port: u16,
}

/// One page (tab) of the browser.
#[derive(Debug)]
pub struct Page {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium headless, `width` by `height` CSS pixels, and waits
    /// until its DevTools endpoint answers.
    pub async fn start(width: u32, height: u32) -> Self {
        let profile = tempfile::tempdir().expect("a temporary profile folder");
        let mut child = tokio::process::Command::new(crate::tools::chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let stderr = child.stderr.take().expect("chromium's stderr");
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("chromium's stderr") {
                if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                    return rest.split('/').next().and_then(|p| p.parse::<u16>().ok());
                }
            }
            None
        })
        .await
        .expect("chromium says where DevTools listens within 30 s")
        .expect("chromium prints its DevTools address");
        // Keep draining its stderr, so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            _child: child,
            _profile: profile,
            port,
        }
    }

    /// The page Chromium opened at start.
    pub async fn page(&self) -> Page {
        let targets = http_get_json(self.port, "/json/list").await;
        let url = targets
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("chromium has a page")
            .to_owned();
        // Its own address for it may say localhost, which can resolve to
        // ::1 where it does not listen.
        let path = url
            .split_once("/devtools/")
            .map(|(_, p)| p)
            .expect("a DevTools page URL");
        let url = format!("ws://127.0.0.1:{}/devtools/{path}", self.port);
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("the page's DevTools socket");
        Page { socket, next_id: 1 }
    }
}

impl Page {
    /// Calls the CDP method `method` and returns its result; panics on a
    /// protocol error, naming it.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(Message::text(request.to_string()))
            .await
            .expect("a DevTools request is sent");
        loop {
            let message = tokio::time::timeout(Duration::from_secs(60), self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within 60 s"))
                .expect("the DevTools socket stays open")
                .expect("a DevTools message");
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).expect("DevTools speaks JSON");
            if answer["id"] != id {
                continue; // an event
            }
            assert!(
                answer.get("error").is_none(),
                "{method} failed: {}",
                answer["error"]
            );
            return answer["result"].clone();
        }
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn open(&mut self, url: &str) {
        self.call("Page.enable", json!({})).await;
        self.call("Page.navigate", json!({ "url": url })).await;
        let started = tokio::time::Instant::now();
        while self.eval("document.readyState").await != "complete" {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{url} did not load within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of the JavaScript `expression` in the page (promises
    /// awaited); panics if it throws.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression} threw: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is `true`, at most `within`; panics
    /// with `what` and the last value of `explain` otherwise.
    pub async fn until(&mut self, expression: &str, within: Duration, what: &str, explain: &str) {
        let started = tokio::time::Instant::now();
        loop {
            if self.eval(expression).await == Value::Bool(true) {
                return;
            }
            if started.elapsed() >= within {
                let state = self.eval(explain).await;
                panic!("{what}: not within {within:?}; {explain} = {state}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the page as it shows now (the whole page, scrolled
    /// content included) to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot in base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot's folder");
        }
        std::fs::write(path, png).expect("the screenshot is written");
    }
}

/// GET `path` on 127.0.0.1:`port`, as JSON. Chromium keeps the
/// connection open, so the body is read by its Content-Length.
async fn http_get_json(port: u16, path: &str) -> Value {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("chromium's DevTools HTTP endpoint");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut received = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).await.expect("response read");
        assert!(
            n > 0,
            "DevTools closed the connection before its headers ended"
        );
        received.extend_from_slice(&chunk[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .expect("DevTools says how long its answer is");
            break (end + 4, length);
        }
    };
    while received.len() < head_end + length {
        let n = stream.read(&mut chunk).await.expect("response read");
        assert!(n > 0, "DevTools closed the connection mid-answer");
        received.extend_from_slice(&chunk[..n]);
    }
    serde_json::from_slice(&received[head_end..head_end + length]).expect("DevTools answers JSON")
}
