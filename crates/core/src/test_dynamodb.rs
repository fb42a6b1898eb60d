//! A fake DynamoDB endpoint for unit tests: a plain HTTP/1.1 server on
//! 127.0.0.1 that hands each BatchWriteItem body to the test's closure and
//! sends back the status and JSON body it returns.
//!
//! It replaces `aws-smithy-mocks`, whose `test-util` features would compile
//! the SDK's runtime crates a second time for `cargo test`. The real client
//! talks to it over a socket, so requests and answers go through the SDK's
//! own serialisation and error parsing.
//!
//! A panic in the closure (a failed assertion on a request) is answered as a
//! permanent error, so the writer does not retry it, and fails the test when
//! the [`FakeDynamoDb`] is dropped.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The `x-amz-target` of the one operation the fake serves.
const BATCH_WRITE_ITEM: &str = "DynamoDB_20120810.BatchWriteItem";

/// The prefix of DynamoDB's error types in an error body's `__type`.
const ERROR_TYPE_PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";

/// An answer: HTTP status and JSON body (`Value::Null` for an empty body).
pub(crate) type Answer = (u16, Value);

/// The test's account of what DynamoDB answers to a request body.
type Handler = dyn Fn(Value) -> Answer + Send + Sync;

/// What the fake does with a connection once it has read a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Connections {
    /// Answers, and keeps it open for the client's next request (HTTP/1.1
    /// keep-alive).
    KeepAlive,
    /// Answers saying `connection: close` and closes it: one request per
    /// connection.
    CloseAfterEachAnswer,
    /// Never answers, and holds it until the client gives up: a table that
    /// hangs.
    NeverAnswer,
}

/// A running fake endpoint; it stops when dropped.
#[derive(Debug)]
pub(crate) struct FakeDynamoDb {
    /// `http://127.0.0.1:<port>`.
    url: String,
    /// Requests received, whatever their answer.
    calls: Arc<AtomicUsize>,
    /// Connections accepted.
    connections: Arc<AtomicUsize>,
    /// Why requests could not be answered as the test meant (a panic in the
    /// handler, another operation, a body that is not JSON): checked on drop.
    failures: Arc<Mutex<Vec<String>>>,
    /// The accept loop, which owns every connection's task.
    server: JoinHandle<()>,
}

impl FakeDynamoDb {
    /// Starts an endpoint answering every BatchWriteItem with `handler`,
    /// keeping connections alive.
    pub(crate) async fn start(handler: impl Fn(Value) -> Answer + Send + Sync + 'static) -> Self {
        Self::start_with(Connections::KeepAlive, handler).await
    }

    /// Like [`FakeDynamoDb::start`], with a counter that `handler` bumps as
    /// it likes (the calls of one kind, say) and the test reads afterwards.
    pub(crate) async fn start_counting(
        handler: impl Fn(Value, &AtomicUsize) -> Answer + Send + Sync + 'static,
    ) -> (Self, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        let fake = Self::start(move |body| handler(body, &counted)).await;
        (fake, count)
    }

    /// Starts an endpoint that reads every request and answers none.
    pub(crate) async fn never_answering() -> Self {
        Self::start_with(Connections::NeverAnswer, |_| ok()).await
    }

    /// Starts an endpoint answering every BatchWriteItem with `handler`.
    pub(crate) async fn start_with(
        mode: Connections,
        handler: impl Fn(Value) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake DynamoDB");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("the fake's address")
        );
        let calls = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            handler: Arc::new(handler),
            calls: calls.clone(),
            failures: failures.clone(),
            mode,
        };
        let accepted = connections.clone();
        let server = tokio::spawn(async move {
            // Dropped with the accept loop, which aborts every connection.
            let mut tasks = JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                tasks.spawn(serve(socket, shared.clone()));
                while tasks.try_join_next().is_some() {}
            }
        });
        Self {
            url,
            calls,
            connections,
            failures,
            server,
        }
    }

    /// A client of this endpoint whose SDK does not retry: every attempt the
    /// code under test makes reaches the handler once.
    pub(crate) fn client(&self) -> Client {
        Client::from_conf(self.config().build())
    }

    /// The configuration of [`FakeDynamoDb::client`], for a test to change.
    pub(crate) fn config(&self) -> aws_sdk_dynamodb::config::Builder {
        config(&self.url)
    }

    /// Requests received so far.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FakeDynamoDb {
    fn drop(&mut self) {
        self.server.abort();
        let failures = std::mem::take(&mut *lock(&self.failures));
        if !failures.is_empty() && !std::thread::panicking() {
            panic!("the fake DynamoDB could not answer as the test meant: {failures:#?}");
        }
    }
}

/// A DynamoDB client configuration for `url`: static credentials, a fixed
/// region and no SDK retries.
pub(crate) fn config(url: &str) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .retry_config(RetryConfig::disabled())
}

/// A BatchWriteItem that took every item.
pub(crate) fn ok() -> Answer {
    (200, json!({ "UnprocessedItems": {} }))
}

/// A BatchWriteItem that left `requests` (its `WriteRequest`s, as sent) of
/// `table` unprocessed.
pub(crate) fn unprocessed(table: &str, requests: Value) -> Answer {
    (200, json!({ "UnprocessedItems": { table: requests } }))
}

/// DynamoDB's error `name` (e.g. `ResourceNotFoundException`) with `message`.
pub(crate) fn error(name: &str, message: &str) -> Answer {
    (
        400,
        json!({ "__type": format!("{ERROR_TYPE_PREFIX}{name}"), "message": message }),
    )
}

