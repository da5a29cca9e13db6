//! The glue around live calls: the hub task that owns every call's signaling state, and the
//! media workers, each owning an SFU and its UDP port, all reached through command channels.

pub mod hub;
pub mod sfu;
