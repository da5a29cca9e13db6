//! Huddle: one server for real-time chat and group audio/video calls.
//!
//! [`app`] builds the router for a state; [`serve`] runs it on a listener until a shutdown
//! signal. Tests start it on `127.0.0.1:0`.

pub mod ai;
pub mod auth;
pub mod config;
pub mod domain;
pub mod embedded;
pub mod error;
pub mod http;
pub mod mail;
pub mod media;
pub mod realtime;
pub mod service;
pub mod state;
pub mod store;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;

pub use config::Config;
pub use http::app;
pub use state::{AppState, Backends};

/// Serves `state` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish.
///
/// Every connection has `TCP_NODELAY`: Socket.IO events and acks are small writes, and
/// with Nagle's algorithm each would wait for the peer's delayed ACK (about 40 ms).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    });
    let app = app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; draining connections");
}
