//! Keybridge's HTML pages: plain forms that work without JavaScript, with strict security headers
//! (RFC 9700 §4.16 clickjacking, §4.2.4 referrer leakage).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header;
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

/// The stylesheet, served at `/assets/keybridge.css` (CSP allows no inline styles).
pub const STYLESHEET: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f5f6f8;color:#1d2330;margin:0}\
main{max-width:380px;margin:8vh auto;background:#fff;border-radius:10px;padding:28px 32px;box-shadow:0 1px 4px rgba(0,0,0,.08)}\
h1{font-size:1.3rem;margin:0 0 4px}p.sub{color:#5b6475;margin:0 0 20px}label{display:block;margin:14px 0 4px;font-weight:600;font-size:.9rem}\
input[type=email],input[type=password],input[type=text]{width:100%;box-sizing:border-box;padding:9px 10px;border:1px solid #c8ceda;border-radius:6px;font-size:1rem}\
button,a.btn{display:block;width:100%;box-sizing:border-box;margin-top:20px;padding:10px;border:0;border-radius:6px;background:#2f5bea;color:#fff;font-size:1rem;text-align:center;text-decoration:none;cursor:pointer}\
a.btn{margin-top:10px}.err{background:#fdecec;color:#a11;border-radius:6px;padding:10px 12px;margin:0 0 12px}";

/// The Content-Security-Policy of every page.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

fn page(status: StatusCode, title: &str, body: &str, base: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{t}</title><link rel=\"stylesheet\" href=\"{b}/assets/keybridge.css\"></head><body><main>{body}</main></body></html>",
        t = text(title),
        b = attr(base),
    );
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

/// An error page. It links nowhere: the redirect URI was not trusted, or the flow cannot continue.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let body = format!(
        "<h1>{}</h1><p class=\"err\">{}</p><p class=\"sub\">You can close this window.</p>",
        text(title),
        text(message)
    );
    page(status, title, &body, "")
}

/// The connector chooser.
pub fn chooser(base: &str, client_name: &str, req_id: &str, connectors: &[(String, String)]) -> HttpResponse {
    let mut body = format!("<h1>Sign in</h1><p class=\"sub\">to continue to {}</p>", text(client_name));
    for (id, name) in connectors {
        body.push_str(&format!(
            "<a class=\"btn\" href=\"{b}/login/{id}?req={r}\">Continue with {n}</a>",
            b = attr(base),
            id = attr(id),
            r = attr(req_id),
            n = text(name)
        ));
    }
    page(StatusCode::OK, "Sign in", &body, base)
}

/// What a connector's login page shows.
pub struct ConnectorPage<'a> {
    /// Path prefix of the issuer.
    pub base: &'a str,
    /// The connector id (the form posts to `/login/{id}`).
    pub connector_id: &'a str,
    /// The connector's display name.
    pub connector_name: &'a str,
    /// The client's display name.
    pub client_name: &'a str,
    /// The authorization request id.
    pub req_id: &'a str,
    /// The CSRF token (also in the browser's cookie).
    pub csrf: &'a str,
    /// The password form's username label, when the connector has a password form.
    pub password_label: Option<&'a str>,
    /// The username typed before, kept after a failed attempt.
    pub username: &'a str,
    /// Upstream buttons: (provider, label).
    pub choices: Vec<(String, String)>,
    /// Whether the connector has a token hand-off page.
    pub handoff: bool,
    /// One generic error message, or none.
    pub error: Option<&'a str>,
}

/// A connector's login page: a plain form that works without JavaScript, and buttons.
pub fn connector_page(f: &ConnectorPage<'_>) -> HttpResponse {
    let err = f.error.map(|e| format!("<p class=\"err\" role=\"alert\">{}</p>", text(e))).unwrap_or_default();
    let mut body = format!(
        "<h1>Sign in</h1><p class=\"sub\">to continue to {client} &middot; {conn}</p>{err}",
        client = text(f.client_name),
        conn = text(f.connector_name),
    );
    for (provider, label) in &f.choices {
        body.push_str(&format!(
            "<a class=\"btn\" href=\"{b}/login/{cid}/upstream?req={req}&amp;provider={p}\">Continue with {l}</a>",
            b = attr(f.base),
            cid = attr(f.connector_id),
            req = attr(f.req_id),
            p = attr(provider),
            l = text(label),
        ));
    }
    if f.handoff {
        body.push_str(&format!(
            "<a class=\"btn\" href=\"{b}/login/{cid}/handoff?req={req}\">Continue with {n}</a>",
            b = attr(f.base),
            cid = attr(f.connector_id),
            req = attr(f.req_id),
            n = text(f.connector_name),
        ));
    }
    if let Some(label) = f.password_label {
        body.push_str(&format!(
            "<form method=\"post\" action=\"{b}/login/{cid}\">\
<input type=\"hidden\" name=\"req\" value=\"{req}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<label for=\"login\">{ulabel}</label><input id=\"login\" name=\"login\" type=\"email\" autocomplete=\"username\" required value=\"{user}\" autofocus>\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form>",
            b = attr(f.base),
            cid = attr(f.connector_id),
            req = attr(f.req_id),
            csrf = attr(f.csrf),
            ulabel = text(label),
            user = attr(f.username),
        ));
    }
    page(if f.error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK }, "Sign in", &body, f.base)
}

/// A login that failed upstream: the reason, and a way back to the application, which learns of
/// the failure through its (validated) redirect URI.
pub fn upstream_failure(status: StatusCode, message: &str, client_name: &str, client_redirect: &str) -> HttpResponse {
    let body = format!(
        "<h1>Sign-in failed</h1><p class=\"err\">{}</p><a class=\"btn\" href=\"{}\">Return to {}</a>",
        text(message),
        attr(client_redirect),
        text(client_name)
    );
    page(status, "Sign-in failed", &body, "")
}

/// What the hand-off page needs.
pub struct HandoffView<'a> {
    /// Path prefix of the issuer.
    pub base: &'a str,
    /// The connector.
    pub connector_id: &'a str,
    /// Its display name.
    pub connector_name: &'a str,
    /// The client's display name.
    pub client_name: &'a str,
    /// The authorization request id.
    pub req_id: &'a str,
    /// The CSRF token.
    pub csrf: &'a str,
    /// The provider's page description.
    pub page: &'a keybridge_core::connector::HandoffPage,
}

