//! What the SFU is configured with: its UDP addresses, room limits, ICE consent timeouts and
//! the keyframe request throttle.

use std::net::SocketAddr;
use std::time::Duration;

use crate::RoomConfig;

#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The bound UDP socket's address.
    pub local_addr: SocketAddr,
    /// The address participants are told to send to (the public IP where the server is behind
    /// 1:1 NAT); usually `local_addr`.
    pub public_addr: SocketAddr,
    pub room: RoomConfig,
    /// Largest SDP accepted from a client.
    pub max_sdp_bytes: usize,
    /// ICE consent: no traffic for this long makes a connection disconnected...
    pub ice_disconnected_timeout: Duration,
    /// ...and for this long failed, which removes the participant.
    pub ice_failed_timeout: Duration,
    pub ice_keepalive_interval: Duration,
    /// At most one keyframe request per published track within this interval.
    pub keyframe_request_interval: Duration,
}

impl SfuConfig {
    pub fn new(local_addr: SocketAddr) -> Self {
        Self {
            local_addr,
            public_addr: local_addr,
            room: RoomConfig::default(),
            max_sdp_bytes: huddle_signaling::protocol::MAX_SDP_BYTES,
            ice_disconnected_timeout: Duration::from_secs(5),
            ice_failed_timeout: Duration::from_secs(15),
            ice_keepalive_interval: Duration::from_secs(2),
            keyframe_request_interval: Duration::from_millis(500),
        }
    }
}
