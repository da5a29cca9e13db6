//! Media bytes live in S3. One `aws-sdk-s3` client serves AWS, any S3-compatible store and
//! the embedded one alike; only the endpoint and credentials differ.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

use crate::config::Config;
use crate::embedded::s3::EmbeddedS3;

#[derive(Clone, Debug)]
pub struct MediaStore {
    pub client: Client,
    pub bucket: String,
}

/// The bucket the embedded store uses.
pub const EMBEDDED_BUCKET: &str = "huddle-media";

impl MediaStore {
    /// A client for the configured bucket, credentials from the usual `AWS_*` chain.
    pub async fn external(config: &Config, bucket: &str) -> Self {
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.s3_region.clone()))
            .load()
            .await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.s3_force_path_style);
        if let Some(endpoint) = &config.s3_endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Self {
            client: Client::from_conf(builder.build()),
            bucket: bucket.to_string(),
        }
    }

    /// A client for the embedded store; creates its bucket on first use.
    pub async fn embedded(config: &Config, s3: &EmbeddedS3) -> anyhow::Result<Self> {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.s3_region.clone()))
            .endpoint_url(&s3.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                &s3.access_key,
                &s3.secret_key,
                None,
                None,
                "huddle-embedded",
            ))
            .build();
        let store = Self {
            client: Client::from_conf(conf),
            bucket: EMBEDDED_BUCKET.to_string(),
        };
        if store.ping().await.is_err() {
            store
                .client
                .create_bucket()
                .bucket(&store.bucket)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot create embedded bucket: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    )
                })?;
        }
        Ok(store)
    }

    /// Succeeds when the bucket is reachable with our credentials.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
    }
}
