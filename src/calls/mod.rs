//! The glue around live calls: the hub task that owns every call's signaling state, and the
//! media task that owns the SFU and its UDP port, each reached through a command channel.

pub mod hub;
pub mod sfu;
pub mod udp;
