//! `AwsArgs`: where and as whom every binary talks to AWS, the same way in
//! each: flags first, then the SDK's provider chain (environment, profile,
//! instance role), with the workshop's region as the last resort.
//!
//! The struct is a clap argument group that every binary flattens into its
//! own flags.

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Region used when neither a flag, the environment nor a profile names one:
/// the original producer's default.
pub const FALLBACK_REGION: &str = "us-east-1";

/// AWS connection settings shared by every binary.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct AwsArgs {
    /// AWS region, e.g. us-west-2 [default: AWS_REGION, then the profile's
    /// region, then us-east-1]
    #[arg(long, value_name = "REGION", global = true)]
    pub region: Option<String>,

    /// Named profile from ~/.aws/config and ~/.aws/credentials [default:
    /// AWS_PROFILE, then "default"]
    #[arg(long, value_name = "NAME", global = true)]
    pub profile: Option<String>,

    /// Send every AWS call to this URL instead of AWS, e.g. the endpoints
    /// `cargo xtask local` prints. Per-service variables such as
    /// AWS_ENDPOINT_URL_KINESIS also work
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL", global = true)]
    pub endpoint_url: Option<String>,
}

impl AwsArgs {
    /// The SDK configuration these settings and the provider chain describe.
    pub async fn sdk_config(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let mut region = RegionProviderChain::first_try(self.region.clone().map(Region::new));
        if let Some(profile) = &self.profile {
            // The named profile's region wins over the environment's default profile.
            region = region.or_else(
                aws_config::profile::ProfileFileRegionProvider::builder()
                    .profile_name(profile)
                    .build(),
            );
        }
        let region = region
            .or_default_provider()
            .or_else(Region::from_static(FALLBACK_REGION));
        loader.region(region).load().await
    }
}
