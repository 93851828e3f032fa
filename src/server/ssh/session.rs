//! One SSH connection: who it is (public-key auth against the key files), and its one session
//! channel — the console (a shell request, with a pty) or a command (an exec request).
//!
//! Every login, refusal and action is logged with the key's fingerprint and comment. Anything
//! else a client may ask (port forwarding, agent, X11, subsystems such as sftp, a second
//! channel) is refused: russh refuses what a handler does not implement, and this one
//! implements only the above.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError};

use russh::keys::PublicKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};

use super::console::{self, SessionInput};
use super::keys::{Operator, fingerprint};
use super::{Shared, exec};

/// The russh handler of one connection.
pub(crate) struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    operator: Option<Operator>,
    channel: Option<ChannelId>,
    /// The terminal size of the pty request, until the console starts.
    pty: Option<(u16, u16)>,
    /// Input of the running console.
    console: Option<SyncSender<SessionInput>>,
}

/// Input messages a console may have queued before it drops the rest (a paste flood).
pub(crate) const INPUT_QUEUE: usize = 256;

impl Connection {
    pub fn new(shared: Arc<Shared>, peer: SocketAddr) -> Connection {
        Connection {
            shared,
            peer,
            operator: None,
            channel: None,
            pty: None,
            console: None,
        }
    }

    /// The operator `key` speaks for, logging a refusal (or an unreadable keys file).
    fn operator(&self, user: &str, key: &PublicKey) -> Option<Operator> {
        match self.shared.keys.find(key, user) {
            Ok(Some(operator)) => Some(operator),
            Ok(None) => {
                tracing::warn!(
                    peer = %self.peer,
                    user,
                    key = %fingerprint(key),
                    "SSH login refused: the key is in neither --ssh-authorized-keys nor \
                     --ssh-readonly-keys"
                );
                None
            }
            Err(error) => {
                tracing::error!(peer = %self.peer, user, key = %fingerprint(key),
                    "SSH login refused: cannot read the keys files: {error:#}");
                None
            }
        }
    }

    fn send(&self, input: SessionInput) {
        if let Some(console) = &self.console {
            match console.try_send(input) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    tracing::debug!(peer = %self.peer, "SSH console input queue full; dropped")
                }
            }
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // Spares the client a signature for a key that would be refused anyway.
        Ok(match self.operator(user, offer.public_key) {
            Some(_) => Auth::Accept,
            None => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let Some(operator) = self.operator(user, key.public_key) else {
            return Ok(Auth::reject());
        };
        tracing::info!(
            peer = %self.peer,
            user,
            key = %operator.fingerprint,
            comment = %operator.comment,
            access = %operator.access,
            "SSH login"
        );
        self.operator = Some(operator);
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channel.is_some() || self.operator.is_none() {
            // One session per connection: sessions are bounded by connections.
            return Ok(()); // dropping `reply` refuses the channel
        }
        self.channel = Some(channel.id());
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pty = Some(console::clamp_size(cols, rows));
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(operator), true) = (self.operator.clone(), self.channel == Some(channel)) else {
            return session.channel_failure(channel);
        };
        if self.console.is_some() {
            return session.channel_failure(channel);
        }
        session.channel_success(channel)?;
        let Some(size) = self.pty else {
            exec::refuse(
                session.handle(),
                channel,
                "the console needs a terminal: log in with `ssh -t`, or give a command, e.g. \
                 `ssh … instance list --output json`",
            );
            return Ok(());
        };
        tracing::info!(peer = %self.peer, key = %operator.fingerprint,
            comment = %operator.comment, access = %operator.access, "SSH console opened");
        let (sender, receiver) = std::sync::mpsc::sync_channel(INPUT_QUEUE);
        self.console = Some(sender);
        console::start(console::ConsoleSession {
            shared: self.shared.clone(),
            operator,
            peer: self.peer,
            handle: session.handle(),
            channel,
            size,
            input: receiver,
        });
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(operator), true) = (self.operator.clone(), self.channel == Some(channel)) else {
            return session.channel_failure(channel);
        };
        if self.console.is_some() {
            return session.channel_failure(channel);
        }
        session.channel_success(channel)?;
        let line = String::from_utf8_lossy(data).into_owned();
        exec::start(
            self.shared.clone(),
            operator,
            self.peer,
            session.handle(),
            channel,
            line,
        );
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (width, height) = console::clamp_size(cols, rows);
        self.pty = Some((width, height));
        self.send(SessionInput::Resize { width, height });
        session.channel_success(channel)
    }

    async fn data(
        &mut self,
        _channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.send(SessionInput::Bytes(data.to_vec()));
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The operator's side closed its input: the console ends with it.
        self.console = None;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.console = None;
        Ok(())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        match &self.operator {
            Some(operator) => tracing::info!(
                peer = %self.peer,
                key = %operator.fingerprint,
                comment = %operator.comment,
                "SSH session closed"
            ),
            None => tracing::info!(peer = %self.peer, "SSH connection closed without a login"),
        }
    }
}
