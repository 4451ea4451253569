//! `keybridge check-config` on the upstream OpenID connectors (`oidc`, `auth0`, `clerk`), run as a
//! user runs it: no network, every problem listed, exit 1; a good config passes with its types.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_keybridge");

fn check(yaml: &str) -> (bool, String, String) {
    let path = std::env::temp_dir().join(format!("keybridge-cli-upstream-{}-{}.yaml", std::process::id(), yaml.len()));
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(BIN).args(["check-config", "--config"]).arg(&path).output().unwrap();
    std::fs::remove_file(&path).ok();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

const HEAD: &str = r#"
issuer: https://auth.example.com
listen: 127.0.0.1:5556
clients:
  - id: c
    secret: s
    redirect_uris: [https://ok.example/cb]
connectors:
"#;

#[test]
fn check_config_explains_bad_upstream_connector_config() {
    let (ok, _, err) = check(&format!(
        r#"{HEAD}
  - id: okta
    type: oidc
    config:
      issuer: http://login.example.com
      client_id: x
      client_secret_env: KEYBRIDGE_TEST_SURELY_UNSET_OIDC_SECRET
      scope: [openid]
  - id: auth0
    type: auth0
    config:
      client_id: x
  - id: clerk
    type: clerk
    config: {{}}
"#
    ));
    assert!(!ok);
    for needle in [
        "connectors[0].config.scope: unknown key",
        "connectors[0].config.issuer: \"http://login.example.com\" must use https (http is allowed only on loopback",
        "connectors[0].config.client_secret_env: environment variable KEYBRIDGE_TEST_SURELY_UNSET_OIDC_SECRET is not set",
        "connectors[1].config.domain: required",
        "connectors[2].config.frontend_api: required",
        "connectors[2].config.client_id or publishable_key: set at least one",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from:\n{err}");
    }
}

#[test]
fn check_config_accepts_upstream_connectors_without_calling_them() {
    // Nothing listens on these issuers: check-config never touches the network.
    let (ok, out, err) = check(&format!(
        r#"{HEAD}
  - id: dev-op
    type: oidc
    config: {{issuer: "http://127.0.0.1:9", client_id: x, client_secret: y, refresh_upstream: true}}
  - id: auth0
    type: auth0
    config: {{domain: example.us.auth0.com, client_id: x, audience: "https://api.example.com"}}
  - id: clerk
    type: clerk
    config: {{frontend_api: "https://clerk.acme.com", publishable_key: pk_live_Y2xlcmsuYWNtZS5jb20k, authorized_parties: ["https://auth.example.com"]}}
"#
    ));
    assert!(ok, "{err}");
    assert!(out.contains("dev-op (oidc), auth0 (auth0), clerk (clerk)"), "{out}");
}
