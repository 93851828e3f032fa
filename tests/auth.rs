//! End-to-end authentication, beyond what tests/dispatch.rs and tests/cluster.rs cover (a
//! token-less CLI and worker refused, a non-loopback API without a token refused at start-up):
//! every admin and RPC route answers 401 to a missing or wrong token and changes nothing;
//! `SHOAL_TOKEN` is honoured by the CLI and the worker; a node of another cluster id is never a
//! member; the worker RPC takes only a session earned by the handshake, never the token itself.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::*;
use serde_json::Value;

const TOKEN: &str = "s3cret-Tok3n";

/// One request with an optional `Authorization` header, on a fresh connection.
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let auth = auth
        .map(|value| format!("Authorization: {value}\r\n"))
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
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn cli_with_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("SHOAL_SERVER")
        .env_remove("SHOAL_TOKEN");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run shoal")
}

#[test]
fn every_route_refuses_a_missing_or_wrong_token_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_token(dir.path(), TOKEN);
    let good = format!("Bearer {TOKEN}");
    let job = r#"{"name": "j", "on_demand": true, "http": {"url": "http://127.0.0.1:9/"}}"#;
    let snapshot = || {
        let jobs = call(server.api, "GET", "/api/v1/jobs", Some(&good), "");
        let instances = call(server.api, "GET", "/api/v1/instances", Some(&good), "");
        assert_eq!((jobs.0, instances.0), (200, 200));
        (jobs.1, instances.1)
    };
    let (status, created) = call(server.api, "POST", "/api/v1/jobs", Some(&good), job);
    assert_eq!(status, 201, "{created}");
    let before = snapshot();

    let routes: &[(&str, &str, &str)] = &[
        ("GET", "/api/v1/members", ""),
        ("GET", "/api/v1/cluster", ""),
        ("GET", "/api/v1/jobs", ""),
        ("POST", "/api/v1/jobs", job),
        ("PUT", "/api/v1/jobs", job),
        ("GET", "/api/v1/jobs/j", ""),
        ("PUT", "/api/v1/jobs/j", job),
        ("DELETE", "/api/v1/jobs/j", ""),
        ("POST", "/api/v1/jobs/j/pause", ""),
        ("POST", "/api/v1/jobs/j/resume", ""),
        ("POST", "/api/v1/jobs/j/run", ""),
        ("GET", "/api/v1/instances", ""),
        ("GET", "/api/v1/instances/1", ""),
        ("POST", "/api/v1/instances/1/cancel", ""),
        ("POST", "/api/v1/instances/1/retry", ""),
        (
            "POST",
            "/rpc/v1/poll",
            r#"{"worker": "thief", "free": 8, "wait_ms": 0}"#,
        ),
        (
            "POST",
            "/rpc/v1/report",
            r#"{"worker": "thief", "events": []}"#,
        ),
    ];
    let wrong_prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let longer = format!("Bearer {TOKEN}x");
    let no_scheme = TOKEN.to_string();
    let basic = format!("Basic {TOKEN}");
    let spaced = format!("Bearer  {TOKEN}");
    let made_up_session = format!("Shoal-Session {}", "0".repeat(64));
    let credentials: &[Option<&str>] = &[
        None,
        Some("Bearer wrong"),
        Some("Bearer "),
        Some(&wrong_prefix),
        Some(&longer),
        Some(&no_scheme),
        Some(&basic),
        Some(&spaced),
        Some(&made_up_session),
    ];
    let mut tried = 0;
    for (method, path, body) in routes {
        for auth in credentials {
            let (status, error) = call(server.api, method, path, *auth, body);
            assert_eq!(status, 401, "{method} {path} with {auth:?}: {error}");
            assert_eq!(error["error"], "unauthorized", "{method} {path}");
            assert!(
                error["message"].as_str().unwrap().contains("SHOAL_TOKEN"),
                "{error}"
            );
            tried += 1;
        }
        // A token in the query string is no token.
        let (status, _) = call(
            server.api,
            method,
            &format!("{path}?token={TOKEN}"),
            None,
            body,
        );
        assert_eq!(status, 401, "{method} {path}?token=");
        tried += 1;
    }
    assert_eq!(snapshot(), before, "a refused request changed the store");
    println!("unauthenticated requests refused: {tried}");

    // The right token opens every door; liveness needs none.
    let (status, _) = call(server.api, "POST", "/api/v1/jobs/j/run", Some(&good), "");
    assert_eq!(status, 201);
    assert_eq!(call(server.api, "GET", "/healthz", None, "").0, 200);
    // The worker RPC takes a session earned by the handshake, never the token itself.
    let poll = r#"{"worker": "member", "free": 0, "wait_ms": 0}"#;
    let (status, _) = call(server.api, "POST", "/rpc/v1/poll", Some(&good), poll);
    assert_eq!(status, 401, "the token itself opened the RPC");
    let session = handshake(server.api, "member", TOKEN).expect("the right token gets a session");
    let (status, body) = call(server.api, "POST", "/rpc/v1/poll", Some(&session), poll);
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        server.api,
        "POST",
        "/rpc/v1/poll",
        Some(&session),
        r#"{"worker": "someone-else", "free": 0, "wait_ms": 0}"#,
    );
    assert_eq!(
        (status, &body["field"]),
        (422, &Value::from("worker")),
        "{body}"
    );
    let refused = handshake(server.api, "member", "wrong").unwrap_err();
    assert!(refused.contains("server proof"), "{refused}");
}

