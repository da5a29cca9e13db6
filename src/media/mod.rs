//! The glue around live calls: the hub task that owns every call's state (signaling now,
//! the SFU rooms as they arrive), reached through a command channel.

pub mod calls;
