//! SDK errors as one line that says what went wrong and what to do, instead
//! of the SDK's nested error chain: missing, expired or refused credentials
//! and unreachable endpoints are what operators hit first.

use std::error::Error as StdError;
use std::fmt::{Debug, Display};

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Error codes with which AWS says the credentials have expired.
const EXPIRED_CODES: [&str; 4] = [
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "TokenRefreshRequired",
];

/// Error codes with which AWS says the credentials are not valid.
const REFUSED_CODES: [&str; 8] = [
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "AuthFailure",
];

/// `err`, which happened while `doing` something, as a one-line error.
pub fn explain<E, R>(err: SdkError<E, R>, doing: impl Display) -> anyhow::Error
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    anyhow::anyhow!(describe(&err, doing))
}

/// The line [`explain`] makes of `err`.
pub fn describe<E, R>(err: &SdkError<E, R>, doing: impl Display) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: Debug + 'static,
{
    if let SdkError::ServiceError(_) = err {
        let code = err.code().unwrap_or("an unnamed error");
        let message = err.message().unwrap_or_default();
        if EXPIRED_CODES.contains(&code) {
            return expired(code);
        }
        if REFUSED_CODES.contains(&code) {
            return format!(
                "AWS refused the credentials ({code}: {message}): check the profile (--profile or AWS_PROFILE) and its access key"
            );
        }
        return if message.is_empty() {
            format!("{doing}: {code}")
        } else {
            format!("{doing}: {code}: {message}")
        };
    }
    let detail = innermost(err);
    let chain = DisplayErrorContext(err).to_string().to_lowercase();
    if chain.contains("expired") && (chain.contains("token") || chain.contains("sso")) {
        return expired(&detail);
    }
    if chain.contains("credential") || chain.contains("identity") {
        return format!(
            "no usable AWS credentials ({detail}): run `aws configure` or `aws sso login`, pass --profile (or set AWS_PROFILE), or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        );
    }
    match err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => format!(
            "{doing}: cannot reach AWS ({detail}): check the network, --region and --endpoint-url"
        ),
        SdkError::ResponseError(_) => format!("{doing}: unexpected answer from AWS ({detail})"),
        _ => format!("{doing}: {detail}"),
    }
}

fn expired(detail: &str) -> String {
    format!(
        "the AWS credentials have expired ({detail}): renew them (`aws sso login`, or new keys) and run again"
    )
}

/// The last error of `err`'s source chain, the most specific message, on
/// one line: the credential chain, for one, lists every provider it tried
/// on lines of their own after "no credentials found in chain. Attempted:".
fn innermost(err: &(dyn StdError + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    let message = current.to_string();
    let first = message.lines().next().unwrap_or_default().trim();
    first
        .strip_suffix("Attempted:")
        .unwrap_or(first)
        .trim()
        .trim_end_matches(['.', ':'])
        .to_owned()
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksError;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn service_error(code: &str, message: &str) -> SdkError<DescribeStacksError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        SdkError::service_error(
            DescribeStacksError::generic(meta),
            HttpResponse::new(StatusCode::try_from(403).unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn expired_credentials_say_so_in_one_line() {
        let line = describe(&service_error("ExpiredToken", "expired"), "cannot deploy");
        assert!(
            line.starts_with("the AWS credentials have expired"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn refused_credentials_name_the_code() {
        let line = describe(
            &service_error("InvalidClientTokenId", "bad token"),
            "cannot deploy",
        );
        assert!(line.contains("AWS refused the credentials (InvalidClientTokenId"));
    }

    #[test]
    fn other_service_errors_keep_what_was_being_done() {
        let line = describe(&service_error("ValidationError", "no"), "cannot describe");
        assert_eq!(line, "cannot describe: ValidationError: no");
    }

    #[test]
    fn missing_credentials_are_told_apart_from_network_failures() {
        let no_creds: SdkError<DescribeStacksError, HttpResponse> = SdkError::dispatch_failure(
            ConnectorError::other(
                "no credentials found in chain. Attempted:\n  Environment: not set\n  Profile: none".into(),
                None,
            ),
        );
        assert_eq!(
            describe(&no_creds, "x"),
            "no usable AWS credentials (no credentials found in chain): run `aws configure` or `aws sso login`, pass --profile (or set AWS_PROFILE), or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        );
        let refused: SdkError<DescribeStacksError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
        let line = describe(&refused, "cannot deploy");
        assert!(
            line.starts_with("cannot deploy: cannot reach AWS (connection refused)"),
            "{line}"
        );
    }
}
