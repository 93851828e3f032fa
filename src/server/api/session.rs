//! The server's half of the worker handshake, and the check of every other RPC call.
//!
//! `POST /rpc/v1/hello` answers a worker's challenge with this server's proof that it holds the
//! cluster token (see `crate::handshake`) and a challenge of its own; `POST /rpc/v1/session`
//! checks the worker's proof against that challenge and issues a session. Every other RPC call
//! must carry `Authorization: Shoal-Session <id>` naming a live session; the call is then bound to
//! the session's worker. Pending challenges and sessions are both bounded in number and time, so
//! neither a flood of hellos nor a worker re-handshaking in a loop grows memory without end.
//!
//! With no token configured (loopback development) the handshake is refused with a reason and
//! every RPC call passes, as before. This module must never accept the token itself as an RPC
//! credential, and never send or log it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{Tokens, credentials_of};
use super::error::ApiError;
use super::json::JsonBody;
use crate::handshake::{Nonce, Proof, ServerClaim, WorkerClaim};
use crate::wire::{HelloRequest, HelloResponse, SESSION_SCHEME, SessionRequest, SessionResponse};

/// Challenges awaiting the worker's proof. A worker answers within one round trip; the bound only
/// keeps unanswered hellos from piling up.
const MAX_PENDING: usize = 1024;
const PENDING_TTL: Duration = Duration::from_secs(30);
/// Live sessions: far more than workers a server serves, so only a runaway client is refused.
const MAX_SESSIONS: usize = 4096;
/// A worker polls at least every `MAX_POLL_WAIT` (20 s), so a session idle this long is gone.
pub const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The worker a call's session belongs to; handlers refuse a body that names another.
#[derive(Debug, Clone)]
pub struct SessionWorker(pub String);

/// Handshake state shared by the RPC routes.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    /// The secrets a worker may hold (worker tokens and `--token`): rotation keeps two.
    secrets: Vec<Box<str>>,
    /// No token at all is configured: the RPC is open (loopback development).
    open: bool,
    cluster: String,
    server_id: String,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    /// By the server nonce issued in the hello.
    pending: HashMap<String, Pending>,
    /// By session id.
    sessions: HashMap<String, Session>,
}

struct Pending {
    worker: String,
    worker_nonce: Nonce,
    server_nonce: Nonce,
    issued: Instant,
}

struct Session {
    worker: String,
    last_used: Instant,
}