/// The worker's handshake by hand: checks the server's proof, then proves `token` for `worker`.
/// `Ok` is the `Authorization` value of a session; `Err` says which step failed.
fn handshake(api: SocketAddr, worker: &str, token: &str) -> Result<String, String> {
    use shoal::handshake::{Nonce, Proof, ServerClaim, WorkerClaim};
    let worker_nonce = Nonce::fresh();
    let hello = format!(
        r#"{{"worker": "{worker}", "worker_nonce": "{}"}}"#,
        worker_nonce.to_hex()
    );
    let (status, answer) = call(api, "POST", "/rpc/v1/hello", None, &hello);
    assert_eq!(status, 200, "{answer}");
    let server_nonce = Nonce::from_hex(answer["server_nonce"].as_str().unwrap()).unwrap();
    let server_proof = Proof::from_hex(answer["server_proof"].as_str().unwrap()).unwrap();
    let claim = ServerClaim {
        cluster: "shoal",
        server_id: answer["server"].as_str().unwrap(),
        worker_nonce: &worker_nonce,
        server_nonce: &server_nonce,
    };
    if !claim.verify(token, &server_proof) {
        // Prove anyway, as a worker that skipped the check would: the server must refuse it.
        let proof = WorkerClaim {
            cluster: "shoal",
            worker_id: worker,
            server_nonce: &server_nonce,
            worker_nonce: &worker_nonce,
        }
        .prove(token);
        let request = format!(
            r#"{{"worker": "{worker}", "worker_nonce": "{}", "server_nonce": "{}", "worker_proof": "{}"}}"#,
            worker_nonce.to_hex(),
            server_nonce.to_hex(),
            proof.to_hex()
        );
        let (status, body) = call(api, "POST", "/rpc/v1/session", None, &request);
        assert_eq!(status, 401, "a wrong worker proof opened a session: {body}");
        // A challenge is answered once: the same request again finds no challenge.
        let (status, body) = call(api, "POST", "/rpc/v1/session", None, &request);
        assert_eq!(
            (status, &body["field"]),
            (422, &Value::from("server_nonce")),
            "{body}"
        );
        return Err("the server proof did not verify with this token".into());
    }
    let proof = WorkerClaim {
        cluster: "shoal",
        worker_id: worker,
        server_nonce: &server_nonce,
        worker_nonce: &worker_nonce,
    }
    .prove(token);
    let request = format!(
        r#"{{"worker": "{worker}", "worker_nonce": "{}", "server_nonce": "{}", "worker_proof": "{}"}}"#,
        worker_nonce.to_hex(),
        server_nonce.to_hex(),
        proof.to_hex()
    );
    let (status, body) = call(api, "POST", "/rpc/v1/session", None, &request);
    assert_eq!(status, 200, "{body}");
    Ok(format!(
        "Shoal-Session {}",
        body["session"].as_str().unwrap()
    ))
}

