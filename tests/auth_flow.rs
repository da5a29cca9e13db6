//! Whole-server account flows over HTTP: register, mail, verify, sign-in, profile, refresh
//! rotation with reuse detection, sign-out, password change and reset.

mod common;

use common::{PASSWORD, TestServer, register_body};
use serde_json::json;

#[tokio::test]
async fn register_verify_login_refresh_reuse_logout() {
    let server = TestServer::start().await;
    let client = server.client();
    let email = "ada@example.com";

    let r = client
        .post("/api/v1/auth/register", &register_body("ada", "Ada@Example.com"))
        .await;
    assert_eq!(r.status, 202, "{r:?}");

    // Unverified accounts cannot sign in, even with the right password.
    let r = client
        .post("/api/v1/auth/login", &json!({ "email": email, "password": PASSWORD }))
        .await;
    assert_eq!((r.status, r.code()), (403, "email_not_verified"), "{r:?}");

    let mail = server.wait_mail(email, 1).await;
    assert_eq!(mail["subject"], "Verify your Huddle email");
    let otp = mail["otp"].as_str().unwrap().to_string();
    assert!(mail["text"].as_str().unwrap().contains(&otp));

    let r = client
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": email, "password": PASSWORD, "otp": otp }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["accessToken"].is_string());
    assert_eq!(r.body["tokenType"], "Bearer");
    assert_eq!(r.body["expiresIn"], 900);
    assert!(r.body.get("refreshToken").is_none(), "not asked for in the body");
    assert_eq!(r.body["user"]["emailVerified"], true);
    let set: Vec<String> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session_id = r.body["sessionId"].as_str().unwrap();
    // The browser's latest session, this session's own, and the device cookie.
    for name in [
        "huddle_refresh=".to_string(),
        format!("huddle_refresh_{session_id}="),
        "huddle_device=".to_string(),
    ] {
        let cookie = set
            .iter()
            .find(|c| c.starts_with(&name))
            .unwrap_or_else(|| panic!("no {name} in {set:?}"));
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/api/v1/auth"] {
            assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
        }
    }
    let user = &r.body["user"];
    for secret in [
        "password",
        "otp",
        "otpExpiryTime",
        "passwordResetToken",
        "passwordResetExpires",
    ] {
        assert!(user.get(secret).is_none(), "{secret} leaked: {user}");
    }

    // Sign in as a non-browser client (its own cookie jar), refresh token in the body.
    let app = server.client();
    let r = app
        .post(
            "/api/v1/auth/login",
            &json!({ "email": email, "password": PASSWORD, "includeRefreshToken": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let access = r.body["accessToken"].as_str().unwrap().to_string();
    let refresh1 = r.body["refreshToken"].as_str().unwrap().to_string();

    let me = app.get("/api/v1/users/me", Some(&access)).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["username"], "ada");
    assert_eq!(me.body["email"], email);
    assert_eq!(me.body["firstName"], "Ada");
    assert_eq!(me.body["_id"].as_str().unwrap().len(), 24);
    assert!(me.body.get("password").is_none());

    // Rotation: the first refresh works and spends refresh1.
    let r = app
        .post("/api/v1/auth/refresh", &json!({ "refreshToken": refresh1 }))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let refresh2 = r.body["refreshToken"].as_str().unwrap().to_string();
    let access2 = r.body["accessToken"].as_str().unwrap().to_string();
    assert_ne!(refresh1, refresh2);
    assert_eq!(app.get("/api/v1/users/me", Some(&access2)).await.status, 200);

    // Reuse of the spent token revokes the whole family: refresh2 and its access token die.
    let r = app
        .post("/api/v1/auth/refresh", &json!({ "refreshToken": refresh1 }))
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = app
        .post("/api/v1/auth/refresh", &json!({ "refreshToken": refresh2 }))
        .await;
    assert_eq!(r.status, 401, "family must be revoked: {r:?}");
    assert_eq!(app.get("/api/v1/users/me", Some(&access2)).await.status, 401);

    // The cookie session from verify is a different family and still works.
    let r = client.post("/api/v1/auth/refresh", &json!({})).await;
    assert_eq!(r.status, 200, "cookie refresh: {r:?}");
    assert!(
        r.body.get("refreshToken").is_none(),
        "cookie clients get the token as a cookie only"
    );
    let cookie_access = r.body["accessToken"].as_str().unwrap().to_string();

    // Logout ends the session and clears the cookie.
    let r = client
        .post_auth("/api/v1/auth/logout", &cookie_access, &json!({}))
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let cleared: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cleared.len() == 2
            && cleared
                .iter()
                .all(|c| c.starts_with("huddle_refresh") && c.contains("Max-Age=0")),
        "the latest and the session's own refresh cookies are cleared: {cleared:?}"
    );
    assert_eq!(client.get("/api/v1/users/me", Some(&cookie_access)).await.status, 401);
    assert_eq!(client.post("/api/v1/auth/refresh", &json!({})).await.status, 401);
    server.stop().await;
}

