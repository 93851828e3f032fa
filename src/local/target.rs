//! A small local HTTP target for the demo, the examples and the tests: endpoints that succeed,
//! fail, are slow or hang, and a record of every request received (with its `X-Shoal-Instance`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::any;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the target saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// `<instance>-<attempt>`, as sent by the worker.
    pub instance: Option<String>,
    pub at_ms: i64,
}

/// What the target received: the newest `keep` requests, and how many arrived in all.
#[derive(Clone)]
struct Log(Arc<Mutex<History>>);

struct History {
    entries: Vec<Received>,
    total: usize,
    keep: usize,
}

impl Log {
    fn new(keep: usize) -> Log {
        Log(Arc::new(Mutex::new(History {
            entries: Vec::new(),
            total: 0,
            keep,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        self.0.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// How many requests a target started with [`Target::start`] remembers (a long demo must not
/// grow without bound).
pub const KEPT_BY_DEFAULT: usize = 10_000;

pub struct Target {
    addr: SocketAddr,
    log: Log,
    task: JoinHandle<()>,
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: Option<u64>,
}

impl Target {
    /// Serves on `addr` (port 0 picks a free port). Routes:
    /// `/ok` 200 "ok", `/fail` 500, `/status/{code}`, `/slow?ms=N` (200 after N ms),
    /// `/requests` (JSON list of what was received), anything else 404.
    /// It remembers the newest [`KEPT_BY_DEFAULT`] requests.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Target> {
        Target::start_keeping(addr, KEPT_BY_DEFAULT).await
    }

    /// [`Target::start`], remembering every request: for tests and benchmarks that check each
    /// delivery, however long they run.
    pub async fn start_keeping_all(addr: SocketAddr) -> std::io::Result<Target> {
        Target::start_keeping(addr, usize::MAX).await
    }

    async fn start_keeping(addr: SocketAddr, keep: usize) -> std::io::Result<Target> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let log = Log::new(keep);
        let app = Router::new()
            .route("/ok", any(|| async { "ok" }))
            .route(
                "/fail",
                any(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom: the target failed") }),
            )
            .route("/status/{code}", any(status))
            .route("/slow", any(slow))
            .route("/requests", any(requests))
            .fallback(|| async { (StatusCode::NOT_FOUND, "no such endpoint") })
            .layer(axum::middleware::from_fn_with_state(log.clone(), record))
            .with_state(log.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Target { addr, log, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests arrived so far, remembered or not (cheap to poll, unlike
    /// [`Target::received`]).
    pub fn received_count(&self) -> usize {
        self.log.lock().total
    }

    /// The requests it remembers, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().entries.clone()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if uri.path() != "/requests" {
        let instance = headers
            .get(crate::worker::executor::INSTANCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        tracing::info!(
            %method,
            path = %uri.path(),
            instance = %instance.as_deref().unwrap_or("-"),
            "received"
        );
        let mut history = log.lock();
        history.total += 1;
        history.entries.push(Received {
            method: method.to_string(),
            path: uri.path().to_string(),
            instance,
            at_ms: crate::model::now_ms(),
        });
        // Memory stays bounded: past the bound, the older half goes in one step.
        if history.entries.len() > history.keep {
            let drop = history.keep / 2 + 1;
            history.entries.drain(..drop);
        }
    }
    next.run(request).await
}

async fn status(Path(code): Path<u16>) -> (StatusCode, String) {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (status, format!("status {code}"))
}

async fn slow(Query(query): Query<SlowQuery>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(query.ms.unwrap_or(1000).min(600_000))).await;
    "slow ok"
}

async fn requests(State(log): State<Log>) -> axum::Json<Vec<Received>> {
    axum::Json(log.lock().entries.clone())
}
