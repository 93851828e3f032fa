//! End-to-end worker faults not covered by tests/dispatch.rs (which has SIGKILL, SIGSTOP past the
//! failure timeout, and a slow target): a worker that stays alive in gossip but never reports
//! (its lease expires and the task runs elsewhere; its late report is refused), a worker that
//! sends oversized report text (the server caps what it stores), and a target that accepts the
//! connection but never answers (the task times out and the worker takes new work).

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use shoal::model::now_ms;
use shoal_gossip::{Membership, NodeInfo, Role};

/// A hand-driven worker: a real gossip member that polls and reports over raw RPC only when the
/// test says so.
struct FakeWorker {
    id: String,
    api: SocketAddr,
    _membership: Membership,
    _runtime: tokio::runtime::Runtime,
}

impl FakeWorker {
    fn join(server: &Server, id: &str) -> FakeWorker {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut settings = shoal::node::GossipSettings::new(
            shoal::node::DEFAULT_CLUSTER,
            "127.0.0.1:0".parse().unwrap(),
        );
        settings.seeds = vec![server.gossip.to_string()];
        let info = NodeInfo {
            id: id.to_string(),
            role: Role::Worker,
            api_addr: String::new(),
            tags: Vec::new(),
            capacity: 1,
            running: 0,
            version: shoal::VERSION.to_string(),
        };
        let membership = runtime.block_on(settings.join(info)).unwrap();
        eventually(&format!("{id} to be live"), || {
            (server.member_state(id).as_deref() == Some("live")).then_some(())
        });
        FakeWorker {
            id: id.to_string(),
            api: server.api,
            _membership: membership,
            _runtime: runtime,
        }
    }

    fn rpc(&self, path: &str, body: Value) -> Value {
        let (status, text) =
            http(self.api, "POST", path, Some(&body.to_string())).expect("RPC answer");
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Polls until the server hands over an assignment.
    fn take(&self) -> Value {
        eventually("an assignment", || {
            let assignments = self.rpc(
                "/rpc/v1/poll",
                json!({ "worker": self.id, "free": 1, "wait_ms": 1000 }),
            );
            assignments.as_array()?.first().cloned()
        })
    }

    fn report(&self, event: Value) -> Value {
        self.rpc(
            "/rpc/v1/report",
            json!({ "worker": self.id, "events": [event] }),
        )
    }
}

fn instance(server: &Server, id: &str) -> Value {
    server.cli_json(&["instance", "show", id])
}

fn wait_state(server: &Server, id: &str, state: &str) -> Value {
    eventually(&format!("instance {id} to be {state}"), || {
        let value = instance(server, id);
        (value["state"] == state).then_some(value)
    })
}

/// An HTTP "target" that accepts connections and never answers.
fn hanging_target() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
            if held.len() > 16 {
                return;
            }
        }
    });
    (addr, handle)
}

#[test]
fn a_worker_that_never_reports_loses_its_lease_and_its_late_report_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let sloth = FakeWorker::join(&server, "sloth");
    let ok = http_ok_target();
    server.cli_json(&[
        "job",
        "add",
        "--name",
        "stuck",
        "--on-demand",
        "--url",
        &format!("http://{ok}/"),
        "--timeout",
        "1s",
    ]);
    let id = server.cli_json(&["job", "run", "stuck"])["id"].to_string();
    let assignment = sloth.take();
    assert_eq!(assignment["instance"].to_string(), id);
    assert_eq!(assignment["attempt"], 1);
    let ack = sloth.report(json!({
        "event": "started", "instance": assignment["instance"], "attempt": 1, "at_ms": now_ms()
    }));
    assert_eq!(ack["applied"], 1, "{ack}");
    let running = wait_state(&server, &id, "running");
    // Alive in gossip, silent on RPC: only the lease (timeout 1s + 15s grace) can end this.
    assert_eq!(running["worker"], "sloth");
    assert_eq!(server.member_state("sloth").as_deref(), Some("live"));

    let _real = server.worker(dir.path(), "real", &[]);
    let done = wait_state(&server, &id, "succeeded");
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{done}");
    assert_eq!(attempts[0]["worker"], "sloth");
    assert_eq!(attempts[0]["outcome"], "lost");
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("lease expired with no report"),
        "{done}"
    );
    assert_eq!(attempts[1]["worker"], "real");
    assert_eq!(attempts[1]["outcome"], "succeeded");
    assert_eq!(server.member_state("sloth").as_deref(), Some("live"));

    // Sloth finally reports attempt 1: refused, and nothing of it is stored.
    let late = sloth.report(json!({
        "event": "finished", "instance": assignment["instance"], "attempt": 1,
        "started_ms": now_ms() - 20_000, "ended_ms": now_ms(), "succeeded": false,
        "error": "late and wrong"
    }));
    assert_eq!(late["applied"], 0, "{late}");
    assert!(
        late["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("stale attempt 1"),
        "{late}"
    );
    assert_eq!(instance(&server, &id), done);
}

#[test]
fn the_server_caps_the_report_text_it_stores() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let chatty = FakeWorker::join(&server, "chatty");
    server.cli_json(&[
        "job",
        "add",
        "--name",
        "chat",
        "--on-demand",
        "--url",
        "http://127.0.0.1:9/",
    ]);
    let id = server.cli_json(&["job", "run", "chat"])["id"].to_string();
    let assignment = chatty.take();
    // 100 KB of excerpt and error, with a multi-byte character straddling the cap.
    let huge = format!("{}é{}", "a".repeat(4095), "b".repeat(100_000));
    let ack = chatty.report(json!({
        "event": "finished", "instance": assignment["instance"], "attempt": 1,
        "started_ms": now_ms(), "ended_ms": now_ms(), "succeeded": false,
        "http_status": 500, "error": huge, "excerpt": huge
    }));
    assert_eq!(ack["applied"], 1, "{ack}");
    let failed = wait_state(&server, &id, "failed");
    let attempt = &failed["attempts"][0];
    for field in ["excerpt", "error"] {
        let text = attempt[field].as_str().unwrap();
        assert!(
            text.len() <= 4 * 1024 + '…'.len_utf8(),
            "{field} stored {} bytes",
            text.len()
        );
        assert!(text.starts_with("aaaa") && text.ends_with('…'), "{field}");
    }
    assert!(failed["reason"].as_str().unwrap().len() < 5 * 1024);
}

#[test]
fn a_target_that_never_answers_times_out_and_the_worker_takes_new_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let _worker = server.worker(dir.path(), "w1", &[]);
    let (hang, _thread) = hanging_target();
    let ok = http_ok_target();
    for (name, url) in [
        ("hang", format!("http://{hang}/")),
        ("fine", format!("http://{ok}/")),
    ] {
        server.cli_json(&[
            "job",
            "add",
            "--name",
            name,
            "--on-demand",
            "--url",
            &url,
            "--timeout",
            "700ms",
        ]);
    }
    let hung = server.cli_json(&["job", "run", "hang"])["id"].to_string();
    let failed = wait_state(&server, &hung, "failed");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("timed out after 700ms"),
        "{failed}"
    );
    assert_eq!(failed["attempts"][0]["worker"], "w1");
    let next = server.cli_json(&["job", "run", "fine"])["id"].to_string();
    let done = wait_state(&server, &next, "succeeded");
    assert_eq!(done["attempts"][0]["worker"], "w1");
}

/// A minimal HTTP target answering 200 to everything, on its own thread.
fn http_ok_target() -> SocketAddr {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    addr
}
