//! End-to-end: a real server and two real workers find each other by gossip; a SIGKILLed worker
//! is seen dead, a SIGTERMed one leaves; bad input is refused with a clear message.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn members_join_die_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let killed = server.worker(dir.path(), "w-killed", &["--tag", "billing"]);
    let mut stopped = server.worker(dir.path(), "w-stopped", &["--capacity", "3"]);

    eventually("three live members", || {
        let members = server.cli_json(&["members"]);
        let rows = members.as_array()?;
        (rows.len() == 3 && rows.iter().all(|m| m["state"] == "live")).then_some(())
    });
    let members = server.cli_json(&["members"]);
    let row = |id: &str| {
        members
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("server")["role"], "server");
    assert_eq!(row("server")["addr"], server.api.to_string());
    assert_eq!(row("w-killed")["tags"], serde_json::json!(["billing"]));
    assert_eq!(row("w-stopped")["capacity"], 3);
    assert_eq!(row("w-stopped")["running"], 0);

    // The table form lists the same members.
    let table = String::from_utf8(server.cli(&["members"]).stdout).unwrap();
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("w-killed") && table.contains("billing"),
        "{table}"
    );

    killed.signal("KILL");
    eventually("SIGKILLed worker seen dead", || {
        (server.member_state("w-killed")? == "dead").then_some(())
    });

    stopped.signal("TERM");
    eventually("SIGTERMed worker seen left", || {
        (server.member_state("w-stopped")? == "left").then_some(())
    });
    let status = stopped.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    assert!(
        stopped.log_text().contains("SIGTERM received"),
        "{}",
        stopped.log_text()
    );
}

#[test]
fn a_worker_with_an_unreachable_seed_keeps_retrying_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = format!("127.0.0.1:{}", free_udp_port());
    let mut worker = Node::spawn("lonely", dir.path(), &["worker", "--join", &nobody]);
    eventually("the worker to log that no server is reachable", || {
        worker
            .log_text()
            .contains("no server reachable yet; still trying")
            .then_some(())
    });
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker must keep running"
    );
    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(30)).success());
}

#[test]
fn bad_input_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["server", "--api", "nowhere"], "--api"),
        (&["server", "--gossip", "1.2.3"], "--gossip"),
        (&["worker", "--join", "localhost"], "--join"),
        (&["worker", "--tag", "has space"], "--tag"),
        (&["worker", "--capacity", "0"], "--capacity"),
        (&["worker", "--gossip-interval", "soon"], "duration"),
        (&["members", "--server", "not a url"], "--server"),
        (
            &["server", "--api", "0.0.0.0:0", "--gossip", "127.0.0.1:0"],
            "without a token",
        ),
    ];
    for (args, expected) in cases {
        let mut args = args.to_vec();
        let data = dir.path().join("d").display().to_string();
        if args[0] == "server" {
            args.extend_from_slice(&["--data-dir", &data]);
        }
        let out = cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            stderr.contains(expected),
            "{args:?}: stderr should name {expected:?}: {stderr}"
        );
    }
}

#[test]
fn a_port_in_use_or_unwritable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let data = dir.path().join("other").display().to_string();
    let gossip = format!("127.0.0.1:{}", free_udp_port());
    let api = server.api.to_string();
    let out = cli(&[
        "server",
        "--api",
        &api,
        "--gossip",
        &gossip,
        "--data-dir",
        &data,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot listen on --api") && stderr.contains("in use"),
        "{stderr}"
    );

    let api = format!("127.0.0.1:{}", free_tcp_port());
    let taken_gossip = server.gossip.to_string();
    let out = cli(&[
        "server",
        "--api",
        &api,
        "--gossip",
        &taken_gossip,
        "--data-dir",
        &data,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot bind gossip socket"), "{stderr}");

    // A data dir under a regular file can never be created.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("data").display().to_string();
    let out = cli(&[
        "server",
        "--api",
        &api,
        "--gossip",
        &gossip,
        "--data-dir",
        &under_file,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--data-dir"), "{stderr}");
}
