//! The embedded default: the backends Huddle starts for itself when nothing is configured
//! (a `secantusd-rs` database process, an in-process S3-compatible store) and the data-dir
//! lock that keeps two servers off the same files.

pub mod db;
pub mod lock;
pub mod s3;

use std::net::{SocketAddr, TcpListener};

/// A free loopback port, found by binding port 0 and letting it go.
pub fn free_loopback_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    Ok(listener.local_addr()?.port())
}
