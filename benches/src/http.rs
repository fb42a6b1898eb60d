//! The two HTTP calls the measurement programs make to processes they
//! started (an invoke on cargo-lambda's emulator, a read of the daemon's
//! `/metrics`): HTTP/1.1, one request per connection, over loopback.

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// An answer: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body (chunk framing, if any, left in).
    pub body: String,
}

/// Sends `method path` with `body` to `127.0.0.1:port` and reads the whole
/// answer.
pub async fn call(port: u16, method: &str, path: &str, body: &[u8]) -> anyhow::Result<Answer> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot connect to 127.0.0.1:{port}"))?;
    socket.set_nodelay(true)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    let mut raw = Vec::new();
    socket.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer: {head:?}"))?;
    Ok(Answer {
        status,
        body: body.to_owned(),
    })
}

/// A port free on 127.0.0.1 right now, for programs that take a port number
/// rather than a listener.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
