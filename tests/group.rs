//! A Raft group of three real server processes on loopback, tried the ways a group fails: a
//! leader paused past an election and resumed, two of three servers down, a follower wiped and
//! rejoined, a server added and removed. (The leader SIGKILLed under load is the crash loop's
//! `a_group_of_three_survives_its_leader_killed_under_load`.)

mod common;

use std::collections::HashMap;

use common::group::*;
use common::*;
use serde_json::{Value, json};

/// Creates an on-demand job at the leader.
fn on_demand(group: &Group, name: &str, url: &str) {
    group.call(
        "POST",
        "/api/v1/jobs",
        Some(
            &json!({ "name": name, "on_demand": true, "max_concurrent": 10000,
                     "http": { "url": url, "timeout": "5s" } })
            .to_string(),
        ),
    );
}

/// Every instance, as the leader lists them.
fn instances(group: &Group) -> Vec<Value> {
    group
        .call("GET", "/api/v1/instances?limit=10000", None)
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Every instance as `server` itself lists them (a follower answers from its own store).
fn instances_at(server: &Crashable) -> Vec<Value> {
    server
        .call("GET", "/api/v1/instances?limit=10000", None)
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The error code and message of a refused call.
fn refusal(status_and_body: Option<(u16, String)>) -> Option<(u16, String, String)> {
    let (status, body) = status_and_body?;
    let body: Value = serde_json::from_str(&body).ok()?;
    Some((
        status,
        body["error"].as_str()?.to_string(),
        body["message"].as_str()?.to_string(),
    ))
}

#[test]
fn a_paused_leader_steps_down_on_waking_and_none_of_its_work_runs_twice() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let mut group = Group::start(dir.path());
    let _worker = Node::spawn(
        "w1",
        dir.path(),
        &[
            "worker",
            "--join",
            &group.join_addr(),
            "--id",
            "w1",
            "--capacity",
            "8",
        ],
    );
    on_demand(&group, "slow", &target.url("/slow?ms=300"));
    let old = group.leader();
    let old_api = group.servers[old].api;
    for _ in 0..20 {
        call_at(old_api, "POST", "/api/v1/jobs/slow/run", None);
    }
    // Paused with work in flight and in its outboxes.
    group.servers[old].node.as_ref().unwrap().pause();
    let new = group.leader();
    assert_ne!(new, old, "a paused server cannot lead");
    let new_api = group.servers[new].api;
    for _ in 0..20 {
        call_at(new_api, "POST", "/api/v1/jobs/slow/run", None);
    }
    group.servers[old].node.as_ref().unwrap().signal("CONT");
    // Awake again, it hears of the newer term and follows.
    let term = eventually("the woken server to follow the new term", || {
        let views = group.views();
        let (_, woken) = views.iter().find(|(k, _)| *k == old)?;
        let (_, leader) = views.iter().find(|(k, _)| *k == new)?;
        (woken["role"] == "follower" && woken["term"] == leader["term"])
            .then(|| leader["term"].as_u64().unwrap())
    });
    let finished = eventually("all 40 runs to succeed", || {
        let all = instances(&group);
        (all.len() == 40 && all.iter().all(|i| i["state"] == "succeeded")).then_some(all)
    });
    // Each attempt reached the target once: no assignment of the paused leader ran beside the
    // new leader's (a run whose attempt timed out on the paused leader shows a second attempt,
    // never two deliveries of one).
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for request in target.target.received() {
        if let Some(key) = request.instance {
            *deliveries.entry(key).or_default() += 1;
        }
    }
    let doubled: Vec<_> = deliveries.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "attempts delivered twice: {doubled:?}");
    for instance in &finished {
        let attempt = instance["attempts"].as_array().unwrap().last().unwrap();
        let key = format!("{}-{}", instance["id"], attempt["number"]);
        assert!(
            deliveries.contains_key(&key),
            "{key} never reached the target"
        );
    }
    // Its term's work (scheduler, dispatcher) stopped: it says so once the tasks have ended.
    eventually("the woken leader to stop its term's work", || {
        let log = group.servers[old].node.as_ref()?.log_text();
        log.contains("stopped the leader's work").then_some(())
    });
    println!("the paused leader stepped down to term {term}; 40 runs, each delivered once");
    group.kill_all_servers();
}

