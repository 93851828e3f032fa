//! Serving the API router on its TCP listener, with bounds that keep a flood of idle or half-sent
//! connections from starving the workers and the operators.
//!
//! - Every connection must send its request head within `header_timeout`, and a keep-alive
//!   connection idle that long after a response is closed (hyper's header-read timer covers both).
//! - At most `max_connections` are open at once (never more than the open-file limit allows, less
//!   a reserve for the store, gossip and logs), so `accept` never runs the process out of files.
//! - At most `max_pending` of them may be *pending* (open, but no complete request head yet). When
//!   one more arrives, the oldest pending connection — the one that has had the longest to speak
//!   — is closed to make room. A real client sends its head at once, so a flood of silent
//!   connections churns among itself while workers and `/healthz` get through.
//! - Admin requests (`/api/v1`) in flight are bounded by `max_admin_requests` (`admin_gate`), so
//!   slow or numerous admin calls cannot take the connections and threads the worker RPC needs.
//! - With TLS (`--tls-cert`), a connection's first byte says what it speaks: a TLS record is
//!   handshaken in the connection's own task, within `header_timeout`, while it counts as
//!   pending (so half-open handshakes are bounded like silent connections and never hold up
//!   `accept`); anything else is a plain-HTTP client, answered 400 with the `https://` URL.
//!
//! This module owns connections only: it must never look into requests beyond marking the first
//! one seen, and never decide what a route does. The open-file limit the bounds are computed from is raised
//! at start-up by `node::raise_open_file_limit`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::uri::Authority;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::service::HttpService;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio_rustls::TlsAcceptor;

use crate::server::api::ApiError;
use crate::shutdown::Shutdown;
use crate::tls::HTTPS_REQUIRED_HEADER;

/// File descriptors kept back from connections: the store, gossip, logs, the runtime's own.
const FD_RESERVE: u64 = 128;
/// How long a stopping server lets open connections finish their request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long an admin request waits for a slot before it is answered 503.
const ADMIN_QUEUE_WAIT: Duration = Duration::from_secs(5);

/// The bounds on the API's connections; see the module doc for what each protects.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_pending: usize,
    pub header_timeout: Duration,
    pub max_admin_requests: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            max_pending: 256,
            header_timeout: Duration::from_secs(10),
            max_admin_requests: 64,
        }
    }
}

impl ConnectionLimits {
    /// Refuses limits that would leave the API unable to serve anyone, naming the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_connections < 2 {
            anyhow::bail!("--max-connections must be at least 2 (4096 is a good default)");
        }
        if self.max_pending == 0 || self.max_pending >= self.max_connections {
            anyhow::bail!(
                "--max-pending-connections must be at least 1 and below --max-connections ({}), \
                 so that clients who sent a request always have room",
                self.max_connections
            );
        }
        if self.header_timeout < Duration::from_millis(100) {
            anyhow::bail!("--header-timeout must be at least 100ms (10s is a good default)");
        }
        if self.max_admin_requests == 0 {
            anyhow::bail!("--max-admin-requests must be at least 1 (64 is a good default)");
        }
        Ok(())
    }

    /// These limits, lowered to what the open-file limit allows.
    fn within_open_files(&self) -> ConnectionLimits {
        let mut limits = self.clone();
        if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
            let room = soft.saturating_sub(FD_RESERVE).max(2) as usize;
            if room < limits.max_connections {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    open_file_limit = soft,
                    lowered_to = room,
                    "--max-connections is above what the open-file limit allows; lowered"
                );
                limits.max_connections = room;
            }
        }
        limits.max_pending = limits.max_pending.min(limits.max_connections / 2).max(1);
        limits
    }
}

/// Connections that have not yet sent a request head, oldest first, each with the means to
/// close it.
#[derive(Default)]
struct Pending {
    next_id: u64,
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish (bounded).
/// With `tls`, every connection must open with a TLS handshake; a plain-HTTP request is answered
/// 400 with the `https://` URL to use.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    let limits = limits.within_open_files();
    tracing::info!(
        tls = tls.is_some(),
        max_connections = limits.max_connections,
        max_pending = limits.max_pending,
        header_timeout = ?limits.header_timeout,
        max_admin_requests = limits.max_admin_requests,
        "API connection limits"
    );
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let pending = Arc::new(Mutex::new(Pending::default()));
    let service = TowerToHyperService::new(router);
    loop {
        // A slot first, then accept: past the limit, new connections wait in the kernel's
        // backlog instead of costing a file each.
        let slot = tokio::select! {
            _ = shutdown.wait() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of files, or a connection reset before it was accepted: neither ends
                    // the server. Pause briefly so a persistent error cannot spin.
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let (id, evicted) = register_pending(&pending, limits.max_pending);
        let seen_request = Arc::new(AtomicBool::new(false));
        let on_first_request = {
            let pending = pending.clone();
            let seen_request = seen_request.clone();
            move || {
                if !seen_request.swap(true, Ordering::Relaxed) {
                    lock(&pending).waiting.remove(&id);
                }
            }
        };
        let inner = service.clone();
        let hyper_service = hyper::service::service_fn(move |request| {
            on_first_request();
            hyper::service::Service::call(&inner, request)
        });
        let connection = Accepted {
            stream,
            tls: tls.clone(),
            bounds: Bounds {
                header_timeout: limits.header_timeout,
                evicted,
                shutdown: shutdown.clone(),
            },
        };
        let pending = pending.clone();
        tokio::spawn(async move {
            connection.serve(hyper_service).await;
            lock(&pending).waiting.remove(&id);
            drop(slot);
        });
    }
    // Every open connection holds a slot: all slots back means all connections closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("API connections still open after the shutdown grace period; closing them");
    }
    Ok(())
}

