//! The examples stay true: every job file of `examples/jobs/` is valid, and
//! `examples/three-node.sh` brings up a working three-node cluster (server, two workers, the
//! example target) that runs a task, then stops every process on SIGTERM; so does
//! `examples/three-servers.sh` with a group of three servers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

fn example_jobs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jobs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_job_file_is_valid_and_covers_every_schedule_kind() {
    let mut kinds = Vec::new();
    for file in example_jobs() {
        let text = std::fs::read_to_string(&file).unwrap();
        let spec = shoal::spec::JobSpec::from_toml(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let def = spec
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        kinds.push(std::mem::discriminant(&def.schedule));
    }
    let channels = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/channels");
    for entry in std::fs::read_dir(channels).unwrap() {
        let file = entry.unwrap().path();
        let text = std::fs::read_to_string(&file).unwrap();
        shoal::alert::spec::ChannelSpec::from_toml(&text)
            .and_then(|spec| spec.validate())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
    kinds.sort_by_key(|k| format!("{k:?}"));
    kinds.dedup();
    assert_eq!(kinds.len(), 5, "one example per schedule kind");
}

/// The example target, built next to the `shoal` binary by `cargo test` (which builds examples).
fn example_target() -> PathBuf {
    let path = Path::new(BIN).parent().unwrap().join("examples/target");
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace`, which builds the examples",
        path.display()
    );
    path
}

/// A CLI command's JSON output against `server` (one URL or several), `None` while it fails.
fn cli_json_at(server: &str, args: &[&str]) -> Option<serde_json::Value> {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--server", server, "--output", "json"]);
    let out = cli(&all);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

#[test]
fn three_node_script_runs_a_task_and_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_tcp_port());
    let gossip = format!("127.0.0.1:{}", free_udp_port());
    let target = format!("127.0.0.1:{}", free_tcp_port());
    let log = dir.path().join("three-node.log");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/three-node.sh");
    let mut child = Command::new("bash")
        .arg(&script)
        .env("SHOAL", BIN)
        .env("TARGET", example_target())
        .env("SHOAL_API", &api)
        .env("SHOAL_GOSSIP", &gossip)
        .env("TARGET_ADDR", &target)
        .env("DATA", dir.path().join("data"))
        .env_remove("SHOAL_SERVER")
        .env_remove("SHOAL_TOKEN")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("three-node.err")).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://{api}");
    let cli_json = |args: &[&str]| cli_json_at(&url, args);
    let job_files = example_jobs().len();
    eventually(
        "the script's cluster: 2 live workers and every example job",
        || {
            let members = cli_json(&["members"])?;
            let live_workers = members
                .as_array()?
                .iter()
                .filter(|m| m["role"] == "worker" && m["state"] == "live")
                .count();
            let jobs = cli_json(&["job", "list"])?;
            (live_workers == 2 && jobs.as_array()?.len() == job_files).then_some(())
        },
    );
    let id = cli_json(&["job", "run", "rebuild-index"]).unwrap()["id"].to_string();
    let done = eventually(
        "rebuild-index to succeed against the example target",
        || {
            let instance = cli_json(&["instance", "show", &id])?;
            (instance["state"] == "succeeded").then_some(instance)
        },
    );
    assert_eq!(done["attempts"][0]["http_status"], 204);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = eventually("the script to exit", || child.try_wait().unwrap());
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(
        output.contains("cluster stopped"),
        "script output ({exited}):\n{output}"
    );
    for port in [&api, &target] {
        eventually(&format!("{port} to be free"), || {
            std::net::TcpListener::bind(port).ok().map(drop)
        });
    }
    // The target printed the request with the instance header.
    assert!(
        output.contains(&format!(
            "received method=PUT path=/status/204 instance={id}-1"
        )),
        "the target did not print the request:\n{output}"
    );
}

#[test]
fn three_servers_script_forms_a_group_that_runs_a_task_and_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let apis: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_tcp_port()))
        .collect();
    let gossips: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_udp_port()))
        .collect();
    let target = format!("127.0.0.1:{}", free_tcp_port());
    let log = dir.path().join("three-servers.log");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/three-servers.sh");
    let mut command = Command::new("bash");
    command
        .arg(&script)
        .env("SHOAL", BIN)
        .env("TARGET", example_target())
        .env("TARGET_ADDR", &target)
        .env("DATA", dir.path().join("data"))
        .env_remove("SHOAL_SERVER")
        .env_remove("SHOAL_TOKEN")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("three-servers.err")).unwrap());
    for k in 0..3 {
        command.env(format!("API{}", k + 1), &apis[k]);
        command.env(format!("GOSSIP{}", k + 1), &gossips[k]);
    }
    let mut child = command.spawn().unwrap();
    let servers: String = apis
        .iter()
        .map(|api| format!("http://{api}"))
        .collect::<Vec<_>>()
        .join(",");
    let cli_json = |args: &[&str]| cli_json_at(&servers, args);
    let job_files = example_jobs().len();
    eventually(
        "the script's group: three voting servers, one leading, and every example job",
        || {
            let group = cli_json(&["servers", "list"])?;
            let rows = group.as_array()?;
            let voters = rows.iter().filter(|r| r["voter"] == true).count();
            let leaders = rows.iter().filter(|r| r["leader"] == true).count();
            let jobs = cli_json(&["job", "list"])?;
            (voters == 3 && leaders == 1 && jobs.as_array()?.len() == job_files).then_some(())
        },
    );
    let id = cli_json(&["job", "run", "rebuild-index"]).unwrap()["id"].to_string();
    eventually("rebuild-index to succeed through the group", || {
        let instance = cli_json(&["instance", "show", &id])?;
        (instance["state"] == "succeeded").then_some(())
    });
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = eventually("the script to exit", || child.try_wait().unwrap());
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(
        output.contains("group stopped"),
        "script output ({exited}):\n{output}"
    );
    for port in apis.iter().chain([&target]) {
        eventually(&format!("{port} to be free"), || {
            std::net::TcpListener::bind(port).ok().map(drop)
        });
    }
}