impl Sessions {
    pub fn new(tokens: &Tokens, cluster: &str, server_id: &str) -> Sessions {
        Sessions {
            inner: Arc::new(Inner {
                secrets: tokens
                    .worker_secrets()
                    .into_iter()
                    .map(Into::into)
                    .collect(),
                open: !tokens.is_set(),
                cluster: cluster.to_string(),
                server_id: server_id.to_string(),
                book: Mutex::new(Book::default()),
            }),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic while holding the lock leaves plain maps behind, still usable.
        self.inner
            .book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The worker secrets, or the reason this server cannot take part in a handshake.
    fn secrets(&self) -> Result<&[Box<str>], ApiError> {
        if self.inner.secrets.is_empty() {
            return Err(ApiError::Conflict(
                "this server has no --token (nor --token-worker), so it cannot prove it holds \
                 the cluster token: start it with the cluster's --token (SHOAL_TOKEN), or start \
                 the worker without one (loopback development only)"
                    .into(),
            ));
        }
        Ok(&self.inner.secrets)
    }

    /// The worker a session id belongs to, refreshing its idle timer.
    fn worker_of(&self, session: &str) -> Option<String> {
        let mut book = self.book();
        let now = Instant::now();
        let live = book
            .sessions
            .get(session)
            .is_some_and(|s| now.duration_since(s.last_used) < SESSION_IDLE_TIMEOUT);
        if !live {
            book.sessions.remove(session);
            return None;
        }
        let entry = book.sessions.get_mut(session)?;
        entry.last_used = now;
        Some(entry.worker.clone())
    }
}

/// `POST /rpc/v1/hello`.
pub async fn hello(
    State(sessions): State<Sessions>,
    JsonBody(request): JsonBody<HelloRequest>,
) -> Result<Json<HelloResponse>, ApiError> {
    let secrets = sessions.secrets()?;
    if request.worker.is_empty() {
        return Err(ApiError::invalid("worker", "missing worker id"));
    }
    let worker_nonce =
        Nonce::from_hex(&request.worker_nonce).map_err(|e| ApiError::invalid("worker_nonce", e))?;
    let server_nonce = Nonce::fresh();
    let claim = ServerClaim {
        cluster: &sessions.inner.cluster,
        server_id: &sessions.inner.server_id,
        worker_nonce: &worker_nonce,
        server_nonce: &server_nonce,
    };
    // One proof per worker secret: the worker checks them against its own, so during a
    // rotation workers holding the old or the new token both find theirs.
    let mut proofs = secrets.iter().map(|secret| claim.prove(secret).to_hex());
    let server_proof = proofs.next().unwrap_or_default();
    let other_proofs = proofs.collect();
    let key = server_nonce.to_hex();
    let mut book = sessions.book();
    let now = Instant::now();
    book.pending
        .retain(|_, p| now.duration_since(p.issued) < PENDING_TTL);
    if book.pending.len() >= MAX_PENDING {
        evict_oldest(&mut book.pending, |p| p.issued);
    }
    book.pending.insert(
        key.clone(),
        Pending {
            worker: request.worker,
            worker_nonce,
            server_nonce,
            issued: now,
        },
    );
    Ok(Json(HelloResponse {
        server: sessions.inner.server_id.clone(),
        server_nonce: key,
        server_proof,
        other_proofs,
    }))
}

/// `POST /rpc/v1/session`.
pub async fn open(
    State(sessions): State<Sessions>,
    JsonBody(request): JsonBody<SessionRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    let secrets = sessions.secrets()?;
    let worker_nonce =
        Nonce::from_hex(&request.worker_nonce).map_err(|e| ApiError::invalid("worker_nonce", e))?;
    Nonce::from_hex(&request.server_nonce).map_err(|e| ApiError::invalid("server_nonce", e))?;
    let proof =
        Proof::from_hex(&request.worker_proof).map_err(|e| ApiError::invalid("worker_proof", e))?;
    // A challenge is answered once: taken out whether the proof holds or not.
    let pending = sessions.book().pending.remove(&request.server_nonce);
    let Some(pending) = pending.filter(|p| p.issued.elapsed() < PENDING_TTL) else {
        return Err(ApiError::invalid(
            "server_nonce",
            "no such challenge (expired, already answered, or from before a restart): start \
             again at /rpc/v1/hello",
        ));
    };
    let claim = WorkerClaim {
        cluster: &sessions.inner.cluster,
        worker_id: &pending.worker,
        server_nonce: &pending.server_nonce,
        worker_nonce: &pending.worker_nonce,
    };
    if pending.worker != request.worker
        || pending.worker_nonce != worker_nonce
        || !secrets.iter().any(|secret| claim.verify(secret, &proof))
    {
        tracing::warn!(worker = %request.worker,
            "a worker's handshake proof was wrong: it holds another --token");
        return Err(ApiError::Unauthorized);
    }
    let session = Nonce::fresh().to_hex();
    let mut book = sessions.book();
    let now = Instant::now();
    book.sessions
        .retain(|_, s| now.duration_since(s.last_used) < SESSION_IDLE_TIMEOUT);
    if book.sessions.len() >= MAX_SESSIONS {
        evict_oldest(&mut book.sessions, |s| s.last_used);
    }
    book.sessions.insert(
        session.clone(),
        Session {
            worker: pending.worker,
            last_used: now,
        },
    );
    Ok(Json(SessionResponse {
        session,
        idle_timeout_ms: SESSION_IDLE_TIMEOUT.as_millis() as u64,
    }))
}

fn evict_oldest<V>(map: &mut HashMap<String, V>, age: impl Fn(&V) -> Instant) {
    if let Some(oldest) = map
        .iter()
        .min_by_key(|(_, v)| age(v))
        .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
}

/// Middleware of the RPC routes (but the handshake's): a live session, or 401. Without a token
/// every call passes.
pub async fn require_session(
    State(sessions): State<Sessions>,
    mut request: Request,
    next: Next,
) -> Response {
    if sessions.inner.open {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|header| credentials_of(header, SESSION_SCHEME))
        .map(str::to_string);
    let Some(presented) = presented else {
        return ApiError::Unauthorized.into_response();
    };
    // The map is keyed by a hash with a per-process random key, so the time a lookup takes says
    // nothing about how close a guessed id came.
    match sessions.worker_of(&presented) {
        Some(worker) => {
            request.extensions_mut().insert(SessionWorker(worker));
            next.run(request).await
        }
        None => ApiError::UnknownSession.into_response(),
    }
}

/// Refuses a call whose body names another worker than its session's.
pub fn check_worker(session: Option<&SessionWorker>, named: &str) -> Result<(), ApiError> {
    match session {
        Some(SessionWorker(worker)) if worker != named => Err(ApiError::invalid(
            "worker",
            format!("this session belongs to worker {worker:?}, not {named:?}"),
        )),
        _ => Ok(()),
    }
}