/// An accepted connection, served in its own task: its TLS handshake (if any) and its requests,
/// until it ends, it is evicted while still pending, or the server stops.
struct Accepted {
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    bounds: Bounds,
}

/// What ends a connection early.
struct Bounds {
    header_timeout: Duration,
    /// Sent when the pending bound closes this connection to make room.
    evicted: oneshot::Receiver<()>,
    shutdown: Shutdown,
}

/// What a connection to the TLS port turned out to be.
enum Opened {
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// A plain-HTTP client on the TLS port: it gets the `https://` URL to use.
    PlainHttp(TcpStream),
}

impl Accepted {
    async fn serve<S>(self, service: S)
    where
        S: HttpService<Incoming, ResBody = axum::body::Body>,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Accepted {
            stream,
            tls,
            mut bounds,
        } = self;
        let Some(acceptor) = tls else {
            return bounds.drive(TokioIo::new(stream), service).await;
        };
        // The handshake happens here, in the connection's own task, within the header timeout
        // and while the connection still counts as pending: a flood of half-open handshakes
        // churns among itself like a flood of silent connections, and accept never waits on it.
        let opening = tokio::time::timeout(bounds.header_timeout, open(stream, acceptor));
        let opened = tokio::select! {
            opened = opening => opened,
            Ok(()) = &mut bounds.evicted => return,
            _ = bounds.shutdown.wait() => return,
        };
        match opened {
            Ok(Ok(Opened::Tls(stream))) => bounds.drive(TokioIo::new(stream), service).await,
            Ok(Ok(Opened::PlainHttp(stream))) => {
                let local = stream.local_addr().ok();
                let refusal = hyper::service::service_fn(move |request: Request<Incoming>| {
                    std::future::ready(Ok::<_, std::convert::Infallible>(https_required(
                        &request, local,
                    )))
                });
                bounds.drive(TokioIo::new(stream), refusal).await
            }
            Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
            Err(_) => tracing::debug!("TLS handshake not done within the header timeout"),
        }
    }
}

impl Bounds {
    /// Serves HTTP/1 on `io` until it ends, is evicted while pending, or the server stops.
    async fn drive<I, S>(mut self, io: I, service: S)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin,
        S: HttpService<Incoming, ResBody = axum::body::Body>,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .serve_connection(io, service);
        tokio::pin!(connection);
        tokio::select! {
            _ = &mut connection => {}
            // Only a send means "close": the sender is also dropped, unsent, once the
            // connection's first request arrives.
            Ok(()) = &mut self.evicted => {}
            _ = self.shutdown.wait() => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    }
}

/// Peeks at the first byte: a TLS record is handshaken, anything else is plain HTTP.
async fn open(stream: TcpStream, acceptor: TlsAcceptor) -> std::io::Result<Opened> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    if !crate::tls::starts_tls(first[0]) {
        return Ok(Opened::PlainHttp(stream));
    }
    Ok(Opened::Tls(Box::new(acceptor.accept(stream).await?)))
}

/// The answer to a plain-HTTP request on the TLS port: 400, with the URL to use in the body
/// and in [`HTTPS_REQUIRED_HEADER`], and the connection closed.
fn https_required(request: &Request<Incoming>, local: Option<SocketAddr>) -> Response {
    let authority = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| host.parse::<Authority>().ok())
        .map(|host| {
            // The host the client named, with the port it connected to when it named none.
            match host.port_u16().or(local.map(|local| local.port())) {
                Some(port) => format!("{}:{port}", host.host()),
                None => host.host().to_string(),
            }
        })
        .or_else(|| local.map(|local| local.to_string()))
        .unwrap_or_else(|| "HOST:PORT".to_string());
    let url = format!("https://{authority}");
    let mut response = (
        StatusCode::BAD_REQUEST,
        format!("this server speaks HTTPS: use {url}\n"),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONNECTION,
        HeaderValue::from_static("close"),
    );
    if let Ok(value) = HeaderValue::from_str(&url) {
        headers.insert(HTTPS_REQUIRED_HEADER, value);
    }
    response
}

/// Records a new pending connection; past the bound, closes the oldest pending one.
fn register_pending(pending: &Mutex<Pending>, max_pending: usize) -> (u64, oneshot::Receiver<()>) {
    let (close, evicted) = oneshot::channel();
    let mut pending = lock(pending);
    let id = pending.next_id;
    pending.next_id += 1;
    pending.waiting.insert(id, close);
    while pending.waiting.len() > max_pending {
        if let Some((_, close)) = pending.waiting.pop_first() {
            let _ = close.send(());
        }
    }
    (id, evicted)
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    // The map stays consistent under a panic elsewhere: every change is one insert or remove.
    pending
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The bound on admin requests in flight, shared by every admin route.
#[derive(Clone)]
pub struct AdminGate {
    slots: Arc<Semaphore>,
    limit: usize,
}

impl AdminGate {
    pub fn new(limits: &ConnectionLimits) -> AdminGate {
        AdminGate {
            slots: Arc::new(Semaphore::new(limits.max_admin_requests)),
            limit: limits.max_admin_requests,
        }
    }
}

/// Middleware of the whole router that counts only `/api/` requests: at most
/// `max_admin_requests` in flight; one that finds no slot within a few seconds is answered 503,
/// so admin load never holds what the worker RPC and `/healthz` need.
pub async fn admin_gate(
    axum::extract::State(gate): axum::extract::State<AdminGate>,
    request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    match tokio::time::timeout(ADMIN_QUEUE_WAIT, gate.slots.acquire()).await {
        Ok(Ok(_slot)) => next.run(request).await,
        _ => ApiError::Busy(format!(
            "the admin API has {} requests in flight, its limit (--max-admin-requests); try \
             again shortly",
            gate.limit
        ))
        .into_response(),
    }
}
