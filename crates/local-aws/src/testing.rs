//! What this crate's unit tests share: a time bound, and a backend started
//! with the default options.

use std::future::Future;
use std::time::Duration;

use crate::{LocalAws, LocalAwsOptions};

/// Every test here finishes in well under a second; this only turns a hang
/// into a failure.
pub(crate) async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), test)
        .await
        .expect("test timed out")
}

/// A backend in memory on random ports.
pub(crate) async fn started() -> LocalAws {
    LocalAws::start(LocalAwsOptions::default()).await.unwrap()
}
