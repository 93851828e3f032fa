//! TLS end to end, with a CA and a server certificate this test makes (rcgen, `src/test_pki.rs`):
//!
//! - a server with `--tls-cert`/`--tls-key` and a token; a worker with `--ca` runs an HTTP job on
//!   the real target; the CLI with `--ca` creates and lists; the console's data source loads a
//!   snapshot over https;
//! - refusals both ways: the CLI without the CA names the certificate; `http://` against the TLS
//!   port gets "this server speaks HTTPS: use https://…" (CLI and raw HTTP); `https://` against a
//!   plain server gets "answered in plain HTTP"; a worker with `--ca` refuses a server that
//!   gossip announces in plain HTTP and never contacts it;
//! - the pending-connection bound holds over TLS: silent and half-handshaken connections do not
//!   keep the API or the workers from being served;
//! - `shoal up` over TLS: its embedded workers and its SSH exec commands reach their own server.
//!
//! Everything on 127.0.0.1, every wait bounded by `eventually`.

mod common;

#[path = "../src/test_pki.rs"]
mod test_pki;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::Value;

const TOKEN: &str = "tls-test-token-6b1d0e9f";

/// The PKI's PEM files on disk.
struct Pem {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn write_pki(dir: &Path) -> Pem {
    let pki = test_pki::TestPki::new();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pem {
        ca: write("ca.pem", &pki.ca_pem),
        cert: write("server-cert.pem", &pki.server.cert_pem),
        key: write("server-key.pem", &pki.server.key_pem),
    }
}

/// A server process serving TLS, with its addresses.
struct TlsServer {
    node: Node,
    api: SocketAddr,
    gossip: SocketAddr,
    url: String,
}

impl TlsServer {
    fn start(dir: &Path, pem: &Pem, extra: &[&str]) -> TlsServer {
        let api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let gossip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let data = dir.join("data");
        let (api_text, gossip_text) = (api.to_string(), gossip.to_string());
        let mut args = vec![
            "server",
            "--data-dir",
            data.to_str().unwrap(),
            "--api",
            &api_text,
            "--gossip",
            &gossip_text,
            "--tls-cert",
            pem.cert.to_str().unwrap(),
            "--tls-key",
            pem.key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let node = Node::spawn_with_env("server", dir, &args, &[("SHOAL_TOKEN", TOKEN)]);
        let server = TlsServer {
            node,
            api,
            gossip,
            url: format!("https://{api}"),
        };
        eventually("the TLS server to answer", || {
            server.cli(pem, &["members"]).status.success().then_some(())
        });
        server
    }

    /// The CLI against this server, trusting the test CA.
    fn cli(&self, pem: &Pem, args: &[&str]) -> Output {
        let ca = pem.ca.to_str().unwrap();
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", &self.url, "--token", TOKEN, "--ca", ca]);
        cli(&all)
    }

    fn cli_json(&self, pem: &Pem, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--output", "json"]);
        let out = self.cli(pem, &all);
        assert!(
            out.status.success(),
            "shoal {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn succeeded(instances: &Value) -> usize {
    instances
        .as_array()
        .map(|list| list.iter().filter(|i| i["state"] == "succeeded").count())
        .unwrap_or(0)
}

#[test]
fn server_worker_cli_and_console_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pem = write_pki(dir.path());
    let target = TestTarget::start();
    let server = TlsServer::start(dir.path(), &pem, &[]);
    let log = server.node.log_text();
    assert!(log.contains(&format!("https://{}", server.api)), "{log}");

    let join = server.gossip.to_string();
    let ca = pem.ca.to_str().unwrap();
    let worker = Node::spawn_with_env(
        "worker",
        dir.path(),
        &["worker", "--join", &join, "--id", "w1", "--ca", ca],
        &[("SHOAL_TOKEN", TOKEN)],
    );
    // A worker trusting another CA refuses the server: its certificate proves nothing to it.
    let stranger_dir = dir.path().join("stranger");
    std::fs::create_dir(&stranger_dir).unwrap();
    let stranger = write_pki(&stranger_dir);
    let wrong_ca = Node::spawn_with_env(
        "wrong-ca",
        dir.path(),
        &[
            "worker",
            "--join",
            &join,
            "--id",
            "w2",
            "--ca",
            stranger.ca.to_str().unwrap(),
        ],
        &[("SHOAL_TOKEN", TOKEN)],
    );
    let url = target.url("/ok");
    server.cli_json(
        &pem,
        &[
            "job", "add", "--name", "tls-beat", "--every", "1s", "--url", &url, "--worker", "w1",
        ],
    );
    eventually("the job to run on the worker over TLS", || {
        let instances = server.cli_json(&pem, &["instance", "list", "--job", "tls-beat"]);
        (succeeded(&instances) >= 2 && target.target.received_count() >= 2).then_some(())
    });
    let worker_log = worker.log_text();
    assert!(
        worker_log.contains("server authenticated"),
        "the worker authenticated the server over https:\n{worker_log}"
    );
    let refusal = format!(
        "refused server server at https://{}: its TLS certificate is not trusted",
        server.api
    );
    eventually("the worker with another CA to refuse the server", || {
        wrong_ca.log_text().contains(&refusal).then_some(())
    });
    let wrong_log = wrong_ca.log_text();
    assert!(!wrong_log.contains("server authenticated"), "{wrong_log}");
    let jobs = server.cli_json(&pem, &["job", "list"]);
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .any(|j| j["name"] == "tls-beat"),
        "{jobs}"
    );
    let members = server.cli_json(&pem, &["members"]);
    let server_row = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "server")
        .expect("the server is a member");
    assert_eq!(server_row["addr"], format!("https://{}", server.api));

