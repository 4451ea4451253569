//! Bad input at the OAuth endpoints: always a 4xx with RFC 6749 error JSON, never a 5xx.

use keybridge_testkit::{GPT_CLIENT, GPT_SECRET, spawn_app};
use serde_json::Value;

async fn assert_oauth_error(res: reqwest::Response, status: u16, error: &str) {
    assert_eq!(res.status().as_u16(), status);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
}

#[tokio::test]
async fn a_json_body_is_invalid_request() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(app.url("/token"))
        .json(&serde_json::json!({"grant_type": "authorization_code", "client_id": GPT_CLIENT, "client_secret": GPT_SECRET}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn missing_or_unknown_grant_type() {
    let app = spawn_app().await;
    assert_oauth_error(app.token(&[]).await, 400, "invalid_request").await;
    assert_oauth_error(app.token(&[("grant_type", "password")]).await, 400, "unsupported_grant_type").await;
    assert_oauth_error(app.token(&[("grant_type", "client_credentials")]).await, 400, "unsupported_grant_type").await;
    assert_oauth_error(app.token(&[("grant_type", "authorization_code")]).await, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_200_kb_parameter_is_refused_cleanly() {
    let app = spawn_app().await;
    let huge = "a".repeat(200 * 1024);
    assert_oauth_error(
        app.token(&[("grant_type", "authorization_code"), ("code", &huge)]).await,
        400,
        "invalid_request",
    )
    .await;
    // A 200 KB query string (too long for an HTTP client library to build): raw HTTP.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET /authorize?client_id={GPT_CLIENT}&state={huge} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        app.addr
    );
    let _ = conn.write_all(request.as_bytes()).await;
    let mut response = Vec::new();
    let _ = conn.read_to_end(&mut response).await;
    let status_line = String::from_utf8_lossy(&response[..response.len().min(20)]).into_owned();
    assert!(status_line.starts_with("HTTP/1.1 4"), "got {status_line:?}");
}

#[tokio::test]
async fn broken_percent_encoding_is_a_4xx() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(app.url("/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=authorization_code&code=%zz%E0%A4&client_id={GPT_CLIENT}&client_secret=%"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].is_string());
    let res = app.http.get(format!("{}/authorize?client_id=%zz&redirect_uri=%E0%A4", app.issuer)).send().await.unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn repeated_parameters_are_invalid_request() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(app.url("/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=authorization_code&code=a&code=b&client_id={GPT_CLIENT}&client_secret={}",
            url::form_urlencoded::byte_serialize(GPT_SECRET.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn no_client_authentication_is_invalid_client() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(app.url("/token"))
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 401, "invalid_client").await;
    let res = app
        .http
        .post(app.url("/token"))
        .header("Authorization", "Basic %%%")
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 401, "invalid_client").await;
}

#[tokio::test]
async fn wrong_methods_and_paths_are_not_5xx() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/token")).send().await.unwrap();
    assert!(res.status().is_client_error());
    let res = app.http.post(app.url("/login/nope")).form(&[("a", "b")]).send().await.unwrap();
    assert!(res.status().is_client_error());
    let res = app.http.get(app.url("/login")).send().await.unwrap();
    assert!(res.status().is_client_error());
}
