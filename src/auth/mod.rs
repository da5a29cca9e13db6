//! Credentials and tokens: password hashing, access and refresh tokens, one-time codes and
//! attempt limits. Handlers reach them through `AppState`; nothing here knows HTTP.

pub mod device;
pub mod otp;
pub mod password;
pub mod rate_limit;
pub mod tokens;