/// The token hand-off page: the provider's SDK plus the connector's glue script, under a CSP that
/// allows exactly those scripts and origins and no inline script.
pub fn handoff_page(v: &HandoffView<'_>) -> HttpResponse {
    let scripts: String = v.page.scripts.iter().map(|s| format!("<script src=\"{}\"></script>", attr(s))).collect();
    let config = serde_json::to_string(&v.page.config).unwrap_or_else(|_| "{}".into());
    let body = format!(
        "<h1>Sign in</h1><p class=\"sub\">to continue to {client} &middot; {conn}</p>\
<div id=\"keybridge-handoff\" data-action=\"{b}/login/{cid}/handoff\" data-req=\"{req}\" data-csrf=\"{csrf}\" data-config=\"{config}\"></div>\
<p class=\"err\" id=\"keybridge-error\" hidden></p><noscript><p class=\"err\">This sign-in method needs JavaScript.</p></noscript>\
{scripts}<script src=\"{b}/assets/handoff/{cid}.js\"></script>",
        client = text(v.client_name),
        conn = text(v.connector_name),
        b = attr(v.base),
        cid = attr(v.connector_id),
        req = attr(v.req_id),
        csrf = attr(v.csrf),
        config = attr(&config),
    );
    let origins = v.page.origins.join(" ");
    let script_src: Vec<String> = v
        .page
        .scripts
        .iter()
        .filter_map(|s| url::Url::parse(s).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect();
    let csp = format!(
        "default-src 'none'; script-src 'self' {scripts}; connect-src 'self' {origins}; frame-src {origins}; img-src 'self' data: {origins}; style-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        scripts = script_src.join(" "),
    );
    let mut res = page(StatusCode::OK, "Sign in", &body, v.base);
    if let Ok(value) = header::HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    res
}
