//! Chat and message rules: message types, content limits, and what a client may send.

/// Longest message text, in characters.
pub const CONTENT_MAX: usize = 10_000;
/// Most attachments on one message.
pub const ATTACHMENTS_MAX: usize = 10;
/// Longest client message id.
pub const CLIENT_MSG_ID_MAX: usize = 64;
pub const GROUP_NAME_MAX: usize = 100;
pub const GROUP_MEMBERS_MAX: usize = 256;

pub use huddle_signaling::protocol::MessageType;

/// A broken message rule, phrased for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MessageRuleError(pub &'static str);

/// Checks what a client sends as a new message (or an edit's new text).
pub fn check_content(kind: MessageType, content: &str, attachments: usize) -> Result<(), MessageRuleError> {
    if kind == MessageType::Call {
        return Err(MessageRuleError("type: call records are written by the server"));
    }
    if content.chars().count() > CONTENT_MAX {
        return Err(MessageRuleError("content: at most 10000 characters"));
    }
    if attachments > ATTACHMENTS_MAX {
        return Err(MessageRuleError("attachments: at most 10"));
    }
    if content.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(MessageRuleError("content: control characters are not allowed"));
    }
    match kind {
        MessageType::Text | MessageType::Emoji if content.trim().is_empty() => {
            Err(MessageRuleError("content: must not be empty"))
        }
        MessageType::Link if !is_web_link(content.trim()) => {
            Err(MessageRuleError("content: a link must be an http:// or https:// URL"))
        }
        MessageType::Image | MessageType::File | MessageType::Video | MessageType::Audio if attachments == 0 => {
            Err(MessageRuleError("attachments: this type needs an attachment"))
        }
        _ => Ok(()),
    }
}

/// An absolute http(s) URL without whitespace or control characters.
pub fn is_web_link(text: &str) -> bool {
    let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !r.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

/// A client message id: 1-64 characters of `A-Z a-z 0-9 - _ .`.
pub fn check_client_msg_id(id: &str) -> Result<(), MessageRuleError> {
    let ok = !id.is_empty()
        && id.len() <= CLIENT_MSG_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(MessageRuleError(
            "clientMsgId: 1-64 characters of letters, digits, '-', '_' or '.'",
        ))
    }
}

/// A group name: trimmed, 1-100 characters, no control characters.
pub fn normalize_group_name(raw: &str) -> Result<String, MessageRuleError> {
    let name = raw.trim();
    let len = name.chars().count();
    if len == 0 || len > GROUP_NAME_MAX || name.chars().any(char::is_control) {
        return Err(MessageRuleError("name: 1-100 characters without control characters"));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_rules() {
        assert!(check_content(MessageType::Text, "hi", 0).is_ok());
        assert!(check_content(MessageType::Text, "  ", 0).is_err());
        assert!(check_content(MessageType::Text, &"x".repeat(10_001), 0).is_err());
        assert!(check_content(MessageType::Link, "https://example.com/a?b", 0).is_ok());
        assert!(check_content(MessageType::Link, "javascript:alert(1)", 0).is_err());
        assert!(check_content(MessageType::Image, "", 0).is_err());
        assert!(check_content(MessageType::Image, "", 1).is_ok());
        assert!(check_content(MessageType::Call, "", 0).is_err());
        assert!(check_content(MessageType::Text, "a\u{7}b", 0).is_err());
    }

    #[test]
    fn client_msg_ids() {
        assert!(check_client_msg_id("3f1c-9a.b_2").is_ok());
        for bad in ["", "a b", "{\"$ne\":1}", &"a".repeat(65)] {
            assert!(check_client_msg_id(bad).is_err(), "{bad}");
        }
    }
}
