//! The console over SSH: `ssh -p 2222 ops@scheduler` gives the ops console, with nothing
//! installed on the operator's machine and keys as the only credential.
//!
//! ```text
//!  TCP ─▶ accept (bounded: --ssh-max-sessions) ─▶ russh connection ─▶ session::Connection
//!                                                   │ public-key auth against keys::KeyFiles
//!                      shell + pty ─────────────────┼─▶ console::run (own App, own thread)
//!                      exec "instance list …" ──────┴─▶ exec::run (the CLI, as a child process)
//! ```
//!
//! Each login gets its own console (the `shoal-tui` app, state and keys of `shoal tui`) fed by an
//! [`ApiClient`](crate::client::ApiClient) pointed at this server's own API with its token, so an
//! SSH operator sees and does exactly what an API client may. A connection holds one session
//! (console or command); when it ends, its thread, its permit and its data go with it.
//!
//! Russh serves the protocol (it is the maintained pure-Rust SSH server, used by Warpgate and
//! others; see LIBRARY-NOTES); this module owns the listener, its bounds and the shutdown. It must
//! never touch the store or the engine: everything an SSH operator does goes through the API.

mod console;
mod exec;
pub mod input;
pub mod keys;
mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use russh::{MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::ApiClient;
use crate::shutdown::Shutdown;
use crate::tls::ServerTls;
pub use keys::{Access, KeyFiles, Operator};

/// How the SSH console is served.
#[derive(Debug, Clone)]
pub struct SshConfig {
    pub listen: SocketAddr,
    pub keys: KeyFiles,
    /// Connections served at once; past it, new ones are closed at once (and logged).
    pub max_sessions: usize,
    /// A session that receives nothing from its operator for this long is closed.
    pub idle_timeout: Duration,
}

impl SshConfig {
    pub const DEFAULT_MAX_SESSIONS: usize = 32;
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

    /// Refuses settings that would serve nobody, naming the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_sessions == 0 {
            anyhow::bail!("--ssh-max-sessions must be at least 1 (32 is a good default)");
        }
        if self.idle_timeout < Duration::from_secs(1) {
            anyhow::bail!("--ssh-idle-timeout must be at least 1s (15m is a good default)");
        }
        Ok(())
    }
}

/// How long a stopping server lets consoles close themselves before it disconnects them.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How long a new connection may take to say it speaks SSH.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection shares.
pub(crate) struct Shared {
    pub keys: KeyFiles,
    /// The server's own API, with its token.
    pub api: ApiClient,
    pub api_url: String,
    pub token: Option<String>,
    /// With TLS, the server's certificate file: client commands run as child processes pin its
    /// certificate from there (`SHOAL_PIN_CERT`), as the in-process console does.
    pub pin_cert: Option<PathBuf>,
    pub idle_timeout: Duration,
    /// Consoles watch it to say goodbye and close their channel when the server stops.
    pub shutdown: Shutdown,
}

/// The server's own API, as the SSH console reaches it.
#[derive(Debug, Clone)]
pub struct OwnApi {
    pub addr: SocketAddr,
    /// Its TLS, when served over TLS: the console pins the server's own certificate, since it
    /// connects over loopback, an address the certificate need not name.
    pub tls: Option<ServerTls>,
}

/// A started SSH listener.
pub struct SshServer {
    addr: SocketAddr,
    host_fingerprint: String,
    task: tokio::task::JoinHandle<()>,
}

impl SshServer {
    /// Checks the key files, loads (or makes) the host key, binds `config.listen`, and serves
    /// until `shutdown`. `api` and `token` are the server's own API.
    pub async fn start(
        config: SshConfig,
        data_dir: PathBuf,
        api: OwnApi,
        token: Option<String>,
        shutdown: Shutdown,
    ) -> anyhow::Result<SshServer> {
        config.validate()?;
        let (full, readonly) = config.keys.check()?;
        let host_key = keys::host_key(&data_dir)?;
        let host_fingerprint = keys::fingerprint(host_key.public_key());
        let scheme = if api.tls.is_some() { "https" } else { "http" };
        let api_url = format!("{scheme}://{}", crate::net::reachable(api.addr));
        let client_tls = api
            .tls
            .as_ref()
            .map(ServerTls::own_certificate)
            .unwrap_or_default();
        let pin_cert = api.tls.as_ref().map(|tls| tls.cert_file().to_path_buf());
        let api = ApiClient::new(&api_url, token.clone(), &client_tls)?;
        let listener = TcpListener::bind(config.listen).await.with_context(|| {
            format!(
                "cannot listen on --ssh {}: is something else (sshd?) using it? Pick another \
                 address, e.g. --ssh 0.0.0.0:2222",
                config.listen
            )
        })?;
        let addr = listener.local_addr()?;
        let russh_config = Arc::new(russh::server::Config {
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            keys: vec![host_key],
            // A refusal costs a client a second, whatever the key: guessing is slow and says
            // nothing about which keys exist.
            auth_rejection_time: Duration::from_secs(1),
            auth_rejection_time_initial: Some(Duration::ZERO),
            // A peer that vanished without closing (laptop lid, lost network) is found by
            // keepalives; one that stays silent is closed after the idle timeout.
            inactivity_timeout: Some(config.idle_timeout),
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        });
        tracing::info!(
            ssh = %addr,
            host_key = %host_fingerprint,
            full_access_keys = full,
            readonly_keys = readonly,
            max_sessions = config.max_sessions,
            "SSH console listening; operators log in with: ssh -p {} USER@HOST",
            addr.port()
        );
        let shared = Arc::new(Shared {
            keys: config.keys.clone(),
            api,
            api_url,
            token,
            pin_cert,
            idle_timeout: config.idle_timeout,
            shutdown: shutdown.clone(),
        });
        let task = tokio::spawn(accept_loop(
            listener,
            russh_config,
            shared,
            config.max_sessions,
            shutdown,
        ));
        Ok(SshServer {
            addr,
            host_fingerprint,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `SHA256:…` of the host key, as clients show it.
    pub fn host_fingerprint(&self) -> &str {
        &self.host_fingerprint
    }

    /// Waits for the listener and its sessions to close (after the shutdown was triggered).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<russh::server::Config>,
    shared: Arc<Shared>,
    max_sessions: usize,
    mut shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(max_sessions));
    let mut sessions = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => break,
            // Reap finished sessions as they end, so the set holds only live ones.
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "SSH accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_sessions,
                "SSH connection refused: --ssh-max-sessions sessions are open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = session::Connection::new(shared.clone(), peer);
        let config = config.clone();
        let mut shutdown = shutdown.clone();
        sessions.spawn(async move {
            let running = match tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                russh::server::run_stream(config, stream, connection),
            )
            .await
            {
                Ok(Ok(running)) => running,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "SSH handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "SSH handshake timed out");
                    return;
                }
            };
            let handle = running.handle();
            tokio::pin!(running);
            tokio::select! {
                result = &mut running => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "SSH connection ended with an error");
                    }
                }
                _ = shutdown.wait() => {
                    // A console closes itself on shutdown (leaving the operator's terminal as
                    // it found it); give it a moment, then cut whatever is left.
                    if tokio::time::timeout(STOP_GRACE, &mut running).await.is_ok() {
                        return;
                    }
                    let _ = handle
                        .disconnect(
                            russh::Disconnect::ByApplication,
                            "the Shoal server is stopping".into(),
                            "en".into(),
                        )
                        .await;
                }
            }
            drop(permit);
        });
    }
    // Stopping: every session was told to disconnect; give them a moment, then drop the rest.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    sessions.shutdown().await;
}
