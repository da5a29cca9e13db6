//! Each rejection of SECURITY.md's account section, through the real server: one-time code
//! rules, JWT checks, no account enumeration, rate limits, and NoSQL-operator injection.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{PASSWORD, TestServer, register_body};
use huddle::auth::tokens::{ACCESS_TYP, AccessClaims, unix_now};
use mongodb::bson::doc;
use serde_json::json;

async fn registered(server: &TestServer, username: &str) -> (common::Client, String) {
    let client = server.client();
    let email = format!("{username}@example.com");
    let r = client
        .post("/api/v1/auth/register", &register_body(username, &email))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    (client, email)
}

#[tokio::test]
async fn otp_reused_expired_wrong_purpose_and_sixth_try_are_refused() {
    let server = TestServer::start().await;

    // Wrong purpose: a reset code does not verify an email, and a verify code does not
    // reset a password.
    let (c, email) = registered(&server, "wrongpurpose").await;
    let verify_code = server.otp(&email, 1).await;
    assert_eq!(
        c.post("/api/v1/auth/forgot-password", &json!({ "email": email }))
            .await
            .status,
        202
    );
    let reset_code = server.otp(&email, 2).await;
    let r = c
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": email, "password": PASSWORD, "otp": reset_code }),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "invalid_code"), "{r:?}");
    let r = c
        .post(
            "/api/v1/auth/reset-password",
            &json!({ "email": email, "otp": verify_code, "password": "another pass", "passwordConfirm": "another pass" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "invalid_code"), "{r:?}");

    // Reused: the right code works once.
    let r = c
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": email, "password": PASSWORD, "otp": verify_code }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = c
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": email, "password": PASSWORD, "otp": verify_code }),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "invalid_code"), "{r:?}");

    // Sixth try: five wrong guesses use the code up; the right code then fails too.
    let (c, email) = registered(&server, "sixthtry").await;
    let code = server.otp(&email, 1).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for attempt in 1..=5 {
        let r = c
            .post(
                "/api/v1/auth/verify",
                &json!({ "email": email, "password": PASSWORD, "otp": wrong }),
            )
            .await;
        assert_eq!(r.status, 403, "attempt {attempt}: {r:?}");
    }
    let r = c
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": email, "password": PASSWORD, "otp": code }),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (403, "invalid_code"),
        "sixth try must fail: {r:?}"
    );
    // A new code (resend) works again.
    assert_eq!(
        c.post("/api/v1/auth/send-otp", &json!({ "email": email })).await.status,
        202
    );
    let fresh = server.otp(&email, 2).await;
    let r = c
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": email, "password": PASSWORD, "otp": fresh }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    // Expired: the code's ten minutes pass (moved in the database, not waited for).
    let (c, email) = registered(&server, "expired").await;
    let code = server.otp(&email, 1).await;
    let past = mongodb::bson::DateTime::from_millis(mongodb::bson::DateTime::now().timestamp_millis() - 1000);
    let moved = server
        .state
        .store
        .db
        .collection::<mongodb::bson::Document>("one_time_codes")
        .update_many(doc! {}, doc! { "$set": { "expiresAt": past } })
        .await
        .unwrap();
    assert!(moved.matched_count >= 1);
    let r = c
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": email, "password": PASSWORD, "otp": code }),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "invalid_code"), "{r:?}");
    server.stop().await;
}

