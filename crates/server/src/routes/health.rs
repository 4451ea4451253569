//! `/healthz`: the process is alive.

use actix_web::{HttpResponse, web};

/// Registers `/healthz` at the root.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz));
    cfg.route("/readyz", web::get().to(crate::observe::readyz));
    cfg.route("/metrics", web::get().to(crate::observe::metrics));
    cfg.route("/assets/keybridge.css", web::get().to(stylesheet));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

pub(crate) async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(crate::pages::STYLESHEET)
}
