//! A rogue node joins the cluster's gossip (which is unauthenticated) announcing itself as a
//! server, under an id that sorts before the real server's. Its "API" is a listener in this test
//! that records every byte it receives and plays along as well as it can: a made-up handshake
//! proof, a session, and an assignment aimed at its own target. The worker must refuse it after
//! the challenge alone, say so once in its log, never send it the token nor run its work, and take
//! its tasks from the real server instead.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;
use shoal_gossip::{GossipConfig, Membership, NodeInfo, Role, UdpTransport};

const TOKEN: &str = "the-real-cluster-token-4f9a0c";
const ROGUE_ID: &str = "aaa-rogue";

/// What the rogue's API listener received.
#[derive(Default)]
struct Recording {
    bytes: Vec<u8>,
    request_lines: Vec<String>,
}

/// The rogue's API: answers like a server that wants work to hand out, and records everything.
fn start_recorder(rogue_target: SocketAddr) -> (SocketAddr, Arc<Mutex<Recording>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let recording = Arc::new(Mutex::new(Recording::default()));
    let shared = recording.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let recording = shared.clone();
            std::thread::spawn(move || answer_as_rogue(stream, rogue_target, &recording));
        }
    });
    (addr, recording)
}

fn answer_as_rogue(
    mut stream: std::net::TcpStream,
    rogue_target: SocketAddr,
    recording: &Mutex<Recording>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    // Everything the peer sends until the end of the head and the body it announces.
    let (head_end, body_length) = loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => {
                recording.lock().unwrap().bytes.extend_from_slice(&received);
                return;
            }
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while received.len() < head_end + body_length {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    let request_line = String::from_utf8_lossy(&received)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    {
        let mut recording = recording.lock().unwrap();
        recording.bytes.extend_from_slice(&received);
        recording.request_lines.push(request_line.clone());
    }
    let path = request_line.split(' ').nth(1).unwrap_or_default();
    let body = match path {
        "/rpc/v1/hello" => serde_json::json!({
            "server": ROGUE_ID,
            "server_nonce": "11".repeat(32),
            "server_proof": "22".repeat(32),
        }),
        "/rpc/v1/session" => serde_json::json!({"session": "rogue", "idle_timeout_ms": 600000}),
        "/rpc/v1/poll" => serde_json::json!([{
            "instance": 999_999,
            "attempt": 1,
            "job": "stolen",
            "task": {"method": "GET", "url": format!("http://{rogue_target}/stolen"),
                     "timeout_ms": 5000},
            "lease_until_ms": u64::MAX / 2,
        }]),
        _ => serde_json::json!({"applied": 0, "refused": []}),
    }
    .to_string();
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

/// The target the rogue's assignment points at: counts every connection it gets.
fn start_rogue_target() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (addr, hits)
}

fn cli_with_token(api: SocketAddr, args: &[&str]) -> Value {
    let url = format!("http://{api}");
    let mut all = args.to_vec();
    all.extend_from_slice(&["--server", &url, "--token", TOKEN, "--output", "json"]);
    let out = cli(&all);
    assert!(
        out.status.success(),
        "shoal {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_rogue_server_in_gossip_gets_no_token_and_runs_no_work() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let (rogue_target, rogue_hits) = start_rogue_target();
    let (recorder, recording) = start_recorder(rogue_target);
    let server_gossip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let server_api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();

    // The rogue: a gossip member of the right cluster that calls itself a server.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let rogue_gossip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let _rogue = runtime
        .block_on(Membership::start(
            GossipConfig::new("shoal", rogue_gossip).with_seeds(vec![server_gossip.to_string()]),
            NodeInfo {
                id: ROGUE_ID.into(),
                role: Role::Server,
                api_addr: recorder.to_string(),
                tags: Vec::new(),
                capacity: 0,
                running: 0,
                version: "0.1.0".into(),
            },
            &UdpTransport,
        ))
        .expect("rogue gossip node");

    // The worker knows the rogue first: it must refuse it before the real server even exists.
    let seeds = format!("{rogue_gossip},{server_gossip}");
    let worker = Node::spawn_with_env(
        "worker",
        dir.path(),
        &["worker", "--join", &seeds, "--id", "w1"],
        &[("SHOAL_TOKEN", TOKEN)],
    );
    let refusal = format!("refused server {ROGUE_ID} at {recorder}");
    eventually("the worker to refuse the rogue", || {
        worker.log_text().contains(&refusal).then_some(())
    });

    let data = dir.path().join("data");
    let (api, gossip) = (server_api.to_string(), server_gossip.to_string());
    let _server = Node::spawn_with_env(
        "server",
        dir.path(),
        &[
            "server",
            "--data-dir",
            data.to_str().unwrap(),
            "--api",
            &api,
            "--gossip",
            &gossip,
            "--id",
            "real-server",
        ],
        &[("SHOAL_TOKEN", TOKEN)],
    );
    eventually("the server to answer", || {
        let url = format!("http://{server_api}");
        let out = cli(&["members", "--server", &url, "--token", TOKEN]);
        out.status.success().then_some(())
    });
    // Gossip spreads the rogue to the server within a few rounds: wait for it, not assume it.
    eventually(
        "the rogue to be a gossip member claiming to be a server",
        || {
            let members = cli_with_token(server_api, &["members"]);
            members
                .as_array()?
                .iter()
                .any(|m| m["id"] == ROGUE_ID && m["role"] == "server")
                .then_some(())
        },
    );
    let url = target.url("/ok");
    cli_with_token(
        server_api,
        &[
            "job", "add", "--name", "real", "--every", "1s", "--url", &url,
        ],
    );
    eventually("the real server's tasks to run on the worker", || {
        let instances = cli_with_token(server_api, &["instance", "list", "--job", "real"]);
        let succeeded = instances
            .as_array()?
            .iter()
            .filter(|i| i["state"] == "succeeded")
            .count();
        (succeeded >= 3 && target.target.received_count() >= 3).then_some(())
    });

    let log = worker.log_text();
    assert!(
        log.contains("server authenticated") && log.contains("real-server"),
        "{log}"
    );
    assert_eq!(
        log.matches(&refusal).count(),
        1,
        "the refusal is logged once, not in a loop:\n{log}"
    );
    assert!(
        log.contains("another --token, or it is not a Shoal server"),
        "the log names the likely cause:\n{log}"
    );
    let recording = recording.lock().unwrap();
    assert!(
        !recording.request_lines.is_empty(),
        "the rogue was never even challenged, so this test proved nothing"
    );
    assert!(
        recording
            .request_lines
            .iter()
            .all(|line| line.starts_with("POST /rpc/v1/hello ")),
        "the rogue got more than a challenge: {:?}",
        recording.request_lines
    );
    let received = String::from_utf8_lossy(&recording.bytes);
    assert!(
        !received.contains(TOKEN),
        "the rogue saw the token: {received}"
    );
    assert!(
        !received.to_lowercase().contains("authorization"),
        "{received}"
    );
    assert_eq!(
        rogue_hits.load(Ordering::SeqCst),
        0,
        "a task handed out by the rogue ran"
    );
}
