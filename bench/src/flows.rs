//! The flows the benchmark drives: Keybridge's browser-less login (authorize, the login form,
//! the code), code redemption and refresh; and the same on node-oidc-provider, whose test server
//! signs its account in without a form.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// A fixed PKCE pair: both servers then do the same S256 check per redemption.
pub const VERIFIER: &str = "bench-verifier-0123456789abcdefghijklmnopqrstuvwxyz";

/// The S256 challenge of [`VERIFIER`].
pub fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

/// Where a benchmark points and with which credentials.
#[derive(Clone, Debug)]
pub struct Target {
    /// Base URL (the issuer).
    pub base: String,
    /// Authorization path (`/authorize` for Keybridge, `/auth` for the peer).
    pub authorize_path: &'static str,
    /// Token path.
    pub token_path: &'static str,
    /// Discovery path.
    pub discovery_path: &'static str,
    /// JWKS path.
    pub jwks_path: &'static str,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Registered redirect URI.
    pub redirect_uri: String,
}

fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn location(res: &reqwest::Response) -> Result<String, String> {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| format!("no Location on {}", res.status()))
}

fn cookie_header(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

fn field(html: &str, name: &str) -> Result<String, String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle).ok_or_else(|| format!("no {name} in the login page"))? + needle.len();
    let len = html[start..].find('"').ok_or("unterminated field")?;
    Ok(html[start..start + len].to_owned())
}

/// Keybridge: authorize, open the login page, post the form; returns the code.
pub async fn keybridge_code(http: &reqwest::Client, t: &Target, email: &str, password: &str) -> Result<String, String> {
    let res = http
        .get(format!("{}{}", t.base, t.authorize_path))
        .query(&[
            ("response_type", "code"),
            ("client_id", &t.client_id),
            ("redirect_uri", &t.redirect_uri),
            ("state", "bench"),
            ("scope", "openid email"),
            ("code_challenge", &challenge()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let login = location(&res)?;
    let cookies = cookie_header(&res);
    let page = http.get(&login).header("cookie", &cookies).send().await.map_err(|e| e.to_string())?;
    let html = page.text().await.map_err(|e| e.to_string())?;
    let (req, csrf) = (field(&html, "req")?, field(&html, "csrf")?);
    let action = login.split('?').next().unwrap_or_default().to_owned();
    let res = http
        .post(action)
        .header("cookie", &cookies)
        .form(&[("req", req.as_str()), ("csrf", csrf.as_str()), ("login", email), ("password", password)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let back = location(&res)?;
    param(&back, "code").ok_or_else(|| format!("no code in {back}"))
}

/// node-oidc-provider's test server: follow its interaction redirects to the code.
pub async fn peer_code(t: &Target) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .map_err(|e| e.to_string())?;
    let mut next = url::Url::parse_with_params(
        &format!("{}{}", t.base, t.authorize_path),
        [
            ("response_type", "code"),
            ("client_id", t.client_id.as_str()),
            ("redirect_uri", t.redirect_uri.as_str()),
            ("state", "bench"),
            ("scope", "openid email offline_access"),
            ("prompt", "consent"),
            ("code_challenge", challenge().as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .map_err(|e| e.to_string())?
    .to_string();
    for _ in 0..10 {
        if next.starts_with(&t.redirect_uri) {
            return param(&next, "code").ok_or_else(|| format!("no code in {next}"));
        }
        let res = http.get(&next).send().await.map_err(|e| e.to_string())?;
        let loc = location(&res)?;
        next = if loc.starts_with('/') { format!("{}{loc}", t.base) } else { loc };
    }
    Err("too many redirects".into())
}

/// Redeems a code (client_secret_basic, PKCE); returns the response JSON.
pub async fn redeem(http: &reqwest::Client, t: &Target, code: &str) -> Result<serde_json::Value, String> {
    token(
        http,
        t,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &t.redirect_uri),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

/// Exchanges a refresh token; returns the response JSON.
pub async fn refresh(http: &reqwest::Client, t: &Target, rt: &str) -> Result<serde_json::Value, String> {
    token(http, t, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await
}

async fn token(http: &reqwest::Client, t: &Target, form: &[(&str, &str)]) -> Result<serde_json::Value, String> {
    let res = http
        .post(format!("{}{}", t.base, t.token_path))
        .basic_auth(&t.client_id, Some(&t.client_secret))
        .form(form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status();
    let body: serde_json::Value = res.json().await.map_err(|e| e.to_string())?;
    if status == 200 { Ok(body) } else { Err(format!("{status}: {body}")) }
}

/// GETs a path, expecting 200.
pub async fn get_ok(http: &reqwest::Client, url: &str) -> Result<bool, String> {
    let res = http.get(url).send().await.map_err(|e| e.to_string())?;
    if res.status() != 200 {
        return Err(format!("{url}: {}", res.status()));
    }
    res.bytes().await.map_err(|e| e.to_string())?;
    Ok(true)
}