#[tokio::test]
async fn cookie_refresh_from_a_foreign_origin_is_refused() {
    let server = TestServer::start().await;
    let session = server.signed_up("grace").await;
    let client = &session.client;
    let foreign = client
        .send(
            client
                .http
                .post(client.url("/api/v1/auth/refresh"))
                .header("origin", "https://evil.example")
                .json(&json!({})),
        )
        .await;
    assert_eq!(
        (foreign.status, foreign.code()),
        (403, "origin_not_allowed"),
        "{foreign:?}"
    );
    let allowed = client
        .send(
            client
                .http
                .post(client.url("/api/v1/auth/refresh"))
                .header("origin", "http://localhost:5173")
                .json(&json!({})),
        )
        .await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    // The server's own pages (the web client it serves) are same-origin, listed or not; a
    // look-alike host is not.
    for (origin, expected) in [(server.url(""), 200), (format!("{}.evil.example", server.url("")), 403)] {
        let r = client
            .send(
                client
                    .http
                    .post(client.url("/api/v1/auth/refresh"))
                    .header("origin", &origin)
                    .json(&json!({})),
            )
            .await;
        assert_eq!(r.status, expected, "{origin}: {r:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn profile_update_lookup_and_search() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let c = &ada.client;

    let r = c
        .patch_auth(
            "/api/v1/users/me",
            &ada.access,
            &json!({ "about": "<b>maths</b>", "username": "Ada.L" }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["username"], "ada.l");
    assert_eq!(r.body["about"], "<b>maths</b>");

    let r = c
        .patch_auth("/api/v1/users/me", &ada.access, &json!({ "username": "bob" }))
        .await;
    assert_eq!((r.status, r.code()), (409, "conflict"), "{r:?}");
    let r = c
        .patch_auth("/api/v1/users/me", &ada.access, &json!({ "emailVerified": false }))
        .await;
    assert_eq!(r.status, 400, "mass assignment must be refused: {r:?}");

    let r = c
        .get(&format!("/api/v1/users/{}", bob.user_id), Some(&ada.access))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["username"], "bob");
    assert!(r.body.get("email").is_none(), "other users' emails stay private");
    let r = c.get("/api/v1/users/0123456789abcdef01234567", Some(&ada.access)).await;
    assert_eq!(r.status, 404);
    assert_eq!(c.get(&format!("/api/v1/users/{}", bob.user_id), None).await.status, 401);

    for extra in ["bobby", "bobcat", "bobo"] {
        server.signed_up(extra).await;
    }
    let r = c.get("/api/v1/users/search?q=BOB&limit=2", Some(&ada.access)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let first: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(first, ["bob", "bobby"]);
    let cursor = r.body["nextCursor"].as_str().unwrap();
    let r = c
        .get(
            &format!("/api/v1/users/search?q=bob&limit=2&cursor={cursor}"),
            Some(&ada.access),
        )
        .await;
    let second: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(second, ["bobcat", "bobo"]);
    let r = c
        .get("/api/v1/users/search?q=bob&limit=2&cursor=bobo", Some(&ada.access))
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0);
    assert!(r.body.get("nextCursor").is_none());
    // Searching never finds the caller (everyone here is called Ada).
    let r = c.get("/api/v1/users/search?q=ada&limit=50", Some(&ada.access)).await;
    let found = r.body["data"].as_array().unwrap();
    assert_eq!(found.len(), 4, "{r:?}");
    assert!(found.iter().all(|u| u["_id"] != ada.user_id.as_str()), "{r:?}");
    server.stop().await;
}

#[tokio::test]
async fn password_change_revokes_sessions_and_reset_works() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let c = &ada.client;
    let login = |password: &'static str| {
        let c = c.clone();
        let email = ada.email.clone();
        async move {
            c.post("/api/v1/auth/login", &json!({ "email": email, "password": password }))
                .await
        }
    };
    let other_device = login(PASSWORD).await;
    let other_access = other_device.body["accessToken"].as_str().unwrap().to_string();

    let r = c
        .patch_auth(
            "/api/v1/auth/password",
            &ada.access,
            &json!({ "currentPassword": "wrong password!", "password": "new password 1", "passwordConfirm": "new password 1" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "invalid_credentials"), "{r:?}");

    let r = c
        .patch_auth(
            "/api/v1/auth/password",
            &ada.access,
            &json!({ "currentPassword": PASSWORD, "password": "new password 1", "passwordConfirm": "new password 1" }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let fresh = r.body["accessToken"].as_str().unwrap().to_string();
    assert_eq!(
        c.get("/api/v1/users/me", Some(&ada.access)).await.status,
        401,
        "old session revoked"
    );
    assert_eq!(
        c.get("/api/v1/users/me", Some(&other_access)).await.status,
        401,
        "other device revoked"
    );
    assert_eq!(c.get("/api/v1/users/me", Some(&fresh)).await.status, 200);
    assert_eq!(login(PASSWORD).await.status, 401);
    assert_eq!(login("new password 1").await.status, 200);

    // Forgot and reset: the code arrives as mail #2 (after the verification mail).
    let r = c
        .post("/api/v1/auth/forgot-password", &json!({ "email": ada.email }))
        .await;
    assert_eq!(r.status, 202);
    let mail = server.wait_mail(&ada.email, 2).await;
    assert_eq!(mail["subject"], "Reset your Huddle password");
    let otp = mail["otp"].as_str().unwrap();
    let r = c
        .post(
            "/api/v1/auth/reset-password",
            &json!({ "email": ada.email, "otp": otp, "password": "short", "passwordConfirm": "short" }),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = c
        .post(
            "/api/v1/auth/reset-password",
            &json!({ "email": ada.email, "otp": otp, "password": "new password 2", "passwordConfirm": "new password 2" }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        c.get("/api/v1/users/me", Some(&fresh)).await.status,
        401,
        "reset revokes every session"
    );
    assert_eq!(login("new password 1").await.status, 401);
    assert_eq!(login("new password 2").await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn each_session_in_one_browser_refreshes_from_its_own_httponly_cookie() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    // One browser (one cookie jar), two tabs signed in as two people, no token in the body.
    let browser = server.client();
    let mut tabs = Vec::new();
    for who in [&ada, &bob] {
        let r = browser
            .post(
                "/api/v1/auth/login",
                &json!({ "email": who.email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.get("refreshToken").is_none(), "not asked for: {r:?}");
        let cookies: Vec<&str> = r
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        let session = r.body["sessionId"].as_str().unwrap().to_string();
        assert!(
            cookies
                .iter()
                .any(|c| c.starts_with(&format!("huddle_refresh_{session}=")) && c.contains("HttpOnly")),
            "{cookies:?}"
        );
        tabs.push((session, who.user_id.clone()));
    }
    for _ in 0..2 {
        for (session, user) in &tabs {
            let r = browser
                .post("/api/v1/auth/refresh", &json!({ "sessionId": session }))
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(r.body["user"]["_id"], user.as_str(), "a tab took another tab's account");
            assert_eq!(r.body["sessionId"], session.as_str());
        }
    }
    server.stop().await;
}
