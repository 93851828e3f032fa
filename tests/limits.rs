//! End-to-end limits: the server's retention flags bound the instance history it keeps, and never
//! touch an unfinished instance. (Body size and report text caps are in tests/bad_input.rs and
//! tests/worker_faults.rs; the redb file-size bound is a store unit test.)

mod common;

use common::*;

#[test]
fn retention_keeps_the_newest_finished_instances_per_job_and_every_unfinished_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--retain-per-job",
            "3",
            "--retain-age",
            "forever",
            "--retain-sweep-every",
            "200ms",
        ],
    );
    server.cli_json(&[
        "job",
        "add",
        "--name",
        "history",
        "--on-demand",
        "--max-concurrent",
        "100",
        "--url",
        "http://127.0.0.1:9/",
    ]);
    // Ten instances: the oldest stays unfinished (no worker), the other nine end cancelled.
    let ids: Vec<String> = (0..10)
        .map(|_| server.cli_json(&["job", "run", "history"])["id"].to_string())
        .collect();
    for id in &ids[1..] {
        server.cli_json(&["instance", "cancel", id]);
    }
    let mut expected: Vec<String> = ids[7..].iter().rev().cloned().collect();
    expected.push(ids[0].clone());
    eventually("the sweeper to keep 3 finished + 1 unfinished", || {
        let listed = server.cli_json(&["instance", "list", "--job", "history"]);
        let listed: Vec<String> = listed
            .as_array()?
            .iter()
            .map(|i| i["id"].to_string())
            .collect();
        (listed == expected).then_some(())
    });
    let oldest = server.cli_json(&["instance", "show", &ids[0]]);
    assert_eq!(oldest["state"], "queued");
}
