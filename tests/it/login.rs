//! The local connector's login page: a plain form, CSRF-bound to the browser, no user enumeration.

use keybridge_testkit::{ALICE, GPT_CLIENT, GPT_REDIRECT, location, spawn_app};

const QUERY: &[(&str, &str)] =
    &[("response_type", "code"), ("client_id", GPT_CLIENT), ("redirect_uri", GPT_REDIRECT), ("state", "s")];

#[tokio::test]
async fn the_login_page_is_a_plain_form_with_strict_headers() {
    let app = spawn_app().await;
    let b = app.browser();
    let res = b.authorize(QUERY).await;
    let page = b.http.get(location(&res)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\""));
    assert!(html.contains("name=\"csrf\""));
    assert!(!html.contains("<script"), "the form must work without JavaScript");
    assert!(html.contains("My GPT"), "the page names the client");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_generic_answer() {
    let app = spawn_app().await;
    let b = app.browser();
    let form = b.open_login_form(QUERY).await;
    let wrong_pw = b.submit(&form, (ALICE.0, "not-her-password")).await;
    let status_a = wrong_pw.status();
    let html_a = wrong_pw.text().await.unwrap();
    let unknown = b.submit(&form, ("nobody@example.com", "whatever")).await;
    let status_b = unknown.status();
    let html_b = unknown.text().await.unwrap();
    assert_eq!(status_a, status_b);
    assert_eq!(status_a, 401);
    assert!(html_a.contains("Wrong email or password."));
    assert!(html_b.contains("Wrong email or password."));
    // The request survives a failed attempt: the right password still works.
    let ok = b.submit(&form, ALICE).await;
    assert_eq!(ok.status(), 303);
    assert!(location(&ok).starts_with(GPT_REDIRECT));
}

#[tokio::test]
async fn a_login_post_is_answered_with_303_not_307() {
    let app = spawn_app().await;
    let b = app.browser();
    let form = b.open_login_form(QUERY).await;
    let res = b.submit(&form, ALICE).await;
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn a_forged_csrf_token_is_refused() {
    let app = spawn_app().await;
    let b = app.browser();
    let mut form = b.open_login_form(QUERY).await;
    form.csrf = "forged".into();
    let res = b.submit(&form, ALICE).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    assert!(res.text().await.unwrap().contains("was not opened in this browser"));
}

#[tokio::test]
async fn another_browser_cannot_use_the_form_or_the_login_link() {
    let app = spawn_app().await;
    let victim = app.browser();
    let form = victim.open_login_form(QUERY).await;
    let attacker = app.browser();
    // Posting the victim's form (token and all) without the victim's cookie fails.
    let res = attacker.submit(&form, ALICE).await;
    assert_eq!(res.status(), 400);
    // And so does opening the login link in another browser.
    let page = attacker.http.get(format!("{}?req={}", form.action, form.req)).send().await.unwrap();
    assert_eq!(page.status(), 400);
    // The victim's own flow still completes.
    assert_eq!(victim.submit(&form, ALICE).await.status(), 303);
}

#[tokio::test]
async fn a_login_request_is_single_use() {
    let app = spawn_app().await;
    let b = app.browser();
    let form = b.open_login_form(QUERY).await;
    assert_eq!(b.submit(&form, ALICE).await.status(), 303);
    let again = b.submit(&form, ALICE).await;
    assert_eq!(again.status(), 400);
    assert!(again.headers().get("location").is_none());
    assert!(again.text().await.unwrap().contains("start again"));
    // Even with the cookie put back, the request itself is gone.
    let replay = app.browser();
    let res = replay
        .http
        .post(&form.action)
        .header("Cookie", format!("kbr_{}={}", form.req, form.csrf))
        .form(&[("req", form.req.as_str()), ("csrf", form.csrf.as_str()), ("login", ALICE.0), ("password", ALICE.1)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("expired or was already used"));
}

#[tokio::test]
async fn a_login_request_expires() {
    let app = spawn_app().await;
    let b = app.browser();
    let form = b.open_login_form(QUERY).await;
    app.clock.advance(601);
    let res = b.submit(&form, ALICE).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("expired"));
}
