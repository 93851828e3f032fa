//! A full disk under a running server: its data dir is a small tmpfs (mounted here; the test needs
//! root and is skipped with a message otherwise), filled by a filler file until writes fail.
//! Checked: writes are refused with 507 and a message that says what to do; reads, `/healthz` and
//! `/api/v1/cluster` say why; once the filler is gone the server takes writes again and runs
//! tasks without a restart, logging each change of state once; and after a SIGKILL restart every
//! acknowledged job and instance is there.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// Unmounts the tmpfs when dropped, also when the test fails (declared first, so dropped after
/// the processes that use it).
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: a process killed a moment ago may still hold a file open.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn start_server(dir: &Path, data: &Path, api: SocketAddr, gossip: SocketAddr, n: u32) -> Node {
    let node = Node::spawn(
        &format!("server-{n}"),
        dir,
        &[
            "server",
            "--data-dir",
            &data.display().to_string(),
            "--api",
            &api.to_string(),
            "--gossip",
            &gossip.to_string(),
        ],
    );
    eventually("the server to answer /healthz", || {
        http(api, "GET", "/healthz", None)
            .is_some_and(|(status, _)| status == 200)
            .then_some(())
    });
    node
}

fn call(api: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(Value::to_string);
    let (status, text) = http(api, method, path, body.as_deref())
        .unwrap_or_else(|| panic!("{method} {path}: no answer"));
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Writes `path` until the file system refuses: it is then full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("filler file");
    for chunk in [64 * 1024, 4096, 512, 1] {
        let bytes = vec![0xa5u8; chunk];
        while file.write_all(&bytes).is_ok() {}
    }
    let _ = file.sync_all();
}

#[test]
fn a_full_disk_refuses_writes_clearly_and_the_server_recovers_by_itself() {
    if !is_root() {
        println!("SKIPPED disk_full: mounting a tmpfs needs root (CI runs as root via .ci/run)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let _mount = match Mount::tmpfs(&data, "8m") {
        Ok(mount) => mount,
        Err(error) => {
            println!(
                "SKIPPED disk_full: cannot mount a tmpfs at {}: {error}",
                data.display()
            );
            return;
        }
    };
    let target = TestTarget::start();
    let api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let gossip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let mut server = start_server(tmp.path(), &data, api, gossip, 1);
    let join = gossip.to_string();
    let _worker = Node::spawn("w1", tmp.path(), &["worker", "--join", &join, "--id", "w1"]);

    let steady = json!({"name": "steady", "every": "1s", "http": {"url": target.url("/ok")}});
    assert_eq!(call(api, "POST", "/api/v1/jobs", Some(&steady)).0, 201);
    eventually("steady to succeed once", || {
        let (_, list) = call(
            api,
            "GET",
            "/api/v1/instances?job=steady&state=succeeded",
            None,
        );
        list.as_array().is_some_and(|l| !l.is_empty()).then_some(())
    });

    // Fill the disk, then create jobs with large bodies until the server refuses.
    fill(&data.join("filler"));
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for n in 0..2_000 {
        let job = json!({
            "name": format!("fill-{n}"),
            "on_demand": true,
            "http": {"method": "POST", "url": target.url("/ok"), "body": "x".repeat(60_000)},
        });
        let (status, body) = call(api, "POST", "/api/v1/jobs", Some(&job));
        match status {
            201 => acknowledged.push(format!("fill-{n}")),
            507 => {
                refusal = Some((format!("fill-{n}"), body));
                break;
            }
            other => panic!("create fill-{n}: unexpected {other}: {body}"),
        }
    }
    let (refused_name, refused) = refusal.expect("a full disk refuses a write with 507");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("disk is full") && message.contains("free space on the file system"),
        "the refusal says what happened and what to do: {message}"
    );
    assert!(
        ["storage_full", "storage_outcome_unknown"].contains(&refused["error"].as_str().unwrap()),
        "{refused}"
    );
    println!(
        "refused after {} acknowledged creates: {refused}",
        acknowledged.len()
    );

    // Degraded: writes refused, reads answered, and the reason on /healthz and in the cluster.
    let (status, body) = call(api, "POST", "/api/v1/jobs/steady/run", None);
    assert_eq!(status, 507, "run-now while the disk is full: {body}");
    assert_eq!(body["error"], "storage_full", "{body}");
    let (status, health) = http(api, "GET", "/healthz", None).expect("healthz answers");
    assert_eq!(status, 503, "{health}");
    assert!(health.contains("degraded: disk full"), "{health}");
    let (status, cluster) = call(api, "GET", "/api/v1/cluster", None);
    assert_eq!(status, 200);
    assert_eq!(
        cluster["storage_degraded"]["fault"], "no_space",
        "{cluster}"
    );
    let (status, jobs) = call(api, "GET", "/api/v1/jobs", None);
    assert_eq!(status, 200, "reads answer while degraded: {jobs}");
    let listed: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["name"].as_str())
        .collect();
    for name in acknowledged.iter().map(String::as_str).chain(["steady"]) {
        assert!(listed.contains(&name), "{name} is listed while degraded");
    }

    // Free the disk: the server recovers by itself.
    std::fs::remove_file(data.join("filler")).unwrap();
    let freed = std::time::Instant::now();
    eventually("/healthz to say ok again", || {
        http(api, "GET", "/healthz", None)
            .is_some_and(|(status, _)| status == 200)
            .then_some(())
    });
    println!(
        "healthy again {:?} after the filler was deleted",
        freed.elapsed()
    );
    // The create whose outcome was unknown may have been stored: a retry either creates it or is
    // refused as a conflict naming it, never a duplicate.
    let retry =
        json!({"name": refused_name, "on_demand": true, "http": {"url": target.url("/ok")}});
    let (status, body) = call(api, "POST", "/api/v1/jobs", Some(&retry));
    assert!(
        status == 201
            || (status == 409 && body["message"].as_str().unwrap().contains(&refused_name)),
        "retried create: {status} {body}"
    );
    acknowledged.push(refused_name.clone());
    let after =
        json!({"name": "after-recovery", "on_demand": true, "http": {"url": target.url("/ok")}});
    assert_eq!(call(api, "POST", "/api/v1/jobs", Some(&after)).0, 201);
    acknowledged.push("after-recovery".into());
    let (status, run) = call(api, "POST", "/api/v1/jobs/after-recovery/run", None);
    assert_eq!(status, 201, "{run}");
    let run_id = run["id"].as_u64().expect("instance id");
    eventually("the run after recovery to succeed", || {
        let (_, instance) = call(api, "GET", &format!("/api/v1/instances/{run_id}"), None);
        (instance["state"] == "succeeded").then_some(())
    });
    let log = server.log_text();
    for line in log.lines().filter(|l| l.contains("storage")) {
        println!("server log: {line}");
    }
    assert_eq!(
        log.matches("storage degraded").count(),
        1,
        "logged once:\n{log}"
    );
    assert_eq!(
        log.matches("storage recovered").count(),
        1,
        "logged once:\n{log}"
    );

    // Nothing acknowledged is lost across a SIGKILL restart.
    server.signal("KILL");
    let _ = server.child.wait();
    server = start_server(tmp.path(), &data, api, gossip, 2);
    for name in &acknowledged {
        let (status, body) = call(api, "GET", &format!("/api/v1/jobs/{name}"), None);
        assert_eq!(status, 200, "{name} after the restart: {body}");
    }
    let (status, _) = call(api, "GET", &format!("/api/v1/instances/{run_id}"), None);
    assert_eq!(status, 200, "instance {run_id} after the restart");
    drop(server);
}
