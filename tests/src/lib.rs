//! Helpers shared by the whole-system tests in `tests/tests/`.
//!
//! Each test file there is one scenario run against the embedded backend
//! ([`wildrydes_local_aws::LocalAws`]) through the official SDK. The rules
//! they follow: every test starts its own backend on random ports (so tests
//! run in parallel), is bounded in time with [`bounded`], and never sleeps to
//! wait for something: it polls the API or awaits a result.

use std::future::Future;
use std::time::Duration;

use wildrydes_local_aws::{LocalAws, LocalAwsOptions};

/// Longest a whole-system test may run. Each takes well under a second
/// locally; the limit turns a hang into a failure instead of a stuck run.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `test`, panicking if it takes longer than [`TEST_TIMEOUT`].
pub async fn bounded<F: Future>(test: F) -> F::Output {
    match tokio::time::timeout(TEST_TIMEOUT, test).await {
        Ok(output) => output,
        Err(_) => panic!("test did not finish within {TEST_TIMEOUT:?}"),
    }
}

/// Starts an in-memory backend on random ports with the default options.
///
/// Panics if it cannot start: without a backend no test can run, and the
/// panic message says why.
pub async fn start_local_aws() -> LocalAws {
    match LocalAws::start(LocalAwsOptions::default()).await {
        Ok(local) => local,
        Err(err) => panic!("could not start the local backend: {err}"),
    }
}
