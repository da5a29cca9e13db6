//! Account rules: what a valid name, username, email and password are.

/// Minimum and maximum password length in characters (ASVS 6.2: at least 8, 64+ allowed,
/// never truncated; the upper bound only keeps hashing cost bounded).
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 256;
pub const NAME_MAX: usize = 64;
pub const ABOUT_MAX: usize = 500;
pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 30;
pub const EMAIL_MAX: usize = 254;

/// A broken rule, phrased for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    pub field: &'static str,
    pub message: &'static str,
}

fn rule(field: &'static str, message: &'static str) -> RuleError {
    RuleError { field, message }
}

/// Trims and lowercases an email and checks its shape.
pub fn normalize_email(raw: &str) -> Result<String, RuleError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= EMAIL_MAX
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control() || c == '$');
    if valid {
        Ok(email)
    } else {
        Err(rule("email", "must be a valid email address"))
    }
}

/// Lowercases a username: 3-30 of `a-z 0-9 _ .`, starting with a letter or digit.
pub fn normalize_username(raw: &str) -> Result<String, RuleError> {
    let username = raw.trim().to_lowercase();
    let len = username.chars().count();
    let charset = username
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    let starts_well = username.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if (USERNAME_MIN..=USERNAME_MAX).contains(&len) && charset && starts_well {
        Ok(username)
    } else {
        Err(rule(
            "username",
            "must be 3-30 characters of letters, digits, '_' or '.', starting with a letter or digit",
        ))
    }
}

/// A first or last name: trimmed, 1-64 characters, no control characters.
pub fn normalize_name(field: &'static str, raw: &str) -> Result<String, RuleError> {
    let name = raw.trim();
    let len = name.chars().count();
    if len == 0 || len > NAME_MAX {
        return Err(rule(field, "must be 1-64 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(rule(field, "must not contain control characters"));
    }
    Ok(name.to_string())
}

/// The profile's about text: up to 500 characters, stored as given (escaped on output).
pub fn check_about(raw: &str) -> Result<String, RuleError> {
    if raw.chars().count() > ABOUT_MAX {
        return Err(rule("about", "must be at most 500 characters"));
    }
    if raw.chars().any(|c| c.is_control() && c != '\n') {
        return Err(rule("about", "must not contain control characters"));
    }
    Ok(raw.to_string())
}

/// Length rules only: composition rules make passwords weaker, not stronger (ASVS 6.2).
pub fn check_password(password: &str) -> Result<(), RuleError> {
    let len = password.chars().count();
    if len < PASSWORD_MIN {
        return Err(rule("password", "must be at least 8 characters"));
    }
    if len > PASSWORD_MAX {
        return Err(rule("password", "must be at most 256 characters"));
    }
    Ok(())
}

/// A new password and its confirmation.
pub fn check_new_password(password: &str, confirm: &str) -> Result<(), RuleError> {
    check_password(password)?;
    if password != confirm {
        return Err(rule("passwordConfirm", "must match password"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(normalize_email("  Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@x.io",
            "ada@localhost",
            "a b@x.io",
            "ada@x.io.",
            "{\"$ne\":null}",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usernames_follow_the_charset() {
        assert_eq!(normalize_username("Ada_L").unwrap(), "ada_l");
        for bad in ["ab", "_ada", "ada lovelace", "ädä", "$ne", &"a".repeat(31)] {
            assert!(normalize_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_length_checked_never_truncated() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"p".repeat(64)).is_ok());
        assert!(check_password(&"p".repeat(257)).is_err());
        assert_eq!(
            check_new_password("password1", "password2").unwrap_err().field,
            "passwordConfirm"
        );
    }

    #[test]
    fn names_and_about_are_bounded() {
        assert_eq!(normalize_name("firstName", "  Ada ").unwrap(), "Ada");
        assert!(normalize_name("firstName", "   ").is_err());
        assert!(normalize_name("lastName", "a\u{0}b").is_err());
        assert!(check_about(&"x".repeat(501)).is_err());
        assert_eq!(check_about("<b>hi</b>").unwrap(), "<b>hi</b>");
    }
}
