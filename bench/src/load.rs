//! The load generator: N workers, each with its own keep-alive connection, for a bounded time and
//! request count, against loopback only. Latencies go into HDR histograms.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies from 1 µs to 60 s, three significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// What one measurement found.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Successful requests.
    pub ok: u64,
    /// Failed requests (wrong status, transport error).
    pub errors: u64,
    /// Wall time of the measurement.
    pub elapsed: Duration,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile latency, milliseconds.
    pub p99_ms: f64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
}

impl Stats {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The bounds of one run.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Concurrent workers (connections).
    pub workers: usize,
    /// Stop after this long.
    pub duration: Duration,
    /// Stop after this many requests in total.
    pub max_requests: u64,
}

/// Runs `request(worker, n)` from `bounds.workers` workers until time or count runs out. A worker
/// whose `request` returns `Ok(false)` has nothing left to do and stops.
pub async fn run<F, Fut>(bounds: Bounds, request: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, String>> + Send,
{
    let request = Arc::new(request);
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + bounds.duration;
    let mut handles = Vec::new();
    for w in 0..bounds.workers {
        let request = request.clone();
        let issued = issued.clone();
        handles.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= bounds.max_requests {
                    break;
                }
                let t = Instant::now();
                match request(w, n).await {
                    Ok(true) => {
                        ok += 1;
                        let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                    }
                    Ok(false) => break,
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (hist, ok, errors, first_error)
        }));
    }
    let mut hist = new_histogram();
    let (mut ok, mut errors, mut first_error) = (0, 0, None);
    for h in handles {
        if let Ok((hh, o, e, fe)) = h.await {
            let _ = hist.add(&hh);
            ok += o;
            errors += e;
            if first_error.is_none() {
                first_error = fe;
            }
        }
    }
    Stats {
        ok,
        errors,
        elapsed: start.elapsed(),
        p50_ms: hist.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        first_error,
    }
}

/// A client with one keep-alive connection, no redirects, loopback only.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// Resident set size of a process, in MiB (from /proc).
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Samples a process's RSS every 100 ms while `work` runs; returns its result and the peak.
pub async fn with_peak_rss<T>(pid: Option<u32>, work: impl Future<Output = T>) -> (T, Option<f64>) {
    let Some(pid) = pid else { return (work.await, None) };
    let peak = Arc::new(std::sync::Mutex::new(rss_mib(pid).unwrap_or(0.0)));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(r) = rss_mib(pid)
                    && let Ok(mut p) = peak.lock()
                {
                    *p = p.max(r);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let out = work.await;
    sampler.abort();
    let p = peak.lock().map(|p| *p).ok();
    (out, p)
}
