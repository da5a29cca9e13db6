//! The `huddle` binary: configuration, logging, state, serve. Nothing else.

use std::process::ExitCode;

use huddle::{AppState, Config};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("huddle: {e}");
            return ExitCode::from(2);
        }
    };
    huddle::telemetry::init_logging(config.log_format);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let addr = config.http_addr;
    let (state, backends) = AppState::build(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (HUDDLE_HTTP_ADDR): {e}"))?;
    tracing::info!(%addr, "huddle listening on http://{addr}");
    huddle::serve(listener, state, huddle::shutdown_signal()).await?;
    backends.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
