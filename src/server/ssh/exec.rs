//! `ssh -p 2222 ops@host instance list --state failed --output json`: a client command run for an
//! SSH `exec` request, its output sent back on the channel.
//!
//! The command line is checked by the CLI's own parser ([`crate::cli::remote`]); a read-only key
//! may run only reading commands. It then runs as this very binary in a child process, with the
//! server's own API and token (`SHOAL_SERVER`, `SHOAL_TOKEN`, and with TLS `SHOAL_PIN_CERT`, the
//! server's certificate file to trust exactly): the output, the errors and the
//! exit status are exactly those of `shoal` on a shell, with no second implementation of any
//! command. The child has no input (a question such as backfill's "create …? [y/N]" reads "no")
//! and is killed if the client goes away or it runs past [`COMMAND_TIMEOUT`].
//!
//! This module must never run anything but a checked client command.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use russh::ChannelId;
use russh::server::Handle;

use super::Shared;
use super::keys::{Access, Operator};
use crate::cli::remote::{self, READING_COMMANDS, RemoteCommand};

/// The longest a command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Exit status of a command that was refused or could not run (as a shell's "cannot execute").
const REFUSED: u32 = 2;

/// Runs `line` for `operator` in the background and closes the channel when it is done.
pub(crate) fn start(
    shared: Arc<Shared>,
    operator: Operator,
    peer: SocketAddr,
    handle: Handle,
    channel: ChannelId,
    line: String,
) {
    tokio::spawn(async move {
        let (stdout, stderr, status) = run(&shared, &operator, peer, &line).await;
        finish(&handle, channel, stdout, stderr, status).await;
    });
}

/// Says `why` on the channel's stderr and closes it with a failure status.
pub(crate) fn refuse(handle: Handle, channel: ChannelId, why: &str) {
    let message = format!("shoal: {why}\r\n").into_bytes();
    tokio::spawn(async move {
        finish(&handle, channel, Vec::new(), message, REFUSED).await;
    });
}

async fn finish(
    handle: &Handle,
    channel: ChannelId,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: u32,
) {
    if !stdout.is_empty() {
        let _ = handle.data(channel, stdout).await;
    }
    if !stderr.is_empty() {
        let _ = handle.extended_data(channel, 1, stderr).await;
    }
    let _ = handle.exit_status_request(channel, status).await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

/// Checks and runs `line`: (stdout, stderr, exit status).
async fn run(
    shared: &Shared,
    operator: &Operator,
    peer: SocketAddr,
    line: &str,
) -> (Vec<u8>, Vec<u8>, u32) {
    let refused = |why: String| {
        tracing::warn!(%peer, key = %operator.fingerprint, comment = %operator.comment,
            command = line, "SSH command refused: {why}");
        (Vec::new(), format!("shoal: {why}\n").into_bytes(), REFUSED)
    };
    let args = match remote::parse(line) {
        Ok(RemoteCommand::Print(text)) => return (text.into_bytes(), Vec::new(), 0),
        Ok(RemoteCommand::Run { reads_only, .. })
            if !reads_only && operator.access == Access::ReadOnly =>
        {
            return refused(format!(
                "this key is read-only and `{line}` changes the cluster; a read-only key may \
                 run: {READING_COMMANDS}"
            ));
        }
        Ok(RemoteCommand::Run { args, .. }) => args,
        Err(refusal) => return refused(refusal.0),
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return refused(format!("cannot find the shoal binary to run: {error}")),
    };
    let mut command = tokio::process::Command::new(exe);
    command
        .args(&args)
        .env("SHOAL_SERVER", &shared.api_url)
        .env_remove("SHOAL_TOKEN")
        .env_remove("SHOAL_CA")
        .env_remove("SHOAL_PIN_CERT")
        .env_remove("SHOAL_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(token) = &shared.token {
        command.env("SHOAL_TOKEN", token);
    }
    if let Some(cert) = &shared.pin_cert {
        command.env("SHOAL_PIN_CERT", cert);
    }
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => return refused(format!("cannot run the command: {error}")),
        Err(_) => {
            return refused(format!(
                "the command did not finish within {}",
                crate::model::human_ms(COMMAND_TIMEOUT.as_millis() as u64)
            ));
        }
    };
    let status = output
        .status
        .code()
        .and_then(|code| u32::try_from(code).ok())
        .unwrap_or(1);
    tracing::info!(%peer, key = %operator.fingerprint, comment = %operator.comment,
        access = %operator.access, command = line, status, "SSH command");
    (output.stdout, output.stderr, status)
}