    // The console's data source, over https with the CA.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tls = shoal::tls::ClientTls::ca_file("--ca", &pem.ca).unwrap();
    let client = shoal::client::ApiClient::new(&server.url, Some(TOKEN.to_string()), &tls).unwrap();
    let mut source = shoal::client::console::ApiSource::new(client, runtime.handle().clone());
    let snapshot = shoal_tui::DataSource::refresh(&mut source).expect("a snapshot over https");
    assert_eq!(snapshot.server, server.url);
    assert!(snapshot.jobs.iter().any(|j| j.name == "tls-beat"));
    assert!(snapshot.workers.iter().any(|w| w.id == "w1"));
    assert!(!snapshot.instances.is_empty());

    // The trust of the server's own clients (its SSH console, `shoal up`'s workers): exactly
    // its certificate, pinned; any other certificate is refused.
    let members = |tls: &shoal::tls::ClientTls| {
        let client =
            shoal::client::ApiClient::new(&server.url, Some(TOKEN.to_string()), tls).unwrap();
        runtime.block_on(client.members())
    };
    let own = shoal::tls::ClientTls::pinned_file("pin", &pem.cert).unwrap();
    assert!(members(&own).is_ok());
    let other = shoal::tls::ClientTls::pinned_file("pin", &stranger.cert).unwrap();
    let error = members(&other).unwrap_err().to_string();
    assert!(error.contains("certificate is not trusted"), "{error}");

    // Without the CA, the CLI names the certificate and the fix.
    let out = cli(&["members", "--server", &server.url, "--token", TOKEN]);
    assert!(!out.status.success());
    let error = stderr(&out);
    assert!(
        error.contains("certificate is not trusted") && error.contains("--ca FILE"),
        "{error}"
    );

