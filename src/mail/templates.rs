//! The messages Huddle sends, in plain text and HTML. User-supplied text is HTML-escaped.

use super::Email;

pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn code_mail(to: &str, first_name: &str, subject: &str, purpose: &str, code: &str, ttl_minutes: u64) -> Email {
    let text = format!(
        "Hi {first_name},\n\nYour Huddle code to {purpose} is {code}.\nIt expires in {ttl_minutes} minutes and works once.\n\nIf you did not ask for it, ignore this email.\n"
    );
    let html = format!(
        "<p>Hi {},</p><p>Your Huddle code to {purpose} is <strong style=\"font-size:1.4em;letter-spacing:0.2em\">{code}</strong>.</p><p>It expires in {ttl_minutes} minutes and works once.</p><p>If you did not ask for it, ignore this email.</p>",
        escape_html(first_name)
    );
    Email {
        to: to.to_string(),
        subject: subject.to_string(),
        text,
        html,
        otp: Some(code.to_string()),
    }
}

pub fn verify_email(to: &str, first_name: &str, code: &str, ttl_minutes: u64) -> Email {
    code_mail(
        to,
        first_name,
        "Verify your Huddle email",
        "verify your email",
        code,
        ttl_minutes,
    )
}

pub fn reset_password(to: &str, first_name: &str, code: &str, ttl_minutes: u64) -> Email {
    code_mail(
        to,
        first_name,
        "Reset your Huddle password",
        "reset your password",
        code,
        ttl_minutes,
    )
}

/// Sent when someone registers with an address that already has an account.
pub fn already_registered(to: &str, first_name: &str) -> Email {
    let text = format!(
        "Hi {first_name},\n\nSomeone tried to create a Huddle account with this email, which already has one.\nIf it was you, sign in, or reset your password if you forgot it.\n"
    );
    let html = format!(
        "<p>Hi {},</p><p>Someone tried to create a Huddle account with this email, which already has one.</p><p>If it was you, sign in, or reset your password if you forgot it.</p>",
        escape_html(first_name)
    );
    Email {
        to: to.to_string(),
        subject: "Your Huddle account".to_string(),
        text,
        html,
        otp: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_in_html_and_code_is_present() {
        let mail = verify_email("a@x.io", "<script>", "123456", 10);
        assert!(mail.html.contains("&lt;script&gt;") && !mail.html.contains("<script>"));
        assert!(mail.text.contains("123456") && mail.html.contains("123456"));
        assert_eq!(mail.otp.as_deref(), Some("123456"));
    }
}
