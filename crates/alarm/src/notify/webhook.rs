//! `WebhookNotifier`: POSTs each notification as JSON to a URL, such as a
//! chat's incoming webhook (the body's `text` is the message) or an
//! operator's own endpoint (the body carries every field, and the
//! `Idempotency-Key` header the notification id).
//!
//! Any 2xx answer is acceptance. 408, 429 and 5xx answers (core's
//! `classify_status`), timeouts and connection failures are transient and
//! retried; other answers (a 404 from a deleted webhook, a 403) are
//! permanent. The URL is a secret in most chat products, so only its scheme
//! and host ever appear in logs and errors.
//!
//! The client is hyper with rustls, the stack the AWS SDK already compiles;
//! https receivers are checked against the system's root certificates.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wildrydes_core::retry::classify_status;

use super::{Notifier, refused};
use crate::error::AlarmError;
use crate::notification::Notification;

/// Longest wait for one webhook call, connection included: chat webhooks
/// answer in well under a second; five seconds tells slow from dead while
/// leaving the invocation time for retries.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Most bytes of an error answer kept for the log.
const MAX_ERROR_BODY: usize = 512;

/// Idle connections are dropped after this: a frozen Lambda sandbox wakes
/// up with connections the receiver closed long ago.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// POSTs notifications to one URL.
#[derive(Debug, Clone)]
pub struct WebhookNotifier {
    /// The HTTP(S) client, one connection pool per process.
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Where to POST.
    url: Uri,
    /// Scheme and host only, for logs: the path often holds a token.
    shown: String,
    /// Longest wait for one call.
    timeout: Duration,
}

impl WebhookNotifier {
    /// A notifier POSTing to `url` (http or https), waiting at most `timeout`
    /// per call.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, AlarmError> {
        let uri: Uri = url.trim().parse().map_err(|e| AlarmError::WebhookUrl {
            shown: "(unparsable)".to_owned(),
            reason: format!("not a URL: {e}"),
        })?;
        let (scheme, shown) = match (uri.scheme_str(), uri.host()) {
            (Some(scheme), Some(host)) => (scheme.to_owned(), format!("{scheme}://{host}")),
            _ => {
                return Err(AlarmError::WebhookUrl {
                    shown: "(incomplete)".to_owned(),
                    reason: "it needs a scheme and a host, as in https://hooks.example.com/..."
                        .to_owned(),
                });
            }
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = match scheme.as_str() {
            "https" => HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider)
                .map_err(|e| AlarmError::RootCertificates {
                    message: e.to_string(),
                })?,
            "http" => {
                // Plain http needs no roots; the TLS half is never used.
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| AlarmError::RootCertificates {
                        message: e.to_string(),
                    })?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                HttpsConnectorBuilder::new().with_tls_config(tls)
            }
            other => {
                return Err(AlarmError::WebhookUrl {
                    shown,
                    reason: format!("scheme {other} is not http or https"),
                });
            }
        };
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Self {
            client,
            url: uri,
            shown,
            timeout,
        })
    }

    /// Scheme and host of the URL, safe to log.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    async fn post(&self, n: &Notification) -> Result<(), AlarmError> {
        let fail = |reason: String, transient: bool| refused("webhook", n, reason, transient);
        let body = n.to_json().to_string();
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("wildrydes-alarm/", env!("CARGO_PKG_VERSION")),
            )
            .header("Idempotency-Key", header_value(&n.id))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| fail(format!("cannot build the request: {e}"), false))?;
        let call = async {
            let response = self.client.request(request).await.map_err(|e| {
                fail(
                    format!("POST to {} failed: {}", self.shown, error_chain(&e)),
                    true,
                )
            })?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let body = Limited::new(response.into_body(), MAX_ERROR_BODY)
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            Err(fail(
                format!("{} answered {status}: {}", self.shown, body.trim()),
                classify_status(status.as_u16()).is_transient(),
            ))
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(fail(
                format!("{} did not answer within {:?}", self.shown, self.timeout),
                true,
            )),
        }
    }
}

/// `text` as a header value: visible ASCII as it is, every other byte
/// percent-encoded (unicorn names may be any Unicode).
fn header_value(text: &str) -> HeaderValue {
    let mut encoded = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// An error and its causes, `: `-separated (hyper's own message is terse).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        "webhook"
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), AlarmError>> {
        Box::pin(self.post(notification))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_never_shown_whole() {
        let ok = WebhookNotifier::new(
            "http://127.0.0.1:9/services/T000/B000/secret-token",
            DEFAULT_WEBHOOK_TIMEOUT,
        )
        .unwrap();
        assert_eq!(ok.shown(), "http://127.0.0.1");
        for (url, says) in [
            ("not a url at all", "not a URL"),
            ("/relative/path", "needs a scheme and a host"),
            ("ftp://example.com/hook", "scheme ftp is not http or https"),
        ] {
            let err = WebhookNotifier::new(url, DEFAULT_WEBHOOK_TIMEOUT)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(says) && err.contains("ALARM_WEBHOOK_URL"),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn idempotency_keys_survive_any_unicorn_name() {
        assert_eq!(
            header_value("Shadowfax/ALARM/2017-06-05T09:17:08.189Z"),
            "Shadowfax/ALARM/2017-06-05T09:17:08.189Z"
        );
        assert_eq!(header_value("Étoile 1%"), "%C3%89toile%201%25");
    }
}