/// A bare HTTP status with an empty body, as a load balancer answers.
pub(crate) fn status(code: u16) -> Answer {
    (code, Value::Null)
}

/// What every connection's task shares.
#[derive(Clone)]
struct Shared {
    handler: Arc<Handler>,
    calls: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    mode: Connections,
}

/// One request as read off the socket.
struct Request {
    target: Option<String>,
    close: bool,
    body: Vec<u8>,
}

/// Serves one connection until the client closes it or, in
/// [`Connections::CloseAfterEachAnswer`], until the first answer.
async fn serve(mut socket: TcpStream, shared: Shared) {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut socket, &mut buffer).await {
        shared.calls.fetch_add(1, Ordering::SeqCst);
        if shared.mode == Connections::NeverAnswer {
            continue;
        }
        let (status, body) = answer(&shared, &request);
        let close = request.close || shared.mode == Connections::CloseAfterEachAnswer;
        let body = match body {
            Value::Null => Vec::new(),
            body => body.to_string().into_bytes(),
        };
        let head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/x-amz-json-1.0\r\n\
             content-length: {}\r\nconnection: {}\r\n\r\n",
            reason(status),
            body.len(),
            if close { "close" } else { "keep-alive" },
        );
        let sent = async {
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&body).await?;
            socket.flush().await
        };
        if sent.await.is_err() || close {
            break;
        }
    }
    let _ = socket.shutdown().await;
}

/// The handler's answer to `request`, or a permanent error saying why
/// there is none (recorded as a failure of the test).
fn answer(shared: &Shared, request: &Request) -> Answer {
    let fail = |why: String| {
        lock(&shared.failures).push(why.clone());
        error("ValidationException", &format!("fake DynamoDB: {why}"))
    };
    if request.target.as_deref() != Some(BATCH_WRITE_ITEM) {
        return fail(format!(
            "only {BATCH_WRITE_ITEM} is served, not {:?}",
            request.target
        ));
    }
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(body) => body,
        Err(e) => return fail(format!("request body is not JSON: {e}")),
    };
    match std::panic::catch_unwind(AssertUnwindSafe(|| (shared.handler)(body))) {
        Ok(answer) => answer,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            fail(format!("handler panicked: {message}"))
        }
    }
}

/// Reads the next request of the connection (head up to `\r\n\r\n`, then
/// `content-length` bytes of body); `None` at its end. `buffer` keeps what
/// was read past the request.
async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if socket.read_buf(buffer).await.ok()? == 0 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut target = None;
    let mut close = false;
    let mut length = 0;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "x-amz-target" => target = Some(value.to_owned()),
            "content-length" => length = value.parse().ok()?,
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    while buffer.len() < head_end + length {
        if socket.read_buf(buffer).await.ok()? == 0 {
            return None;
        }
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Some(Request {
        target,
        close,
        body,
    })
}

/// The reason phrase of `status`.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Locks `mutex`, even if a panicking handler poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

mod tests {
    use std::time::Duration;

    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::error::SdkError;
    use aws_sdk_dynamodb::operation::batch_write_item::{
        BatchWriteItemError, BatchWriteItemOutput,
    };
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

    use super::*;

    fn put(n: u32) -> WriteRequest {
        let item = PutRequest::builder()
            .item("Key", AttributeValue::N(n.to_string()))
            .build()
            .expect("a put request");
        WriteRequest::builder().put_request(item).build()
    }

    async fn three_calls(mode: Connections) -> FakeDynamoDb {
        let dynamodb = FakeDynamoDb::start_with(mode, |body| {
            assert!(body["RequestItems"]["T"].is_array(), "{body}");
            ok()
        })
        .await;
        let client = dynamodb.client();
        for n in 0..3 {
            write(&client, n).await.expect("the fake answers ok");
        }
        dynamodb
    }

    /// One BatchWriteItem of `put(n)` to table `T` by `client`, answered
    /// within 10 s.
    async fn write(
        client: &Client,
        n: u32,
    ) -> Result<BatchWriteItemOutput, SdkError<BatchWriteItemError, HttpResponse>> {
        let call = client
            .batch_write_item()
            .request_items("T", vec![put(n)])
            .send();
        tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("the fake answers in time")
    }

    #[tokio::test]
    async fn keep_alive_serves_several_requests_on_one_connection() {
        let dynamodb = three_calls(Connections::KeepAlive).await;
        assert_eq!((dynamodb.calls(), dynamodb.connections()), (3, 1));
    }

    #[tokio::test]
    async fn closing_after_each_answer_takes_a_connection_per_request() {
        let dynamodb = three_calls(Connections::CloseAfterEachAnswer).await;
        assert_eq!((dynamodb.calls(), dynamodb.connections()), (3, 3));
    }

    #[tokio::test]
    async fn errors_reach_the_client_as_dynamodb_errors() {
        let dynamodb =
            FakeDynamoDb::start(|_| error("ProvisionedThroughputExceededException", "slow down"))
                .await;
        let e = write(&dynamodb.client(), 1).await.expect_err("an error");
        assert!(
            e.as_service_error()
                .is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()),
            "{e:?}"
        );
        assert_eq!(dynamodb.calls(), 1);
    }

    #[tokio::test]
    #[should_panic(expected = "could not answer as the test meant")]
    async fn a_panicking_handler_fails_the_test_even_if_the_caller_copes() {
        let dynamodb = FakeDynamoDb::start(|_| panic!("a failed assertion")).await;
        let e = write(&dynamodb.client(), 1)
            .await
            .expect_err("a permanent error");
        assert!(
            format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e))
                .contains("a failed assertion"),
            "{e:?}"
        );
    }
}