#[test]
fn without_a_quorum_writes_are_refused_saying_how_many_servers_are_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let mut group = Group::start(dir.path());
    on_demand(&group, "job", "http://127.0.0.1:9/");
    // Two followers down: the leader alone has no quorum.
    let leader = group.leader();
    for k in (0..3).filter(|k| *k != leader) {
        group.servers[k].kill();
    }
    let api = group.servers[leader].api;
    let (_, code, message) = eventually(
        "the lone leader to refuse writes for want of a quorum",
        || {
            refusal(http(api, "POST", "/api/v1/jobs/job/run", None))
                .filter(|(status, code, _)| *status == 503 && code == "no_quorum")
        },
    );
    assert!(
        message.contains("1 of 3 servers reachable, 2 needed"),
        "{code}: {message}"
    );
    let (status, jobs) = http(api, "GET", "/api/v1/jobs", None).unwrap();
    assert_eq!(status, 200, "reads still work without a quorum: {jobs}");
    assert!(jobs.contains("\"job\""), "{jobs}");
    // Back up: writes resume.
    for k in (0..3).filter(|k| *k != leader) {
        group.servers[k].start();
    }
    group.leader();
    eventually("writes to resume with the quorum back", || {
        http(api, "POST", "/api/v1/jobs/job/run", None).filter(|(status, _)| *status == 201)
    });

    // The leader and a follower down: the last follower has no leader to send writes to.
    let leader = group.leader();
    let survivor = (0..3).find(|k| *k != leader).unwrap();
    for k in (0..3).filter(|k| *k != survivor) {
        group.servers[k].kill();
    }
    let api = group.servers[survivor].api;
    let (_, code, message) = eventually("the lone follower to refuse writes: no leader", || {
        refusal(http(api, "POST", "/api/v1/jobs/job/run", None))
            .filter(|(status, code, _)| *status == 503 && code == "no_leader")
    });
    assert!(
        message.contains("1 of 3 servers reachable, 2 needed"),
        "{code}: {message}"
    );
    let cluster: Value =
        serde_json::from_str(&http(api, "GET", "/api/v1/cluster", None).unwrap().1).unwrap();
    assert_eq!(cluster["group"]["reachable"], 1, "{cluster}");
    let (status, _) = http(api, "GET", "/api/v1/instances", None).unwrap();
    assert_eq!(status, 200, "reads still work without a leader");
    // The console (its data source, as `shoal tui` and the SSH console use it) says so in its
    // header.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client =
        shoal::client::ApiClient::new(&format!("http://{api}"), None, &Default::default()).unwrap();
    let mut source = shoal::client::console::ApiSource::new(client, runtime.handle().clone());
    let snapshot = shoal_tui::DataSource::refresh(&mut source).unwrap();
    assert!(
        snapshot
            .group_trouble
            .as_deref()
            .is_some_and(|t| t.starts_with("NO LEADER: 1 of 3 servers reachable")),
        "{:?}",
        snapshot.group_trouble
    );
    assert!(
        snapshot
            .group
            .as_deref()
            .is_some_and(|g| !g.starts_with("leader")),
        "{:?}",
        snapshot.group
    );
    for k in (0..3).filter(|k| *k != survivor) {
        group.servers[k].start();
    }
    group.leader();
    eventually("writes to resume through the follower", || {
        http(api, "POST", "/api/v1/jobs/job/run", None).filter(|(status, _)| *status == 201)
    });
    group.kill_all_servers();
}

