//! What every `bootstrap` in `src/bin` does around its handler: JSON logs,
//! its configuration read and checked before the first invocation, the SDK
//! configuration from Lambda's environment, and the runtime loop that gives
//! each invocation its deadline.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use aws_config::SdkConfig;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::kinesis::deadline;
use crate::telemetry;

/// Installs JSON logs, then reads the configuration with `from_env` and the
/// SDK configuration from the environment Lambda sets. A configuration that
/// does not hold is logged as one `cannot start` line before it is returned
/// (Lambda then reports an init error).
pub async fn start<C, E>(from_env: impl FnOnce() -> Result<C, E>) -> Result<(C, SdkConfig), E>
where
    E: Display,
{
    telemetry::init_json_logs();
    let config = from_env().inspect_err(cannot_start)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok((config, aws))
}

/// Logs why a function cannot start, as one line.
pub fn cannot_start(error: &impl Display) {
    tracing::error!(error = %error, "cannot start");
}

/// Serves invocations until the runtime stops: each event goes to `handler`
/// with its deadline, Lambda's less `margin` (time to answer and log).
pub async fn serve<E, R, F, Fut>(margin: Duration, handler: F) -> Result<(), Error>
where
    E: DeserializeOwned + Send,
    R: Serialize,
    F: Fn(E, Instant) -> Fut,
    Fut: Future<Output = Result<R, Error>>,
{
    let handler = &handler;
    run(service_fn(move |event: LambdaEvent<E>| async move {
        handler(event.payload, deadline(event.context.deadline, margin)).await
    }))
    .await
}

/// [`serve`] for a handler that always answers: its failures are in the
/// answer (`batchItemFailures`), never an error of the invocation.
pub async fn serve_answers<E, R, F, Fut>(margin: Duration, handler: F) -> Result<(), Error>
where
    E: DeserializeOwned + Send,
    R: Serialize,
    F: Fn(E, Instant) -> Fut,
    Fut: Future<Output = R>,
{
    let handler = &handler;
    serve(margin, move |event: E, deadline| async move {
        Ok(handler(event, deadline).await)
    })
    .await
}