    // http:// against the TLS port: the CLI says to use https, and so does a raw request.
    let plain = format!("http://{}", server.api);
    let out = cli(&["members", "--server", &plain, "--token", TOKEN]);
    assert!(!out.status.success());
    let error = stderr(&out);
    assert!(
        error.contains("speaks HTTPS") && error.contains(&format!("--server {}", server.url)),
        "{error}"
    );
    let (status, body) = http(server.api, "GET", "/healthz", None).expect("a plain answer");
    assert_eq!(status, 400);
    assert_eq!(
        body.trim(),
        format!("this server speaks HTTPS: use https://{}", server.api)
    );
    // And a client given a CA will not send its token to an http:// URL at all.
    let out = cli(&["members", "--server", &plain, "--token", TOKEN, "--ca", ca]);
    let error = stderr(&out);
    assert!(
        !out.status.success() && error.contains("use https://"),
        "{error}"
    );
    // The API still serves after all of these.
    server.cli_json(&pem, &["members"]);
}

#[test]
fn https_against_a_plain_server_says_it_answered_in_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let https = format!("https://{}", server.api);
    let out = cli(&["members", "--server", &https]);
    assert!(!out.status.success());
    let error = stderr(&out);
    assert!(
        error.contains("answered in plain HTTP")
            && error.contains(&format!("use --server http://{}", server.api)),
        "{error}"
    );
}

#[test]
fn a_worker_with_a_ca_refuses_a_server_offering_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let pem = write_pki(dir.path());
    let target = TestTarget::start();
    let server = Server::start_with_token(dir.path(), TOKEN);
    let join = server.gossip.to_string();
    let worker = Node::spawn_with_env(
        "worker",
        dir.path(),
        &[
            "worker",
            "--join",
            &join,
            "--id",
            "w1",
            "--ca",
            pem.ca.to_str().unwrap(),
        ],
        &[("SHOAL_TOKEN", TOKEN)],
    );
    let refusal = format!(
        "refused server server at {}: it offers its API in plain HTTP",
        server.api
    );
    eventually("the worker to refuse the plain-HTTP server", || {
        worker.log_text().contains(&refusal).then_some(())
    });
    let url = target.url("/ok");
    let token_cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--token", TOKEN]);
        server.cli_json(&all)
    };
    token_cli(&[
        "job",
        "add",
        "--name",
        "plain",
        "--on-demand",
        "--url",
        &url,
    ]);
    token_cli(&["job", "run", "plain"]);
    // The worker is live in gossip and matches, but never polls: the server says so.
    let instances = eventually("the task to wait on the silent worker", || {
        let instances = token_cli(&["instance", "list", "--job", "plain"]);
        let silent = instances.as_array()?.first()?["why"]["silent"].clone();
        (silent == serde_json::json!(["w1"])).then_some(instances)
    });
    let reason = instances[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("a TLS mismatch"), "{reason}");
    assert_eq!(succeeded(&instances), 0, "{instances}");
    assert_eq!(target.target.received_count(), 0, "the task ran");
    let log = worker.log_text();
    assert_eq!(log.matches(&refusal).count(), 1, "logged once:\n{log}");
    assert!(
        !log.contains("server authenticated") && !log.contains("using server"),
        "{log}"
    );
}

/// Opens `count` connections that never finish a TLS handshake: half send nothing, half send
/// the start of a ClientHello.
fn half_open_handshakes(api: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let Ok(mut stream) = TcpStream::connect_timeout(&api, Duration::from_secs(5)) else {
            continue;
        };
        if i % 2 == 1 {
            // A handshake record header announcing 512 bytes, and 4 of them.
            let _ = stream.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]);
        }
        held.push(stream);
    }
    held
}

/// Whether the server still holds this connection open.
fn still_open(stream: &mut TcpStream) -> bool {
    use std::io::{ErrorKind, Read};
    let _ = stream.set_nonblocking(true);
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(error) => error.kind() == ErrorKind::WouldBlock,
    }
}