#[tokio::test]
async fn otp_is_stored_hashed_and_expires_in_ten_minutes() {
    let server = TestServer::start().await;
    let (_c, email) = registered(&server, "hashed").await;
    let code = server.otp(&email, 1).await;
    let stored = server
        .state
        .store
        .db
        .collection::<mongodb::bson::Document>("one_time_codes")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    let text = stored.to_string();
    assert!(!text.contains(&code), "plain code stored: {text}");
    let life = stored.get_datetime("expiresAt").unwrap().timestamp_millis()
        - stored.get_datetime("createdAt").unwrap().timestamp_millis();
    assert_eq!(life, 600_000);
    let user = server
        .state
        .store
        .db
        .collection::<mongodb::bson::Document>("users")
        .find_one(doc! { "email": &email })
        .await
        .unwrap()
        .unwrap();
    assert!(
        user.get_str("password")
            .unwrap()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    server.stop().await;
}

fn claims_for(user: &str, session: &str) -> AccessClaims {
    let now = unix_now();
    AccessClaims {
        sub: user.into(),
        sid: session.into(),
        iss: "huddle".into(),
        aud: "huddle-api".into(),
        iat: now,
        nbf: now,
        exp: now + 600,
        jti: "test".into(),
    }
}

#[tokio::test]
async fn tampered_expired_alg_none_and_wrong_type_tokens_are_refused() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let c = &ada.client;
    assert_eq!(c.get("/api/v1/users/me", Some(&ada.access)).await.status, 200);
    let payload = ada.access.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let session = claims["sid"].as_str().unwrap().to_string();

    let refused = |token: String, why: &'static str| {
        let c = c.clone();
        async move {
            let r = c.get("/api/v1/users/me", Some(&token)).await;
            assert_eq!((r.status, r.code()), (401, "unauthorized"), "{why}: {r:?}");
        }
    };

    // Tampered: another user id in the payload, signature unchanged.
    let mut forged = claims.clone();
    forged["sub"] = json!("0123456789abcdef01234567");
    let parts: Vec<&str> = ada.access.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged.to_string()),
        parts[2]
    );
    refused(tampered, "tampered payload").await;

    // Expired.
    let mut expired = claims_for(&ada.user_id, &session);
    expired.iat -= 3600;
    expired.nbf -= 3600;
    expired.exp = unix_now() - 60;
    refused(server.state.tokens.sign(&expired, ACCESS_TYP).unwrap(), "expired").await;

    // alg: none, no signature.
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": ACCESS_TYP }).to_string());
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_string(&claims_for(&ada.user_id, &session)).unwrap());
    refused(format!("{header}.{body}."), "alg none").await;

    // Right key, wrong token type.
    refused(
        server
            .state
            .tokens
            .sign(&claims_for(&ada.user_id, &session), "JWT")
            .unwrap(),
        "typ JWT",
    )
    .await;
    // Wrong audience and issuer.
    let mut aud = claims_for(&ada.user_id, &session);
    aud.aud = "another-service".into();
    refused(server.state.tokens.sign(&aud, ACCESS_TYP).unwrap(), "audience").await;
    // A refresh token is not an access token, and the reverse.
    refused(ada.refresh.clone(), "refresh as access").await;
    let r = c
        .post("/api/v1/auth/refresh", &json!({ "refreshToken": ada.access }))
        .await;
    assert_eq!(r.status, 401, "access as refresh: {r:?}");
    // Garbage and a missing scheme.
    refused("not.a.jwt".into(), "garbage").await;
    let r = c
        .send(
            c.http
                .get(c.url("/api/v1/users/me"))
                .header("authorization", ada.access.clone()),
        )
        .await;
    assert_eq!(r.status, 401, "no Bearer scheme");

    // The genuine token still works: nothing above broke the session.
    assert_eq!(c.get("/api/v1/users/me", Some(&ada.access)).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn unknown_and_known_emails_get_the_same_answers() {
    let server = TestServer::start().await;
    let known = server.signed_up("known").await;
    let c = server.client();

    let new = c
        .post("/api/v1/auth/register", &register_body("fresh", "fresh@example.com"))
        .await;
    let again = c
        .post("/api/v1/auth/register", &register_body("another", &known.email))
        .await;
    assert_eq!((new.status, &new.body), (again.status, &again.body));
    // The owner of the known address hears about it; nobody else learns anything.
    let notice = server.wait_mail(&known.email, 2).await;
    assert_eq!(notice["subject"], "Your Huddle account");
    assert!(notice.get("otp").is_none());

    for path in ["/api/v1/auth/forgot-password", "/api/v1/auth/send-otp"] {
        let unknown = c.post(path, &json!({ "email": "nobody@example.com" })).await;
        let existing = c.post(path, &json!({ "email": known.email })).await;
        assert_eq!(unknown.status, 202, "{path}");
        assert_eq!(
            (unknown.status, &unknown.body),
            (existing.status, &existing.body),
            "{path}"
        );
    }

    let unknown = c
        .post(
            "/api/v1/auth/login",
            &json!({ "email": "nobody@example.com", "password": PASSWORD }),
        )
        .await;
    let wrong = c
        .post(
            "/api/v1/auth/login",
            &json!({ "email": known.email, "password": "not the password" }),
        )
        .await;
    assert_eq!(unknown.status, 401);
    assert_eq!((unknown.status, &unknown.body), (wrong.status, &wrong.body));

    let unknown = c
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": "nobody@example.com", "password": PASSWORD, "otp": "123456" }),
        )
        .await;
    let verified = c
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": known.email, "password": PASSWORD, "otp": "123456" }),
        )
        .await;
    assert_eq!((unknown.status, &unknown.body), (verified.status, &verified.body));
    server.stop().await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let server = TestServer::start_with(|c| {
        c.rate_limit_per_account = 3;
        c.rate_limit_per_ip = 6;
        c.rate_limit_window_secs = 120;
    })
    .await;
    let c = server.client();
    let login = |email: &'static str| {
        let c = c.clone();
        async move {
            c.post(
                "/api/v1/auth/login",
                &json!({ "email": email, "password": "wrong password" }),
            )
            .await
        }
    };
    for _ in 0..3 {
        assert_eq!(login("victim@example.com").await.status, 401);
    }
    let r = login("victim@example.com").await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{r:?}");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry), "Retry-After {retry}");

    // Per IP: other accounts from the same address run into the IP limit.
    for email in ["a@example.com", "b@example.com"] {
        assert_eq!(login(email).await.status, 401);
    }
    let r = login("c@example.com").await;
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.headers.contains_key("retry-after"));
    server.stop().await;
}

