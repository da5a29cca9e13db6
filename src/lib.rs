//! Huddle: one server for real-time chat and group audio/video calls.
//!
//! [`app`] builds the router for a state; [`serve`] runs it on a listener until a shutdown
//! signal. Tests start it on `127.0.0.1:0`.

pub mod allocator;
pub mod assistant;
pub mod auth;
pub mod calls;
pub mod config;
pub mod domain;
pub mod embedded;
pub mod error;
pub mod http;
pub mod mail;
pub mod realtime;
pub mod service;
pub mod state;
pub mod store;
pub mod telemetry;

use std::future::Future;

pub use config::Config;
pub use http::app;
pub use state::{AppState, Backends};

/// Serves `state` on `listener` until `shutdown` completes, then stops taking connections,
/// drains ([`AppState::drain`]: calls end with their records, sockets are closed so
/// clients reconnect) and lets in-flight requests (uploads among them) finish for at most
/// `shutdown_grace_secs` before it closes what is left.
///
/// - Every connection has `TCP_NODELAY`: Socket.IO events and acks are small writes, and
///   with Nagle's algorithm each would wait for the peer's delayed ACK (about 40 ms).
/// - A connection that has not sent a whole request head within `http_header_timeout_secs`
///   is closed, so slow or half-sent requests (slowloris) hold nothing for long.
/// - At most `max_connections` are served at once (by default the open-file limit less a
///   reserve, so the server never runs out of descriptors); past it, new connections wait
///   in the listen backlog.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use tower::ServiceExt;

    let header_timeout = std::time::Duration::from_secs(state.config.http_header_timeout_secs);
    let grace = std::time::Duration::from_secs(state.config.shutdown_grace_secs);
    let limit = match state.config.max_connections {
        0 => connections_from_open_file_limit(),
        n => n,
    };
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(limit));
    let draining = state.clone();
    let router = app(state);
    let mut http = Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
        let service = router
            .clone()
            .map_request(move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req.map(axum::body::Body::new)
            });
        let conn = http
            .serve_connection_with_upgrades(
                TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(service),
            )
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    draining.drain(grace).await;
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            ?grace,
            "connections still open after the shutdown grace period: closing them"
        );
    }
    Ok(())
}

/// What the process's open-file limit leaves for connections: the limit less 256 for the
/// database pool, uploads, logs and the media sockets (at least 64).
fn connections_from_open_file_limit() -> usize {
    let mut limit = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    let soft = if unsafe { nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    };
    usize::try_from(soft).unwrap_or(usize::MAX).clamp(320, 1_000_256) - 256
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
