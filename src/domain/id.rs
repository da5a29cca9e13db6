//! Ids as clients write them: 24 hexadecimal characters (a MongoDB ObjectId).

use mongodb::bson::oid::ObjectId;

use crate::error::AppError;

/// Parses a path or body id; anything but 24 hex digits is a 400.
pub fn parse_id(raw: &str) -> Result<ObjectId, AppError> {
    if raw.len() != 24 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::bad_request("invalid id: expected 24 hexadecimal characters"));
    }
    ObjectId::parse_str(raw).map_err(|_| AppError::bad_request("invalid id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_hex() {
        assert!(parse_id("0123456789abcdef01234567").is_ok());
        for bad in [
            "",
            "{\"$ne\":null}",
            "0123456789abcdef0123456z",
            "0123456789abcdef012345678",
        ] {
            assert!(matches!(parse_id(bad), Err(AppError::BadRequest(_))), "{bad}");
        }
    }
}
