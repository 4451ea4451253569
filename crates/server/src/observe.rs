//! Operations: Prometheus metrics, the per-request root span, and readiness.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage as _, HttpResponse, web};
use prometheus::{Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

use crate::app::AppState;

/// Every metric Keybridge exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by endpoint (route pattern), method and status.
    pub requests: IntCounterVec,
    /// Latency by endpoint.
    pub latency: HistogramVec,
    /// Tokens issued by grant type and client.
    pub tokens: IntCounterVec,
    /// Logins by connector and outcome.
    pub logins: IntCounterVec,
    /// Storage pool use.
    pub pool: IntGaugeVec,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("keybridge".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by endpoint, method and status"),
            &["endpoint", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by endpoint")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0]),
            &["endpoint"],
        )?;
        let tokens = IntCounterVec::new(
            Opts::new("tokens_issued_total", "Token responses by grant type and client"),
            &["grant_type", "client_id"],
        )?;
        let logins = IntCounterVec::new(
            Opts::new("logins_total", "Logins by connector and outcome"),
            &["connector_id", "outcome"],
        )?;
        let pool =
            IntGaugeVec::new(Opts::new("storage_pool_connections", "Storage pool connections by state"), &["state"])?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(tokens.clone()))?;
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        Ok(Self { registry, requests, latency, tokens, logins, pool })
    }

    /// Counts a login outcome.
    pub fn login(&self, connector_id: &str, outcome: &str) {
        self.logins.with_label_values(&[connector_id, outcome]).inc();
    }
}

/// Counts every request and its latency, labelled by route pattern (bounded cardinality).
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let start = std::time::Instant::now();
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if let Some(st) = state {
        let endpoint = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
        st.metrics.requests.with_label_values(&[endpoint.as_str(), method.as_str(), res.status().as_str()]).inc();
        st.metrics.latency.with_label_values(&[endpoint.as_str()]).observe(start.elapsed().as_secs_f64());
    }
    Ok(res)
}

/// `GET /metrics`, Prometheus text format.
pub async fn metrics(st: web::Data<AppState>) -> HttpResponse {
    if let Some(pg) = &st.pg {
        let s = pg.status();
        st.metrics.pool.with_label_values(&["open"]).set(s.size as i64);
        st.metrics.pool.with_label_values(&["idle"]).set(s.available as i64);
        st.metrics.pool.with_label_values(&["max"]).set(s.max_size as i64);
        st.metrics.pool.with_label_values(&["waiting"]).set(s.waiting as i64);
    }
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&st.metrics.registry.gather(), &mut buf) {
        return HttpResponse::InternalServerError().body(e.to_string());
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(buf)
}

/// `GET /readyz`: storage answers and keys are loaded.
pub async fn readyz(st: web::Data<AppState>) -> HttpResponse {
    let keys = !st.keys.active_kid().as_str().is_empty();
    match st.provider.store.ping().await {
        Ok(()) if keys => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Ok(()) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "not ready", "keys": "not loaded"}))
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "not ready", "storage": "unreachable"}))
        }
    }
}

/// The root span of every request: request id (from tracing-actix-web), plus `client_id` and
/// `connector_id`, filled in by handlers through [`record_client`] and [`record_connector`].
pub struct KeybridgeRootSpan;

impl RootSpanBuilder for KeybridgeRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        tracing_actix_web::root_span!(request, client_id = tracing::field::Empty, connector_id = tracing::field::Empty)
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Records the client on the request's root span.
pub fn record_client(req: &actix_web::HttpRequest, client_id: &str) {
    if let Some(span) = req.extensions().get::<tracing_actix_web::RootSpan>() {
        span.record("client_id", client_id);
    }
}

/// Records the connector on the request's root span.
pub fn record_connector(req: &actix_web::HttpRequest, connector_id: &str) {
    if let Some(span) = req.extensions().get::<tracing_actix_web::RootSpan>() {
        span.record("connector_id", connector_id);
    }
}