#[tokio::test]
async fn query_operators_in_bodies_queries_and_ids_are_400() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let c = &ada.client;
    let bodies = [
        (
            "/api/v1/auth/login",
            json!({ "email": { "$ne": null }, "password": PASSWORD }),
        ),
        (
            "/api/v1/auth/login",
            json!({ "email": ada.email, "password": { "$ne": null } }),
        ),
        (
            "/api/v1/auth/verify",
            json!({ "email": ada.email, "otp": { "$ne": null } }),
        ),
        ("/api/v1/auth/forgot-password", json!({ "email": { "$regex": ".*" } })),
        (
            "/api/v1/auth/register",
            json!({ "firstName": "A", "lastName": "B", "username": "x1", "email": { "$ne": null }, "password": PASSWORD, "passwordConfirm": PASSWORD }),
        ),
        ("/api/v1/auth/refresh", json!({ "refreshToken": { "$ne": null } })),
    ];
    for (path, body) in bodies {
        let r = c.post(path, &body).await;
        assert_eq!((r.status, r.code()), (400, "bad_request"), "{path} {body}: {r:?}");
    }
    let r = c
        .patch_auth("/api/v1/users/me", &ada.access, &json!({ "username": { "$ne": null } }))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    for path in [
        "/api/v1/users/search?q[$ne]=x",
        "/api/v1/users/search?q=a&limit[$gt]=1",
        "/api/v1/users/%7B%22%24ne%22%3Anull%7D",
        "/api/v1/users/$ne",
    ] {
        let r = c.get(path, Some(&ada.access)).await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
    }
    // Operator-looking text in a query is matched literally, never as a pattern.
    server.signed_up("bob").await;
    let r = c.get("/api/v1/users/search?q=.*", Some(&ada.access)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0, "{r:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_pre_registered_address_cannot_be_hijacked() {
    let server = TestServer::start().await;
    let c = server.client();
    let email = "victim@example.com";
    // The attacker registers the victim's address with a password of their own.
    let mut attacker = register_body("attacker1", email);
    attacker["password"] = json!("attacker password");
    attacker["passwordConfirm"] = json!("attacker password");
    assert_eq!(c.post("/api/v1/auth/register", &attacker).await.status, 202);
    // The victim registers later and verifies with the newest code and their password.
    assert_eq!(
        c.post("/api/v1/auth/register", &register_body("victim1", email))
            .await
            .status,
        202
    );
    let code = server.otp(email, 2).await;
    let r = c
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": email, "otp": code, "password": "attacker password" }),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (403, "invalid_code"),
        "a code with the wrong password activates nothing"
    );
    let r = c
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": email, "otp": code, "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["user"]["username"], "victim1");
    let r = c
        .post(
            "/api/v1/auth/login",
            &json!({ "email": email, "password": "attacker password" }),
        )
        .await;
    assert_eq!(r.status, 401, "the attacker's password is gone");
    server.stop().await;
}

