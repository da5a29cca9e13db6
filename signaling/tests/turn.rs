//! TURN REST credential tests against independently computed HMAC-SHA1 values.

use std::time::Duration;

use huddle_signaling::{SignalingError, TurnSecret, turn_credentials};

#[test]
fn matches_an_openssl_computed_vector() {
    let secret = TurnSecret::new("huddle-test-secret").unwrap();
    let creds = turn_credentials(
        &secret,
        "65a1f0c2e4b0a1b2c3d4e5f6",
        1_700_000_000,
        Duration::from_secs(86_400),
    )
    .unwrap();
    assert_eq!(creds.username, "1700086400:65a1f0c2e4b0a1b2c3d4e5f6");
    assert_eq!(creds.ttl, 86_400);
    assert_eq!(creds.expires_at, 1_700_086_400);
    // Obtained once with:
    //   printf '%s' '1700086400:65a1f0c2e4b0a1b2c3d4e5f6' \
    //     | openssl dgst -sha1 -hmac 'huddle-test-secret' -binary | openssl base64 -A
    assert_eq!(creds.credential, "BsgfdEjyQo0rO9v4KmFdA7A8m08=");
}

#[test]
fn matches_a_second_vector_with_a_short_ttl() {
    let secret = TurnSecret::new(b"x".to_vec()).unwrap();
    let creds = turn_credentials(&secret, "u", 1_700_000_000, Duration::from_secs(600)).unwrap();
    assert_eq!(creds.username, "1700000600:u");
    // printf '%s' '1700000600:u' | openssl dgst -sha1 -hmac 'x' -binary | openssl base64 -A
    assert_eq!(creds.credential, "PYZF8Q5Vl6FH9u4xDX1t1mmXg6w=");
}

#[test]
fn secrets_and_credentials_stay_out_of_debug_output() {
    let secret = TurnSecret::new("hunter2-secret").unwrap();
    assert!(!format!("{secret:?}").contains("hunter2"));
    let creds = turn_credentials(&secret, "u", 0, Duration::from_secs(60)).unwrap();
    let debug = format!("{creds:?}");
    assert!(!debug.contains(&creds.credential), "{debug}");
    assert!(debug.contains("60:u"), "the username is not secret: {debug}");
}

#[test]
fn bad_inputs_are_refused() {
    assert!(matches!(TurnSecret::new(""), Err(SignalingError::InvalidConfig(_))));
    let secret = TurnSecret::new("s").unwrap();
    let mint =
        |user: &str, now: u64, ttl: u64| turn_credentials(&secret, user, now, Duration::from_secs(ttl)).map(|_| ());
    assert!(matches!(mint("u", 0, 0), Err(SignalingError::InvalidConfig(_))));
    assert!(matches!(
        mint("u", 0, 2 * 86_400),
        Err(SignalingError::InvalidConfig(_))
    ));
    assert!(matches!(mint("u", u64::MAX, 60), Err(SignalingError::InvalidConfig(_))));
    assert_eq!(mint("", 0, 60), Err(SignalingError::EmptyField { field: "userId" }));
    assert_eq!(mint("a b", 0, 60), Err(SignalingError::InvalidId { field: "userId" }));
}

#[test]
fn serializes_for_the_client() {
    let secret = TurnSecret::new("s").unwrap();
    let creds = turn_credentials(&secret, "u", 10, Duration::from_secs(60)).unwrap();
    let json = serde_json::to_value(&creds).unwrap();
    assert_eq!(json["username"], "70:u");
    assert_eq!(json["ttl"], 60);
    assert_eq!(json["expiresAt"], 70);
    assert_eq!(json["credential"], creds.credential.as_str());
}