#[test]
fn half_open_handshakes_are_bounded_like_silent_connections() {
    let dir = tempfile::tempdir().unwrap();
    let pem = write_pki(dir.path());
    let target = TestTarget::start();
    // A handshake timeout far longer than the test: connections close only by the bound.
    let server = TlsServer::start(
        dir.path(),
        &pem,
        &[
            "--header-timeout",
            "600s",
            "--max-connections",
            "256",
            "--max-pending-connections",
            "16",
        ],
    );
    let join = server.gossip.to_string();
    let _worker = Node::spawn_with_env(
        "worker",
        dir.path(),
        &[
            "worker",
            "--join",
            &join,
            "--id",
            "w1",
            "--ca",
            pem.ca.to_str().unwrap(),
        ],
        &[("SHOAL_TOKEN", TOKEN)],
    );
    let url = target.url("/ok");
    server.cli_json(
        &pem,
        &[
            "job", "add", "--name", "beat", "--every", "1s", "--url", &url,
        ],
    );
    eventually("tasks to run before the flood", || {
        (target.target.received_count() >= 2).then_some(())
    });

    let mut flood = half_open_handshakes(server.api, 200);
    assert!(flood.len() > 150, "only {} opened", flood.len());
    let before = target.target.received_count();
    server.cli_json(&pem, &["members"]);
    eventually("tasks to keep running during the flood", || {
        (target.target.received_count() >= before + 3).then_some(())
    });
    server.cli_json(&pem, &["job", "list"]);
    let open = flood
        .iter_mut()
        .map(still_open)
        .filter(|open| *open)
        .count();
    println!(
        "TLS flood: {} half-open handshakes, {open} still held by the server while it served",
        flood.len()
    );
    assert!(open > 0, "the flood was over before the checks ran");
    assert!(
        open <= 16,
        "the server holds {open} unfinished handshakes, over --max-pending-connections (16)"
    );
    drop(flood);
    server.cli_json(&pem, &["members"]);
}

#[test]
fn shoal_up_over_tls_runs_its_workers_and_ssh_commands_against_itself() {
    let dir = tempfile::tempdir().unwrap();
    let pem = write_pki(dir.path());
    let target = TestTarget::start();
    let key = dir.path().join("ops");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ops@laptop", "-f"])
        .arg(&key)
        .output()
        .expect("run ssh-keygen (install openssh-client)");
    assert!(made.status.success(), "{made:?}");
    let ssh_port = free_tcp_port();
    let ssh_addr = format!("127.0.0.1:{ssh_port}");
    let authorized = key.with_extension("pub");
    let api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let gossip = format!("127.0.0.1:{}", free_udp_port());
    let data = dir.path().join("data");
    let server = TlsServer {
        node: Node::spawn_with_env(
            "up",
            dir.path(),
            &[
                "up",
                "--workers",
                "1",
                "--data-dir",
                data.to_str().unwrap(),
                "--api",
                &api.to_string(),
                "--gossip",
                &gossip,
                "--tls-cert",
                pem.cert.to_str().unwrap(),
                "--tls-key",
                pem.key.to_str().unwrap(),
                "--ssh",
                &ssh_addr,
                "--ssh-authorized-keys",
                authorized.to_str().unwrap(),
            ],
            &[("SHOAL_TOKEN", TOKEN)],
        ),
        api,
        gossip: gossip.parse().unwrap(),
        url: format!("https://{api}"),
    };
    eventually("shoal up over TLS to answer", || {
        server
            .cli(&pem, &["members"])
            .status
            .success()
            .then_some(())
    });
    let url = target.url("/ok");
    server.cli_json(
        &pem,
        &[
            "job", "add", "--name", "up-beat", "--every", "1s", "--url", &url,
        ],
    );
    eventually("the embedded worker to run the job over TLS", || {
        let instances = server.cli_json(&pem, &["instance", "list", "--job", "up-beat"]);
        (succeeded(&instances) >= 2).then_some(())
    });

    // An SSH exec command runs the CLI against the server's own https API.
    let known_hosts = dir.path().join("known_hosts");
    let out = Command::new("ssh")
        .args(["-F", "/dev/null", "-p", &ssh_port.to_string(), "-i"])
        .arg(&key)
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
        ])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "LogLevel=ERROR",
            "ops@127.0.0.1",
            "job list --output json",
        ])
        .output()
        .expect("run ssh (install openssh-client)");
    assert!(
        out.status.success(),
        "ssh exec over a TLS API: {}\n{}",
        stderr(&out),
        server.node.log_text()
    );
    let jobs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .any(|j| j["name"] == "up-beat"),
        "{jobs}"
    );
}
