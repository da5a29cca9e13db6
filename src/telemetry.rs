//! Logs (text or JSON, filtered by `RUST_LOG`) and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber. Request logs carry method, route and status only:
/// never bodies, query strings or headers, which is where secrets travel.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,tower_http=info,s3s=warn,aws_config=warn,aws_smithy_runtime=warn,hyper=warn,mongodb=warn")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
                .expect("bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder is installed (an embedding program); then
            // our handle renders an empty page rather than crashing.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
