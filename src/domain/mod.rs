//! Plain types and rules of the product, free of HTTP and database concerns.

pub mod call;
pub mod chat;
pub mod id;
pub mod media;
pub mod user;
