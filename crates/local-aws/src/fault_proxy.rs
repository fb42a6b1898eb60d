//! `FaultProxy`: a DynamoDB endpoint for the demo's fault run that forwards
//! to the real (embedded) one, except for a share of BatchWriteItem calls:
//! those it answers as a throttled DynamoDB does, alternately with every
//! item left in `UnprocessedItems` and with a
//! `ProvisionedThroughputExceededException`. The writers must retry both and
//! lose nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct FaultCounts {
    /// BatchWriteItem calls seen.
    pub batch_writes: AtomicU64,
    /// Calls answered with every item unprocessed.
    pub unprocessed: AtomicU64,
    /// Calls answered with a throttling error.
    pub throttled: AtomicU64,
}

struct Proxy {
    upstream: String,
    every: u64,
    client: Client<HttpConnector, Full<Bytes>>,
    counts: Arc<FaultCounts>,
}

/// Starts the proxy on 127.0.0.1 (a free port) in front of `upstream`,
/// faulting one BatchWriteItem call in `every`, the first among them. Returns its URL and counts;
/// it serves until the runtime ends.
pub async fn start(upstream: &str, every: u64) -> std::io::Result<(String, Arc<FaultCounts>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let counts = Arc::new(FaultCounts::default());
    let proxy = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        every: every.max(1),
        client: Client::builder(TokioExecutor::new()).build_http(),
        counts: counts.clone(),
    });
    let app = axum::Router::new().fallback(handle).with_state(proxy);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), counts))
}

async fn handle(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target.ends_with(".BatchWriteItem") {
        let n = proxy.counts.batch_writes.fetch_add(1, Ordering::Relaxed) + 1;
        if n % proxy.every == 1 || proxy.every == 1 {
            return fault(&proxy, n, &body);
        }
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("{}{path}", proxy.upstream));
    for (name, value) in &headers {
        if name != "host" {
            request = request.header(name, value);
        }
    }
    let Ok(request) = request.body(Full::new(body)) else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    match proxy.client.request(request).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// A throttled answer: odd faults leave every item unprocessed, even ones
/// refuse the call.
fn fault(proxy: &Proxy, n: u64, body: &Bytes) -> Response {
    let json = [("content-type", "application/x-amz-json-1.0")];
    if (n / proxy.every).is_multiple_of(2) {
        proxy.counts.unprocessed.fetch_add(1, Ordering::Relaxed);
        let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let answer = serde_json::json!({ "UnprocessedItems": request["RequestItems"] });
        (StatusCode::OK, json, answer.to_string()).into_response()
    } else {
        proxy.counts.throttled.fetch_add(1, Ordering::Relaxed);
        let answer = serde_json::json!({
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "injected by the demo's fault proxy",
        });
        (StatusCode::BAD_REQUEST, json, answer.to_string()).into_response()
    }
}
