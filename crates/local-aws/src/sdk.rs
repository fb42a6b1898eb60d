//! SDK configuration that points every client at the local backend and at
//! nothing else.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kinesis::config::{Credentials, SharedCredentialsProvider};
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

/// Region reported to clients and used by the emulators in ARNs.
///
/// Fixed so that ARNs are predictable in tests; us-east-1 is the emulators'
/// own default.
pub const REGION: &str = "us-east-1";

/// Access key id handed to clients. The emulators accept any signature, but
/// the SDK refuses to sign without credentials and would otherwise probe the
/// host (environment, profile files, instance metadata) for some.
pub const ACCESS_KEY_ID: &str = "test";

/// Secret key handed to clients; see [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "test";

/// SDK configuration for a local server at `endpoint` (moto, say), or with
/// no endpoint at all: static test credentials, region [`REGION`], nothing
/// read from the host, so no test can reach real AWS by accident.
pub fn static_sdk_config(endpoint: Option<&str>) -> SdkConfig {
    let mut builder = base_config();
    if let Some(url) = endpoint {
        builder.set_endpoint_url(Some(url.to_owned()));
    }
    builder.build()
}

/// Static credentials and the fixed region, for every local configuration.
fn base_config() -> aws_types::sdk_config::Builder {
    let credentials = Credentials::new(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        None,
        None,
        "wildrydes-local-aws",
    );
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
}

/// Builds the shared SDK configuration for the local backend.
///
/// Built field by field rather than with `aws_config::defaults(..).load()`, so
/// that nothing from the host (`AWS_PROFILE`, `~/.aws/config`, a stray
/// `AWS_ENDPOINT_URL`) can redirect a test to real AWS.
pub(crate) fn sdk_config(kinesis_endpoint: String, dynamodb_endpoint: String) -> SdkConfig {
    base_config()
        .service_config(LocalEndpoints {
            kinesis: kinesis_endpoint,
            dynamodb: dynamodb_endpoint,
        })
        .build()
}

/// Answers the SDK's "is there an endpoint URL for service X?" question, the
/// way `AWS_ENDPOINT_URL_KINESIS` and `AWS_ENDPOINT_URL_DYNAMODB` would.
///
/// This makes `aws_sdk_kinesis::Client::new(&sdk_config)` reach the local
/// Kinesis and the DynamoDB client the local DynamoDB, so code under test can
/// build its clients from an `SdkConfig` exactly as it does in production.
#[derive(Debug)]
struct LocalEndpoints {
    kinesis: String,
    dynamodb: String,
}

impl LoadServiceConfig for LocalEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.env() != "AWS_ENDPOINT_URL" {
            return None;
        }
        match key.service_id() {
            "Kinesis" => Some(self.kinesis.clone()),
            "DynamoDB" => Some(self.dynamodb.clone()),
            _ => None,
        }
    }
}
