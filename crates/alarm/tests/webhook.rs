//! The webhook notifier against a local HTTP listener: a receiver that first
//! fails (500) then accepts gets one accepted delivery per transition; one
//! that says the hook is gone (404) fails the batch at once.

// Test code: a panic is how a failure is reported (clippy.toml allows
// unwrap in #[test] functions; this extends it to their helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use wildrydes_alarm::{MagicAlarm, WebhookNotifier};
use wildrydes_local_aws::LocalAws;

/// What the receiver saw, and how it answers.
#[derive(Debug, Default)]
struct Receiver {
    /// Every request: (Idempotency-Key, body), in order.
    requests: Vec<(String, serde_json::Value)>,
    /// Answers still to give, first first; 200 once empty.
    script: Vec<StatusCode>,
    /// Requests answered 2xx: (Idempotency-Key, body).
    accepted: Vec<(String, serde_json::Value)>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn hook(State(r): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut r = r.lock().unwrap();
    r.requests.push((key.clone(), body.clone()));
    let status = if r.script.is_empty() {
        StatusCode::OK
    } else {
        r.script.remove(0)
    };
    if status.is_success() {
        r.accepted.push((key, body));
    }
    status
}

/// Serves a receiver on 127.0.0.1, port 0, that answers `script` first and
/// then 200; returns the receiver and the hook's URL.
async fn serve(script: Vec<StatusCode>) -> (Shared, String) {
    let receiver = Shared::new(Mutex::new(Receiver {
        script,
        ..Receiver::default()
    }));
    let app = Router::new()
        .route("/services/T0/B0/secret", post(hook))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/services/T0/B0/secret",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, url)
}

/// An alarm over `local` that tells only the webhook at `url`.
fn webhook_alarm(local: &LocalAws, url: &str, timeout: Duration) -> MagicAlarm {
    let webhook = WebhookNotifier::new(url, timeout).unwrap();
    alarm(local, vec![Arc::new(webhook)])
}

#[tokio::test]
async fn a_failing_then_healthy_webhook_gets_one_accepted_delivery_per_transition() {
    bounded(async {
        let (receiver, url) = serve(vec![StatusCode::INTERNAL_SERVER_ERROR]).await;
        let local = backend().await;
        let alarm = webhook_alarm(&local, &url, Duration::from_secs(5));
        let outcome = process(&alarm, &walk("Shadowfax", 0, &[52, 49, 47, 55, 60, 61])).await;
        assert_eq!(outcome.first_failure, None, "{outcome:?}");
        assert_eq!(outcome.notify_retries, 1);

        let r = receiver.lock().unwrap();
        assert_eq!(
            r.requests.len(),
            3,
            "500, then 200 for the ALARM, then 200 for the OK"
        );
        let keys: Vec<&str> = r.accepted.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "Shadowfax/ALARM/2017-06-05T09:00:01.189Z",
                "Shadowfax/OK/2017-06-05T09:00:04.189Z"
            ]
        );
        let (_, alarm_body) = &r.accepted[0];
        assert_eq!(alarm_body["state"], "ALARM");
        assert_eq!(alarm_body["unicorn"], "Shadowfax");
        assert_eq!(alarm_body["magicPoints"], 49);
        assert_eq!(alarm_body["threshold"], 50);
        assert_eq!(alarm_body["id"], keys[0]);
        assert!(
            alarm_body["text"].as_str().unwrap().starts_with(
                "ALARM: unicorn Shadowfax has 49 magic points, below the threshold of 50"
            ),
            "{alarm_body}"
        );
        assert_eq!(r.accepted[1].1["state"], "OK");
        // The refused request was the same notification.
        assert_eq!(r.requests[0], r.accepted[0]);
    })
    .await;
}

#[tokio::test]
async fn a_webhook_that_is_gone_fails_the_batch_without_retrying() {
    bounded(async {
        let (receiver, url) = serve(vec![StatusCode::NOT_FOUND]).await;
        let local = backend().await;
        let alarm = webhook_alarm(&local, &url, Duration::from_secs(5));
        let batch = walk("Shadowfax", 0, &[52, 49, 47]);
        let outcome = process(&alarm, &batch).await;
        assert_eq!(outcome.first_failure, Some(1), "{outcome:?}");
        let error = outcome.error.unwrap();
        assert!(
            error.contains("http://127.0.0.1 answered 404 Not Found"),
            "{error}"
        );
        assert!(
            !error.contains("secret"),
            "the hook's path is never shown: {error}"
        );
        assert_eq!(receiver.lock().unwrap().requests.len(), 1);

        // Fixed: the retry from the failed record delivers it once.
        let retry = process(&alarm, &batch[1..]).await;
        assert_eq!(retry.first_failure, None);
        assert_eq!(receiver.lock().unwrap().accepted.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_webhook_that_never_answers_times_out_and_fails_the_batch() {
    bounded(async {
        // Accepts connections, never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let local = backend().await;
        let alarm = webhook_alarm(&local, &url, Duration::from_millis(100));
        let outcome = process(&alarm, &walk("Shadowfax", 0, &[49])).await;
        assert_eq!(outcome.first_failure, Some(0));
        assert!(outcome.error.unwrap().contains("did not answer within"));
        assert_eq!(outcome.notify_retries, 3, "timeouts are transient: retried");
        hold.abort();
    })
    .await;
}
