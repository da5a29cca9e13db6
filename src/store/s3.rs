//! Media bytes live in S3. One `aws-sdk-s3` client serves AWS, any S3-compatible store and
//! the embedded one alike; only the endpoint and credentials differ.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, ProvideCredentials, Region, SharedCredentialsProvider};
use aws_sdk_s3::presigning::PresigningConfig;
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::Config;
use crate::embedded::s3::EmbeddedS3;

#[derive(Clone, Debug)]
pub struct MediaStore {
    pub client: Client,
    pub bucket: String,
    region: String,
    /// Where browsers POST uploads: the bucket's URL.
    bucket_url: String,
    /// What signs upload forms (the client's own provider is not reachable from it).
    credentials: Option<SharedCredentialsProvider>,
}

/// A browser-ready upload form: POST `fields` then the file (last) as `multipart/form-data`
/// to `url`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PresignedPost {
    pub url: String,
    pub fields: BTreeMap<String, String>,
}

impl MediaStore {
    /// The store's web origin (`scheme://host[:port]`): where browsers upload and download.
    pub fn origin(&self) -> String {
        url::Url::parse(&self.bucket_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }
}

fn s3_error<E: std::error::Error + Send + Sync + 'static>(e: aws_sdk_s3::error::SdkError<E>) -> anyhow::Error {
    anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(e))
}

/// The bucket's URL: path style under a custom endpoint, else AWS's virtual-hosted style.
fn bucket_url(endpoint: Option<&str>, bucket: &str, region: &str, path_style: bool) -> String {
    match endpoint {
        Some(endpoint) if path_style => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        Some(endpoint) => match endpoint.split_once("://") {
            Some((scheme, host)) => format!("{scheme}://{bucket}.{}", host.trim_end_matches('/')),
            None => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        },
        None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
    }
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
            credentials: shared.credentials_provider(),
            region: config.s3_region.clone(),
            bucket_url: bucket_url(
                config.s3_endpoint.as_deref(),
                bucket,
                &config.s3_region,
                config.s3_force_path_style,
            ),
        }
    }

    /// A client for the embedded store; creates its bucket on first use.
    pub async fn embedded(config: &Config, s3: &EmbeddedS3) -> anyhow::Result<Self> {
        let credentials = SharedCredentialsProvider::new(Credentials::new(
            &s3.access_key,
            &s3.secret_key,
            None,
            None,
            "huddle-embedded",
        ));
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.s3_region.clone()))
            .endpoint_url(&s3.endpoint)
            .force_path_style(true)
            .credentials_provider(credentials.clone())
            .build();
        let store = Self {
            client: Client::from_conf(conf),
            bucket: EMBEDDED_BUCKET.to_string(),
            region: config.s3_region.clone(),
            bucket_url: bucket_url(Some(&s3.endpoint), EMBEDDED_BUCKET, &config.s3_region, true),
            credentials: Some(credentials),
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

    /// A SigV4 POST policy for exactly one object: this key, this content type, exactly
    /// `size` bytes (`content-length-range`), valid for `ttl`. The store itself refuses
    /// anything else.
    pub async fn presign_post(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: Duration,
    ) -> anyhow::Result<PresignedPost> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no S3 credentials configured"))?;
        let creds = provider.provide_credentials().await?;
        let now = chrono::Utc::now();
        let date = now.format("%Y%m%d").to_string();
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let expiration = (now + chrono::Duration::from_std(ttl)?)
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let credential = format!("{}/{date}/{}/s3/aws4_request", creds.access_key_id(), self.region);
        let mut fields = BTreeMap::from([
            ("key".to_string(), key.to_string()),
            ("Content-Type".to_string(), content_type.to_string()),
            ("x-amz-algorithm".to_string(), "AWS4-HMAC-SHA256".to_string()),
            ("x-amz-credential".to_string(), credential),
            ("x-amz-date".to_string(), amz_date),
        ]);
        if let Some(token) = creds.session_token() {
            fields.insert("x-amz-security-token".into(), token.to_string());
        }
        let mut conditions = vec![
            serde_json::json!({ "bucket": self.bucket }),
            serde_json::json!(["content-length-range", size, size]),
        ];
        conditions.extend(
            fields
                .iter()
                .map(|(name, value)| serde_json::json!(["eq", format!("${name}"), value])),
        );
        let policy = serde_json::json!({ "expiration": expiration, "conditions": conditions });
        let policy = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, policy.to_string());
        let signature = sign_policy(creds.secret_access_key(), now.into(), &self.region, &policy);
        fields.insert("policy".into(), policy);
        fields.insert("x-amz-signature".into(), signature);
        Ok(PresignedPost {
            url: self.bucket_url.clone(),
            fields,
        })
    }

    /// The object's size, or `None` when there is no such object.
    pub async fn size_of(&self, key: &str) -> anyhow::Result<Option<u64>> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(s3_error(e)),
        }
    }

    /// The first `n` bytes of an object (fewer if it is shorter).
    pub async fn head_bytes(&self, key: &str, n: usize) -> anyhow::Result<Vec<u8>> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{}", n.saturating_sub(1)))
            .send()
            .await
            .map_err(s3_error)?;
        let bytes = object.body.collect().await?.into_bytes();
        Ok(bytes[..bytes.len().min(n)].to_vec())
    }

    /// A short-lived GET URL that serves the object with `content_type` and `disposition`
    /// (what the server chose, never what the uploader declared).
    pub async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
        content_type: &str,
        disposition: &str,
    ) -> anyhow::Result<String> {
        let presigned = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(content_type)
            .response_content_disposition(disposition)
            .presigned(PresigningConfig::expires_in(ttl)?)
            .await
            .map_err(s3_error)?;
        Ok(presigned.uri().to_string())
    }

    /// Copies the object at `from` (where a presigned form may still write) to `to` (where
    /// none can), with the headers it is to be served with. What is checked and served is
    /// the copy, so a form posted again after the check changes nothing.
    pub async fn seal(&self, from: &str, to: &str, content_type: &str, disposition: &str) -> anyhow::Result<()> {
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(format!("{}/{from}", self.bucket))
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .content_type(content_type)
            .content_disposition(disposition)
            .send()
            .await
            .map(|_| ())
            .map_err(s3_error)
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(s3_error)
    }
}

