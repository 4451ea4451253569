//! Operations endpoints: readiness and Prometheus metrics.

use keybridge_testkit::{ALICE, GPT_CLIENT, GPT_REDIRECT, spawn_app};

#[tokio::test]
async fn readyz_reports_storage_and_keys() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_logins() {
    let app = spawn_app().await;
    let b = app.browser();
    let q = [("response_type", "code"), ("client_id", GPT_CLIENT), ("redirect_uri", GPT_REDIRECT), ("state", "s")];
    let form = b.open_login_form(&q).await;
    assert_eq!(b.submit(&form, (ALICE.0, "wrong")).await.status(), 401);
    let code = app.gpt_code().await;
    app.redeem_gpt_code(&code).await;
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for needle in [
        r#"keybridge_tokens_issued_total{client_id="gpt",grant_type="authorization_code"} 1"#,
        r#"keybridge_logins_total{connector_id="local",outcome="success"} 1"#,
        r#"keybridge_logins_total{connector_id="local",outcome="wrong_credentials"} 1"#,
        r#"keybridge_http_requests_total{endpoint="/token",method="POST",status="200"} 1"#,
        "keybridge_http_request_duration_seconds_bucket{endpoint=\"/authorize\"",
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
    assert!(!text.contains(&code), "no secrets in metrics");
}