#[test]
fn a_wiped_follower_catches_up_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut group = Group::start_with(dir.path(), &["--raft-snapshot-every", "64"]);
    // No worker: runs stay queued, each one a log entry.
    on_demand(&group, "job", "http://127.0.0.1:9/");
    let leader = group.leader();
    let api = group.servers[leader].api;
    for _ in 0..50 {
        call_at(api, "POST", "/api/v1/jobs/job/run", None);
    }
    let follower = (0..3).find(|k| *k != leader).unwrap();
    group.servers[follower].kill();
    std::fs::remove_dir_all(&group.servers[follower].data).unwrap();
    // Enough entries for the leader to snapshot and compact its log past everything the wiped
    // server would need.
    for _ in 0..300 {
        call_at(api, "POST", "/api/v1/jobs/job/run", None);
    }
    group.servers[follower].start();
    // The leader's dispatcher keeps updating queued instances (their reasons), so the two are
    // compared as they are at the same moment, not against an earlier listing.
    eventually(
        "the wiped follower to hold every instance as the leader does",
        || {
            let expected = instances(&group);
            (expected.len() == 350 && instances_at(&group.servers[follower]) == expected)
                .then_some(())
        },
    );
    let log = group.servers[follower].node.as_ref().unwrap().log_text();
    assert!(
        log.contains("installed a snapshot of the group's state from the leader"),
        "the wiped follower caught up without a snapshot:\n{log}"
    );
    // The queue's counts on the follower (from its own store) are the leader's (from its
    // dispatcher's memory): why each instance waits is a replicated command like any change.
    let counts = |server: &Crashable| {
        let mut queue = server.call("GET", "/api/v1/queue", None);
        for volatile in ["at_ms", "oldest"] {
            queue.as_object_mut().map(|q| q.remove(volatile));
        }
        let job = server.call("GET", "/api/v1/jobs", None)[0].clone();
        (queue, job["queued"].clone())
    };
    eventually("the follower to count the queue as the leader does", || {
        let on_leader = counts(&group.servers[leader]);
        (on_leader.0["unplaceable"]["queued"] == 350
            && on_leader.1 == 350
            && counts(&group.servers[follower]) == on_leader)
            .then_some(())
    });
    group.kill_all_servers();
}

#[test]
fn a_server_is_added_to_the_group_and_removed_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut group = Group::start(dir.path());
    on_demand(&group, "job", "http://127.0.0.1:9/");
    let mut fourth = Crashable::new(dir.path(), "s4");
    fourth.extra = vec![
        "--id".into(),
        "s4".into(),
        "--bootstrap-expect".into(),
        "3".into(),
        "--join".into(),
        group.join_addr(),
    ];
    fourth.start();
    // Changes sent to a follower are handed to the leader.
    let leader = group.leader();
    let follower = (0..3).find(|k| *k != leader).unwrap();
    let follower_url = format!("http://{}", group.servers[follower].api);
    // A client given several servers moves to the leader once a follower names it; one not
    // given the leader's URL stays where it was sent (its token goes nowhere else).
    let leader_url = format!("http://{}", group.servers[leader].api);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let both = format!("{follower_url},{leader_url}");
    for (servers, expected) in [(&both, &leader_url), (&follower_url, &follower_url)] {
        let client = shoal::client::ApiClient::new(servers, None, &Default::default()).unwrap();
        assert_eq!(client.server_url(), follower_url);
        runtime.block_on(client.run_job("job")).unwrap();
        assert_eq!(
            client.server_url(),
            expected,
            "the server a client of {servers} calls after a follower answered"
        );
    }
    let servers = |args: &[&str]| -> Value {
        let mut all = vec!["servers"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", &follower_url, "--output", "json"]);
        let out = cli(&all);
        assert!(
            out.status.success(),
            "shoal {all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // Gossip must have brought s4 to the leader before it can be added.
    eventually("s4 to be seen in gossip", || {
        let out = cli(&["members", "--server", &follower_url, "--output", "json"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("\"s4\"")
            .then_some(())
    });
    let added = servers(&["add", "s4"]);
    let voters = |rows: &Value| {
        rows.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["voter"] == true)
            .count()
    };
    assert_eq!(voters(&added), 4, "{added}");
    // The new server applies the group's log: it lists the job.
    eventually("s4 to hold the group's state", || {
        http(fourth.api, "GET", "/api/v1/jobs/job", None).filter(|(status, _)| *status == 200)
    });
    let removed = servers(&["remove", "s4"]);
    assert_eq!(voters(&removed), 3, "{removed}");
    assert!(
        !removed.to_string().contains("\"s4\""),
        "s4 still listed after its removal: {removed}"
    );
    fourth.kill();
    // The three go on committing.
    group.call("POST", "/api/v1/jobs/job/run", None);
    group.kill_all_servers();
}