#[tokio::test]
async fn a_taken_username_answers_the_same_for_known_and_unknown_emails() {
    let server = TestServer::start().await;
    let known = server.signed_up("known").await;
    let c = server.client();
    let with_known = c
        .post("/api/v1/auth/register", &register_body("known", &known.email))
        .await;
    let with_unknown = c
        .post("/api/v1/auth/register", &register_body("known", "fresh@example.com"))
        .await;
    assert_eq!(with_known.status, 409);
    assert_eq!(
        (with_known.status, &with_known.body),
        (with_unknown.status, &with_unknown.body)
    );
    server.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limit_follows_the_address_the_proxy_saw() {
    let server = TestServer::start_with(|c| {
        c.trust_proxy = true;
        c.rate_limit_per_ip = 2;
    })
    .await;
    let c = server.client();
    for (i, expected) in [(0, 401), (1, 401), (2, 429)] {
        // The client forges a different first hop each time; the proxy appends the real one.
        let r = c
            .send(
                c.http
                    .post(c.url("/api/v1/auth/login"))
                    .header("x-forwarded-for", format!("10.0.0.{i}, 203.0.113.7"))
                    .json(&json!({ "email": format!("u{i}@example.com"), "password": "wrong password" })),
            )
            .await;
        assert_eq!(r.status, expected, "attempt {i}: {r:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_attacker_elsewhere_cannot_lock_the_owner_out() {
    let server = TestServer::start_with(|c| {
        c.trust_proxy = true;
        c.rate_limit_per_account = 3;
    })
    .await;
    let owner = server.signed_up("owner").await;
    let c = server.client();
    let login = |from: &'static str, password: &'static str| {
        let (c, email) = (c.clone(), owner.email.clone());
        async move {
            c.send(
                c.http
                    .post(c.url("/api/v1/auth/login"))
                    .header("x-forwarded-for", from)
                    .json(&json!({ "email": email, "password": password })),
            )
            .await
        }
    };
    for _ in 0..3 {
        assert_eq!(login("198.51.100.9", "guess guess").await.status, 401);
    }
    assert_eq!(
        login("198.51.100.9", "guess guess").await.status,
        429,
        "the guesser is slowed down"
    );
    assert_eq!(
        login("192.0.2.1", PASSWORD).await.status,
        200,
        "the owner elsewhere still gets in"
    );
    server.stop().await;
}

/// POSTs `body` to `path` as if from `from` (behind a trusted proxy).
async fn post_from(c: &common::Client, from: &str, path: &str, body: serde_json::Value) -> common::Reply {
    c.send(c.http.post(c.url(path)).header("x-forwarded-for", from).json(&body))
        .await
}

#[tokio::test]
async fn guesses_spread_over_many_addresses_do_not_lock_the_owner_out_of_their_device() {
    let server = TestServer::start_with(|c| {
        c.trust_proxy = true;
        c.rate_limit_per_account = 3;
    })
    .await;
    // The owner signed in on this browser before: it holds a device cookie for the account.
    let owner = server.signed_up("owner").await;
    let attacker = server.client();
    let wrong = json!({ "email": owner.email, "password": "guess guess" });
    // Ten addresses, three tries each: the account-wide ceiling (ten times three) is spent.
    for i in 0..10 {
        for _ in 0..3 {
            let r = post_from(
                &attacker,
                &format!("198.51.100.{i}"),
                "/api/v1/auth/login",
                wrong.clone(),
            )
            .await;
            assert_eq!(r.status, 401, "{r:?}");
        }
    }
    let r = post_from(&attacker, "198.51.100.77", "/api/v1/auth/login", wrong.clone()).await;
    assert_eq!(r.status, 429, "the campaign is stopped");
    let right = json!({ "email": owner.email, "password": PASSWORD });
    let stranger = server.client();
    let r = post_from(&stranger, "192.0.2.2", "/api/v1/auth/login", right.clone()).await;
    assert_eq!(
        r.status, 429,
        "a client the account never signed in on shares the ceiling"
    );
    let r = post_from(&owner.client, "192.0.2.1", "/api/v1/auth/login", right).await;
    assert_eq!(r.status, 200, "the owner's own device still gets in: {r:?}");

    // The same for password reset: the campaign spends the ceiling, the owner's device is
    // still sent a code.
    let ask = json!({ "email": owner.email });
    for i in 0..10 {
        for _ in 0..3 {
            let r = post_from(
                &attacker,
                &format!("198.51.100.{i}"),
                "/api/v1/auth/forgot-password",
                ask.clone(),
            )
            .await;
            assert_eq!(r.status, 202, "{r:?}");
        }
    }
    let r = post_from(&attacker, "198.51.100.77", "/api/v1/auth/forgot-password", ask.clone()).await;
    assert_eq!(r.status, 429);
    let r = post_from(&owner.client, "192.0.2.1", "/api/v1/auth/forgot-password", ask).await;
    assert_eq!(r.status, 202, "{r:?}");
    // Mail 1 verified the address; 2 to 31 went to the campaign's requests; 32 is the owner's.
    server.wait_mail(&owner.email, 32).await;
    server.stop().await;
}

#[tokio::test]
async fn reset_code_guessing_is_bounded_across_fresh_codes() {
    let server = TestServer::start().await;
    let owner = server.signed_up("owner").await;
    let attacker = server.client();
    let reset = |code: &str| json!({ "email": owner.email, "otp": code, "password": "new password 1", "passwordConfirm": "new password 1" });
    let mut mails = 1;
    let mut guesses = 0;
    // A fresh code each round, and every guess but the right one.
    while guesses < huddle::store::otps::MAX_GUESSES_PER_DAY {
        let r = attacker
            .post("/api/v1/auth/forgot-password", &json!({ "email": owner.email }))
            .await;
        assert_eq!(r.status, 202);
        mails += 1;
        let code: u32 = server.otp(&owner.email, mails).await.parse().unwrap();
        for _ in 0..huddle::store::otps::MAX_ATTEMPTS - 1 {
            let wrong = format!("{:06}", (code + 1 + guesses as u32) % 1_000_000);
            let r = attacker.post("/api/v1/auth/reset-password", &reset(&wrong)).await;
            assert_eq!(r.status, 403, "{r:?}");
            guesses += 1;
        }
    }
    // The day's guesses are spent: even the right code of a fresh one is refused to them.
    attacker
        .post("/api/v1/auth/forgot-password", &json!({ "email": owner.email }))
        .await;
    mails += 1;
    let code = server.otp(&owner.email, mails).await;
    let r = attacker.post("/api/v1/auth/reset-password", &reset(&code)).await;
    assert_eq!(r.status, 403, "guessing went on past the day's bound: {r:?}");
    // The owner, on a device they signed in on, resets with the code they were sent.
    let r = owner
        .client
        .post("/api/v1/auth/forgot-password", &json!({ "email": owner.email }))
        .await;
    assert_eq!(r.status, 202);
    mails += 1;
    let code = server.otp(&owner.email, mails).await;
    let r = owner.client.post("/api/v1/auth/reset-password", &reset(&code)).await;
    assert_eq!(r.status, 200, "{r:?}");
    server.stop().await;
}

#[tokio::test]
async fn registering_a_known_address_holds_the_username_as_a_new_one_does() {
    let server = TestServer::start().await;
    let known = server.signed_up("known").await;
    let c = server.client();
    for (email, username) in [(known.email.as_str(), "probe1"), ("nobody@example.com", "probe2")] {
        let r = c.post("/api/v1/auth/register", &register_body(username, email)).await;
        assert_eq!(r.status, 202, "{r:?}");
        let again = c
            .post(
                "/api/v1/auth/register",
                &register_body(username, "someone.else@example.com"),
            )
            .await;
        assert_eq!(
            (again.status, again.body["error"]["message"].as_str()),
            (409, Some("username is taken")),
            "{email}: the username's fate must not say whether the address has an account"
        );
    }
    server.stop().await;
}

/// The probability that a sample from `a` is larger than one from `b` (ties count half):
/// the Mann-Whitney U statistic over `a.len() * b.len()`. 0.5 when the two cannot be told
/// apart; 1.0 when every `a` is slower than every `b`.
fn probability_of_superiority(a: &[f64], b: &[f64]) -> f64 {
    let mut wins = 0.0;
    for x in a {
        for y in b {
            wins += if x > y {
                1.0
            } else if x == y {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (a.len() * b.len()) as f64
}

// On worker threads, as the server runs: work a request leaves behind (mailing a code)
// runs beside the answers, not in between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_and_reset_take_as_long_for_known_and_unknown_addresses() {
    let server = TestServer::start().await;
    let known = server.signed_up("known").await;
    let c = server.client();
    let timed = |path: &'static str, body: serde_json::Value| {
        let c = c.clone();
        async move {
            let started = std::time::Instant::now();
            let r = c.post(path, &body).await;
            (started.elapsed().as_secs_f64() * 1000.0, r.status)
        }
    };
    for (path, make) in [
        (
            "/api/v1/auth/forgot-password",
            (|e: &str| json!({ "email": e })) as fn(&str) -> serde_json::Value,
        ),
        (
            "/api/v1/auth/reset-password",
            |e: &str| json!({ "email": e, "otp": "123456", "password": "new password 1", "passwordConfirm": "new password 1" }),
        ),
    ] {
        let (mut known_ms, mut unknown_ms) = (Vec::new(), Vec::new());
        for i in 0..34 {
            let unknown = format!("nobody{i}@example.com");
            // Interleaved, so drift in the machine's load falls on both alike.
            let (k, ks) = timed(path, make(&known.email)).await;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let (u, us) = timed(path, make(&unknown)).await;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert_eq!(ks, us, "{path}: the same answer");
            // The first few warm caches and connections.
            if i >= 4 {
                known_ms.push(k);
                unknown_ms.push(u);
            }
        }
        // With 30 samples each, the statistic's spread when nothing differs is about 0.075:
        // outside 0.2..0.8 is four spreads away (odds below 1 in 10,000 by chance).
        let p = probability_of_superiority(&known_ms, &unknown_ms);
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        eprintln!(
            "{path}: known median {:.2} ms, unknown median {:.2} ms, P(known slower) = {p:.2}",
            median(&mut known_ms.clone()),
            median(&mut unknown_ms.clone())
        );
        assert!(
            (0.2..=0.8).contains(&p),
            "{path} answers known addresses measurably slower or faster: P(known slower) = {p:.2}"
        );
    }
    server.stop().await;
}
