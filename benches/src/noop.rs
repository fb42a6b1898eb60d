//! A DynamoDB endpoint that does nothing: every request, whatever it is, is
//! answered at once with `200 {"UnprocessedItems":{}}`, the answer of a
//! BatchWriteItem that wrote everything. Measured against it, a writer's CPU
//! time is its own (request building, signing, HTTP, response parsing), not
//! the database's.
//!
//! Raw HTTP/1.1 over tokio, keep-alive, requests framed by `Content-Length`
//! (the SDK always sends one): small enough to cost next to nothing itself.

use std::io;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The body of every answer.
const BODY: &str = r#"{"UnprocessedItems":{}}"#;

/// The whole answer, headers included.
fn response() -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-RequestId: noop\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    )
    .into_bytes()
}

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    let response: &'static [u8] = Vec::leak(response());
    loop {
        if let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                // A client that goes away mid-request is no concern here.
                let _ = connection(socket, response).await;
            });
        }
    }
}

/// Answers every request of one connection.
async fn connection(mut socket: TcpStream, response: &[u8]) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let head = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end + 4;
            }
            if socket.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        let whole = head + content_length(&buf[..head]);
        while buf.len() < whole {
            if socket.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        buf.drain(..whole);
        socket.write_all(response).await?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `Content-Length` of a request head, 0 if absent.
fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_each_request_of_a_connection() {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let server = tokio::spawn(serve(listener));
        let mut client = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let request = b"POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\n\r\n{}";
        let want = response();
        for _ in 0..2 {
            client
                .write_all(request)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut got = vec![0; want.len()];
            client
                .read_exact(&mut got)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got, want);
        }
        server.abort();
    }
}
