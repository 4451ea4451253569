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

/// What the password form shows.
pub struct PasswordForm<'a> {
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
    /// The username label.
    pub username_label: &'a str,
    /// The username typed before, kept after a failed attempt.
    pub username: &'a str,
    /// One generic error message, or none.
    pub error: Option<&'a str>,
}

/// The email-and-password form.
pub fn password_form(f: &PasswordForm<'_>) -> HttpResponse {
    let err = f.error.map(|e| format!("<p class=\"err\" role=\"alert\">{}</p>", text(e))).unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1><p class=\"sub\">to continue to {client} &middot; {conn}</p>{err}\
<form method=\"post\" action=\"{b}/login/{cid}\">\
<input type=\"hidden\" name=\"req\" value=\"{req}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<label for=\"login\">{ulabel}</label><input id=\"login\" name=\"login\" type=\"email\" autocomplete=\"username\" required value=\"{user}\" autofocus>\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form>",
        client = text(f.client_name),
        conn = text(f.connector_name),
        b = attr(f.base),
        cid = attr(f.connector_id),
        req = attr(f.req_id),
        csrf = attr(f.csrf),
        ulabel = text(f.username_label),
        user = attr(f.username),
    );
    page(if f.error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK }, "Sign in", &body, f.base)
}
