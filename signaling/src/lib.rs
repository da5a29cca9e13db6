//! Sans-IO signaling for Huddle: the Socket.IO protocol (every request, ack and server event
//! clients and server exchange), the call session and media negotiation state machines, and
//! TURN REST credentials. No sockets, no clock, no runtime: `clippy.toml` refuses the clock.
#![forbid(unsafe_code)]

pub mod error;
pub mod negotiation;
pub mod protocol;
pub mod session;
pub mod time;
pub mod turn;

pub use error::SignalingError;
pub use negotiation::{Negotiation, NegotiationState, RemoteOffer};
pub use protocol::{CallKind, CallStatus, EndReason, Layer, TrackKind, TrackSource};
pub use session::{CallSession, InviteState, SessionConfig, SessionEvent};
pub use time::Millis;
pub use turn::{TurnCredentials, TurnSecret, turn_credentials};
