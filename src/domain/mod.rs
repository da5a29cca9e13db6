//! Plain types and rules of the product, free of HTTP and database concerns.

pub mod chat;
pub mod media;
pub mod user;