#[test]
fn the_cli_and_the_worker_take_the_token_from_shoal_token() {
    let dir = tempfile::tempdir().unwrap();
    let target = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut stream in listener.incoming().flatten() {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        addr
    };
    let server = Server::start_with_token(dir.path(), TOKEN);
    let url = server.url.clone();
    let as_env = [("SHOAL_TOKEN", TOKEN), ("SHOAL_SERVER", url.as_str())];

    let out = cli_with_env(&["members", "--output", "json"], &as_env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli_with_env(
        &["members"],
        &[("SHOAL_TOKEN", "wrong"), ("SHOAL_SERVER", &url)],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHOAL_TOKEN"));
    // A flag beats the environment.
    let out = cli_with_env(
        &["members", "--token", TOKEN],
        &[("SHOAL_TOKEN", "wrong"), ("SHOAL_SERVER", &url)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let target_url = format!("http://{target}/");
    let out = cli_with_env(
        &[
            "job",
            "add",
            "--name",
            "t",
            "--on-demand",
            "--url",
            &target_url,
            "--output",
            "json",
        ],
        &as_env,
    );
    assert!(out.status.success());
    let out = cli_with_env(&["job", "run", "t", "--output", "json"], &as_env);
    assert!(out.status.success());
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"].to_string();

    let join = server.gossip.to_string();
    let _worker = Node::spawn_with_env(
        "env-worker",
        dir.path(),
        &["worker", "--join", &join, "--id", "env-worker"],
        &[("SHOAL_TOKEN", TOKEN)],
    );
    let done = eventually("the task to run on the worker with SHOAL_TOKEN", || {
        let out = cli_with_env(&["instance", "show", &id, "--output", "json"], &as_env);
        let value: Value = serde_json::from_slice(&out.stdout).ok()?;
        (value["state"] == "succeeded").then_some(value)
    });
    assert_eq!(done["attempts"][0]["worker"], "env-worker");
}

#[test]
fn a_worker_of_another_cluster_is_never_a_member_and_takes_no_task() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let join = server.gossip.to_string();
    let _foreign = Node::spawn(
        "foreign",
        dir.path(),
        &[
            "worker",
            "--join",
            &join,
            "--id",
            "foreign",
            "--cluster",
            "someone-else",
        ],
    );
    server.cli_json(&[
        "job",
        "add",
        "--name",
        "pinned",
        "--on-demand",
        "--url",
        "http://127.0.0.1:9/",
        "--worker",
        "foreign",
    ]);
    let id = server.cli_json(&["job", "run", "pinned"])["id"].to_string();
    // A worker of our cluster, started after the foreign one, proves gossip works meanwhile.
    let _ours = server.worker(dir.path(), "ours", &[]);
    eventually("our worker to be live", || {
        (server.member_state("ours").as_deref() == Some("live")).then_some(())
    });
    // A few more gossip rounds (200 ms each) for the foreign worker to sneak in, if it could.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(server.member_state("foreign"), None, "a foreign member");
    let shown = server.cli_json(&["instance", "show", &id]);
    assert_eq!(shown["state"], "queued", "{shown}");
    assert_eq!(shown["attempts"], serde_json::json!([]));
    assert!(
        shown["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("foreign"),
        "{shown}"
    );
}
