//! The `huddle` binary: configuration, logging, state, serve. Nothing else.

use std::process::ExitCode;

use huddle::{AppState, Config};

#[tokio::main]
async fn main() -> ExitCode {
    huddle::allocator::tune();
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
    match &state.config.web_dir {
        Some(dir) if dir.join("index.html").is_file() => {
            tracing::info!(component = "web", dir = %dir.display(), "web client: open http://{addr}/ in a browser");
        }
        Some(dir) => tracing::warn!(
            component = "web",
            dir = %dir.display(),
            "web client: no index.html in its folder (HUDDLE_WEB_DIR); run `make run` to build it"
        ),
        None => tracing::info!(component = "web", "web client: off (HUDDLE_WEB_DIR is empty)"),
    }
    huddle::serve(listener, state, huddle::shutdown_signal()).await?;
    backends.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
