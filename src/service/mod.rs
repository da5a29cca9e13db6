//! Operations shared by the REST routes and the Socket.IO events: each stores its change,
//! then emits the same events whichever transport asked.

pub mod ai;
pub mod calls;
pub mod chats;
pub mod friends;
pub mod groups;
pub mod media;
pub mod messages;
pub mod notifications;
