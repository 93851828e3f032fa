//! A connection flood against a server held to 1,024 open files (soft and hard, so it cannot raise
//! its way out): ~1,100 silent or half-sent connections. The server's own bounds must keep it
//! serving: `/healthz` and an admin GET answer, a worker keeps polling and tasks keep running while
//! the flood holds its connections, and all is still well once it ends.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const FLOOD: usize = 1100;

/// A server process whose open-file limit is 1,024 soft and hard.
fn start_server_at_1024_files(dir: &std::path::Path) -> (Node, SocketAddr, SocketAddr) {
    let api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let gossip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let log = dir.join("server.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["server", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--api", &api.to_string(), "--gossip", &gossip.to_string()])
        // Far longer than any wait of the checks below, so they pass only if the server serves
        // while the flood still holds its connections, not once the timeout has ended it.
        .args(["--header-timeout", "600s"])
        .env_remove("SHOAL_TOKEN")
        .env("SHOAL_LOG", "info")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
    unsafe {
        command.pre_exec(|| rlimit::setrlimit(rlimit::Resource::NOFILE, 1024, 1024));
    }
    let node = Node {
        name: "server".into(),
        child: command.spawn().expect("spawn shoal server"),
        log,
    };
    eventually("the server to answer", || {
        matches!(http(api, "GET", "/healthz", None), Some((200, _))).then_some(())
    });
    (node, api, gossip)
}

/// Whether the server still holds this connection open (no end of stream yet).
fn still_open(stream: &mut TcpStream) -> bool {
    let _ = stream.set_nonblocking(true);
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(error) => error.kind() == ErrorKind::WouldBlock,
    }
}

fn api_answers(api: SocketAddr) {
    let health = http(api, "GET", "/healthz", None);
    assert!(
        matches!(health, Some((200, _))),
        "/healthz during the flood: {health:?}"
    );
    let jobs = http(api, "GET", "/api/v1/jobs", None);
    assert!(
        matches!(&jobs, Some((200, body)) if body.contains("beat")),
        "admin GET during the flood: {jobs:?}"
    );
}

fn tasks_keep_running(target: &TestTarget, what: &str) {
    let before = target.target.received_count();
    eventually(what, || {
        (target.target.received_count() >= before + 3).then_some(())
    });
}

#[test]
fn a_flood_of_idle_connections_leaves_the_api_and_the_workers_served() {
    // This test process holds the flood's 1,100 sockets itself.
    rlimit::increase_nofile_limit(4096).expect("raise the test's own open-file limit");
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let (server, api, gossip) = start_server_at_1024_files(dir.path());
    let join = gossip.to_string();
    let _worker = Node::spawn(
        "worker",
        dir.path(),
        &["worker", "--join", &join, "--id", "w1"],
    );
    let url = format!("http://{api}");
    let out = cli(&[
        "job",
        "add",
        "--name",
        "beat",
        "--every",
        "1s",
        "--url",
        &target.url("/ok"),
        "--server",
        &url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tasks_keep_running(&target, "tasks to run before the flood");

    // Half silent, half sending a request head that never ends.
    let mut flood = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let Ok(mut stream) = TcpStream::connect_timeout(&api, Duration::from_secs(5)) else {
            continue;
        };
        if i % 2 == 1 {
            let _ = stream.write_all(b"GET /api/v1/jobs HTTP/1.1\r\nHost: flood\r\nX-Slow: ");
        }
        flood.push(stream);
    }
    assert!(
        flood.len() > 1024,
        "only {} flood connections opened",
        flood.len()
    );

    api_answers(api);
    tasks_keep_running(&target, "tasks to keep running during the flood");
    api_answers(api);
    let open = flood
        .iter_mut()
        .map(still_open)
        .filter(|open| *open)
        .count();
    println!(
        "flood: {} connections opened, {open} still held by the server while it served, {} closed \
         by the pending-connection bound",
        flood.len(),
        flood.len() - open
    );
    assert!(open > 0, "the flood was over before the checks ran");
    assert!(
        open <= 256,
        "the server holds {open} idle connections, over --max-pending-connections (256)"
    );
    let log = server.log_text();
    assert!(
        log.contains("max_connections=896"),
        "connections bounded below the 1,024-file limit:\n{log}"
    );

    drop(flood);
    api_answers(api);
    tasks_keep_running(&target, "tasks to keep running after the flood");
}
