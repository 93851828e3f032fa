//! Scoped tokens: every route of the admin API and `/metrics` tried with each scope's token (a
//! table), a worker token included; the 403 names the scope needed; two tokens of one scope work
//! at once (rotation), for the API and for workers' handshakes; `--token` still opens all.

mod common;

use std::net::SocketAddr;

use common::*;

/// One request with an optional bearer token: (status, body).
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

const JOB: &str = r#"{"name": "j", "on_demand": true, "http": {"url": "http://127.0.0.1:9/"}}"#;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Needs {
    Read,
    Operator,
    Admin,
}

/// Every admin route with the scope it needs. Admin rows that create come first, so that the
/// job exists for the rest; the delete comes last.
const ROUTES: &[(&str, &str, &str, Needs)] = &[
    ("POST", "/api/v1/jobs", JOB, Needs::Admin),
    ("PUT", "/api/v1/jobs", JOB, Needs::Admin),
    ("PUT", "/api/v1/jobs/j", JOB, Needs::Admin),
    ("GET", "/api/v1/members", "", Needs::Read),
    ("GET", "/api/v1/cluster", "", Needs::Read),
    ("GET", "/api/v1/jobs", "", Needs::Read),
    ("GET", "/api/v1/jobs/j", "", Needs::Read),
    ("GET", "/api/v1/jobs/j/next", "", Needs::Read),
    ("GET", "/api/v1/instances", "", Needs::Read),
    ("GET", "/api/v1/instances/1", "", Needs::Read),
    ("GET", "/api/v1/queue", "", Needs::Read),
    ("GET", "/metrics", "", Needs::Read),
    ("POST", "/api/v1/jobs/j/pause", "", Needs::Operator),
    ("POST", "/api/v1/jobs/j/resume", "", Needs::Operator),
    ("POST", "/api/v1/jobs/j/run", "", Needs::Operator),
    ("POST", "/api/v1/jobs/j/backfill", "{}", Needs::Operator),
    ("POST", "/api/v1/instances/1/cancel", "", Needs::Operator),
    ("POST", "/api/v1/instances/1/retry", "", Needs::Operator),
    ("DELETE", "/api/v1/jobs/j", "", Needs::Admin),
];

#[test]
fn each_scope_against_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_closed(
        dir.path(),
        &[
            "--token-read",
            "read-1",
            "--token-read",
            "read-2",
            "--token-operator",
            "operator-1",
            "--token-admin",
            "admin-1",
            "--token-worker",
            "worker-1",
        ],
        "read-1",
    );
    // (token, what it may do): None = nothing (401), Some(level) = up to that level.
    let holders: [(Option<&str>, Option<Needs>); 7] = [
        (None, None),
        (Some("wrong"), None),
        (Some("read-1"), Some(Needs::Read)),
        (Some("read-2"), Some(Needs::Read)),
        (Some("operator-1"), Some(Needs::Operator)),
        (Some("worker-1"), None),
        (Some("admin-1"), Some(Needs::Admin)),
    ];
    let rank = |n: Needs| match n {
        Needs::Read => 0,
        Needs::Operator => 1,
        Needs::Admin => 2,
    };
    for (token, may) in holders {
        for &(method, path, body, needs) in ROUTES {
            let (status, text) = call(server.api, method, path, token, body);
            let known = token.is_some_and(|t| t != "wrong");
            let allowed = may.is_some_and(|m| rank(m) >= rank(needs));
            if !known {
                assert_eq!(status, 401, "{method} {path} with {token:?}: {text}");
            } else if !allowed {
                assert_eq!(status, 403, "{method} {path} with {token:?}: {text}");
                let needed = format!("{needs:?}").to_lowercase();
                assert!(
                    text.contains(&format!("\\\"{needed}\\\""))
                        && text.contains(&format!("--token-{needed}")),
                    "the refusal of {method} {path} to {token:?} names the scope {needed}: {text}"
                );
            } else {
                assert!(
                    status != 401 && status != 403,
                    "{method} {path} with {token:?} was refused: {status} {text}"
                );
            }
        }
    }
    // The worker token opens the RPC's handshake, not by being sent: the RPC takes no bearer.
    for token in ["worker-1", "admin-1"] {
        let (status, _) = call(
            server.api,
            "POST",
            "/rpc/v1/poll",
            Some(token),
            r#"{"worker":"w","free":1,"wait_ms":0}"#,
        );
        assert_eq!(status, 401, "a bearer token is no RPC credential");
    }
    // The CLI sends one token; its error says which scope was missing.
    let out = server.cli(&["job", "delete", "j", "--token", "operator-1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--token-admin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn workers_holding_either_of_two_worker_tokens_run_work_and_token_opens_everything() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let server = Server::start_closed(
        dir.path(),
        &[
            "--token-worker",
            "old-worker",
            "--token-worker",
            "new-worker",
            "--token",
            "root",
        ],
        "root",
    );
    let _old = server.worker(
        dir.path(),
        "w-old",
        &["--token", "old-worker", "--tag", "old"],
    );
    let _new = server.worker(
        dir.path(),
        "w-new",
        &["--token", "new-worker", "--tag", "new"],
    );
    let url = target.url("/ok");
    for tag in ["old", "new"] {
        let out = server.cli(&[
            "job",
            "add",
            "--name",
            tag,
            "--on-demand",
            "--url",
            &url,
            "--tag",
            tag,
            "--token",
            "root",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            server
                .cli(&["job", "run", tag, "--token", "root"])
                .status
                .success()
        );
    }
    for tag in ["old", "new"] {
        eventually(&format!("the worker tagged {tag} to run its task"), || {
            let out = server.cli(&[
                "instance", "list", "--job", tag, "--token", "root", "--output", "json",
            ]);
            let list: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            list.as_array()?
                .iter()
                .any(|i| i["state"] == "succeeded")
                .then_some(())
        });
    }
}
