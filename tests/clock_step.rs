//! Wall-clock steps across a restart, made with libfaketime (`faketime`, installed by `.ci/run`):
//! the server runs an hour ahead, then at the real time (an hour backwards), and the other way
//! round. A per-second cron job must fire again within seconds of the restart, and no scheduled
//! time may fire twice (no worker runs them: a fire is the instance the scheduler creates, so
//! `max_concurrent` is raised to let them pile up). Skipped with a message when libfaketime is not installed.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::*;
use serde_json::{Value, json};
use shoal::model::now_ms;

const HOUR_MS: i64 = 3_600_000;

fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
        "/usr/local/lib/faketime/libfaketimeMT.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|path| path.exists())
}

struct Setup {
    dir: tempfile::TempDir,
    api: SocketAddr,
    gossip: SocketAddr,
    lib: PathBuf,
    starts: u32,
}

impl Setup {
    fn new() -> Option<Setup> {
        let Some(lib) = libfaketime() else {
            println!("SKIPPED clock_step: libfaketime not found (apt-get install faketime)");
            return None;
        };
        Some(Setup {
            dir: tempfile::tempdir().unwrap(),
            api: format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap(),
            gossip: format!("127.0.0.1:{}", free_udp_port()).parse().unwrap(),
            lib,
            starts: 0,
        })
    }

    /// Starts the server with its wall clock `offset_ms` from the real one (monotonic time is
    /// left real, as on a machine whose clock is stepped).
    fn start(&mut self, offset_ms: i64) -> Node {
        self.starts += 1;
        let data = self.dir.path().join("data").display().to_string();
        let (api, gossip) = (self.api.to_string(), self.gossip.to_string());
        let offset = format!("{:+}s", offset_ms / 1000);
        let lib = self.lib.display().to_string();
        let env: Vec<(&str, &str)> = if offset_ms == 0 {
            Vec::new()
        } else {
            vec![
                ("LD_PRELOAD", lib.as_str()),
                ("FAKETIME", offset.as_str()),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ]
        };
        let node = Node::spawn_with_env(
            &format!("server-{}", self.starts),
            self.dir.path(),
            &[
                "server",
                "--data-dir",
                &data,
                "--api",
                &api,
                "--gossip",
                &gossip,
            ],
            &env,
        );
        let api = self.api;
        eventually("the server to answer /healthz", || {
            http(api, "GET", "/healthz", None)
                .is_some_and(|(status, _)| status == 200)
                .then_some(())
        });
        node
    }

    fn fires(&self) -> Vec<i64> {
        let (status, text) = http(
            self.api,
            "GET",
            "/api/v1/instances?job=tick&limit=5000",
            None,
        )
        .expect("instances answer");
        assert_eq!(status, 200, "{text}");
        let list: Value = serde_json::from_str(&text).unwrap();
        let mut fires: Vec<i64> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["fire_at_ms"].as_i64().expect("fire_at_ms"))
            .collect();
        fires.sort();
        fires
    }

    fn create_tick(&self) {
        let job = json!({"name": "tick", "cron": "* * * * * *", "max_concurrent": 10000,
            "http": {"url": "http://127.0.0.1:9/never-run"}});
        let (status, text) =
            http(self.api, "POST", "/api/v1/jobs", Some(&job.to_string())).expect("create");
        assert_eq!(status, 201, "{text}");
    }
}

fn stop(mut node: Node) {
    node.signal("TERM");
    node.wait_exit(std::time::Duration::from_secs(30));
}

fn assert_no_fire_doubled(fires: &[i64]) {
    for pair in fires.windows(2) {
        assert_ne!(pair[0], pair[1], "scheduled time {} fired twice", pair[0]);
    }
}

fn log_of(dir: &Path, n: u32) -> String {
    std::fs::read_to_string(dir.join(format!("server-{n}.log"))).unwrap_or_default()
}

#[test]
fn an_hour_backwards_across_a_restart_does_not_silence_a_per_second_job() {
    let Some(mut setup) = Setup::new() else {
        return;
    };
    let server = setup.start(HOUR_MS);
    setup.create_tick();
    eventually("fires under the clock an hour ahead", || {
        (setup.fires().len() >= 3).then_some(())
    });
    let ahead = setup.fires();
    stop(server);
    assert!(
        ahead.iter().all(|t| *t > now_ms() + HOUR_MS - 60_000),
        "fires were made an hour ahead: {ahead:?}"
    );

    let restarted = Instant::now();
    let server = setup.start(0);
    let first = eventually("a fire at the real time after the step back", || {
        let now = now_ms();
        setup
            .fires()
            .into_iter()
            .find(|t| (now - 10_000..now + 10_000).contains(t))
    });
    println!(
        "first fire after an hour's step back: {:?} after the restart (at {first})",
        restarted.elapsed()
    );
    eventually("a few more fires", || {
        let now = now_ms();
        let recent = setup
            .fires()
            .into_iter()
            .filter(|t| (now - 30_000..now + 10_000).contains(t))
            .count();
        (recent >= 3).then_some(())
    });
    assert_no_fire_doubled(&setup.fires());
    let log = log_of(setup.dir.path(), 2);
    assert!(
        log.contains("brought back"),
        "the correction is logged:\n{log}"
    );
    stop(server);
}

#[test]
fn an_hour_forwards_across_a_restart_fires_once_for_the_missed_hour_then_on_time() {
    let Some(mut setup) = Setup::new() else {
        return;
    };
    let server = setup.start(0);
    setup.create_tick();
    eventually("fires at the real time", || {
        (setup.fires().len() >= 3).then_some(())
    });
    let before = setup.fires();
    stop(server);
    let last_before = *before.last().unwrap();

    let restarted = Instant::now();
    let server = setup.start(HOUR_MS);
    eventually("fires at the clock an hour ahead", || {
        let ahead = now_ms() + HOUR_MS;
        let on_time = setup
            .fires()
            .into_iter()
            .filter(|t| (ahead - 10_000..ahead + 10_000).contains(t))
            .count();
        (on_time >= 2).then_some(())
    });
    println!(
        "on time an hour ahead {:?} after the restart",
        restarted.elapsed()
    );
    let fires = setup.fires();
    assert_no_fire_doubled(&fires);
    // The default misfire policy, fire-once: the missed hour is one fire, not 3,600.
    let missed = fires
        .iter()
        .filter(|t| **t > last_before && **t < now_ms() + HOUR_MS - 60_000)
        .count();
    assert!(missed <= 1, "the missed hour fired {missed} times");
    stop(server);
}