/// Bytes buffered before a part goes to S3 (parts but the last must be at least 5 MiB).
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// Writes one object as an S3 multipart upload, a part at a time, so an upload of any size
/// holds at most one part in memory. Dropped without `finish`, call `abort`.
pub struct PartWriter {
    store: MediaStore,
    key: String,
    upload_id: String,
    buffer: Vec<u8>,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
    written: u64,
}

impl PartWriter {
    /// Starts the object at `key`, to be served with `content_type` and `disposition`.
    pub async fn start(store: &MediaStore, key: &str, content_type: &str, disposition: &str) -> anyhow::Result<Self> {
        let created = store
            .client
            .create_multipart_upload()
            .bucket(&store.bucket)
            .key(key)
            .content_type(content_type)
            .content_disposition(disposition)
            .send()
            .await
            .map_err(s3_error)?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| anyhow::anyhow!("the store returned no upload id"))?
            .to_string();
        Ok(Self {
            store: store.clone(),
            key: key.to_string(),
            upload_id,
            buffer: Vec::with_capacity(PART_BYTES),
            parts: Vec::new(),
            written: 0,
        })
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub async fn write(&mut self, mut bytes: &[u8]) -> anyhow::Result<()> {
        self.written += bytes.len() as u64;
        while !bytes.is_empty() {
            let take = (PART_BYTES - self.buffer.len()).min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() == PART_BYTES {
                self.flush_part().await?;
            }
        }
        Ok(())
    }

    async fn flush_part(&mut self) -> anyhow::Result<()> {
        let number = self.parts.len() as i32 + 1;
        let body = std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_BYTES));
        let part = self
            .store
            .client
            .upload_part()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(body.into())
            .send()
            .await
            .map_err(s3_error)?;
        self.parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    pub async fn finish(mut self) -> anyhow::Result<u64> {
        if !self.buffer.is_empty() || self.parts.is_empty() {
            self.flush_part().await?;
        }
        let upload = aws_sdk_s3::types::CompletedMultipartUpload::builder()
            .set_parts(Some(std::mem::take(&mut self.parts)))
            .build();
        self.store
            .client
            .complete_multipart_upload()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(upload)
            .send()
            .await
            .map_err(s3_error)?;
        Ok(self.written)
    }

    /// Gives up: the store discards the parts.
    pub async fn abort(self) {
        let aborted = self
            .store
            .client
            .abort_multipart_upload()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::warn!(error = %s3_error(e), "an abandoned multipart upload was not aborted");
        }
    }
}

/// The SigV4 signature of a POST policy (already base64-encoded): the policy is the string
/// to sign, with the signing key of `at`'s date, `region` and the S3 service.
fn sign_policy(secret: &str, at: std::time::SystemTime, region: &str, policy_base64: &str) -> String {
    let key = aws_sigv4::sign::v4::generate_signing_key(secret, at, region, "s3");
    aws_sigv4::sign::v4::calculate_signature(key, policy_base64.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::sign_policy;

    /// The worked example AWS publishes as a test suite for signature code ("Example:
    /// Browser-Based Upload using HTTP POST (Using AWS Signature Version 4)", S3 API
    /// reference): its policy, written with CRLF line ends, its example credentials, and the
    /// signature it gives.
    #[test]
    fn the_policy_signature_matches_awss_published_example() {
        let policy = [
            r#"{ "expiration": "2015-12-30T12:00:00.000Z","#,
            r#"  "conditions": ["#,
            r#"    {"bucket": "sigv4examplebucket"},"#,
            r#"    ["starts-with", "$key", "user/user1/"],"#,
            r#"    {"acl": "public-read"},"#,
            r#"    {"success_action_redirect": "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html"},"#,
            r#"    ["starts-with", "$Content-Type", "image/"],"#,
            r#"    {"x-amz-meta-uuid": "14365123651274"},"#,
            r#"    {"x-amz-server-side-encryption": "AES256"},"#,
            r#"    ["starts-with", "$x-amz-meta-tag", ""],"#,
            "",
            r#"    {"x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request"},"#,
            r#"    {"x-amz-algorithm": "AWS4-HMAC-SHA256"},"#,
            r#"    {"x-amz-date": "20151229T000000Z" }"#,
            "  ]",
            "}",
        ]
        .join("\r\n");
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, policy);
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_451_347_200); // 2015-12-29
        assert_eq!(
            sign_policy("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", at, "us-east-1", &encoded),
            "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
        );
    }
}
