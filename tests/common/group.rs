//! Servers that tests kill and restart on the same data dir and ports: one alone, or three in a
//! Raft group, with the helpers to find the group's leader.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use shoal::model::now_ms;

use super::*;

/// A server process, restartable on the same data dir and ports.
pub struct Crashable {
    pub name: String,
    pub dir: PathBuf,
    pub data: PathBuf,
    pub api: SocketAddr,
    pub gossip: SocketAddr,
    /// Flags beyond the common ones (a group's, or the command recording).
    pub extra: Vec<String>,
    pub node: Option<Node>,
    pub starts: usize,
}

impl Crashable {
    pub fn new(dir: &Path, name: &str) -> Crashable {
        Crashable {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            data: dir.join(format!("data-{name}")),
            api: format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap(),
            gossip: format!("127.0.0.1:{}", free_udp_port()).parse().unwrap(),
            extra: Vec::new(),
            node: None,
            starts: 0,
        }
    }

    /// Starts the server and waits until its API answers; returns when it did (ms).
    pub fn start(&mut self) -> i64 {
        self.starts += 1;
        let (data, api, gossip) = (
            self.data.display().to_string(),
            self.api.to_string(),
            self.gossip.to_string(),
        );
        let name = format!("{}-{}", self.name, self.starts);
        let mut args = vec![
            "server",
            "--data-dir",
            &data,
            "--api",
            &api,
            "--gossip",
            &gossip,
            "--retain-age",
            "forever",
            "--retain-per-job",
            "0",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        let node = Node::spawn(&name, &self.dir, &args);
        self.node = Some(node);
        let api = self.api;
        let started = Instant::now();
        loop {
            if http(api, "GET", "/healthz", None).is_some_and(|(status, _)| status == 200) {
                return now_ms();
            }
            if let Some(node) = self.node.as_mut()
                && let Ok(Some(status)) = node.child.try_wait()
            {
                panic!(
                    "server start {} exited with {status}:\n{}",
                    self.starts,
                    node.log_text()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "server start {} never answered",
                self.starts
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut node) = self.node.take() {
            node.signal("KILL");
            let _ = node.child.wait();
        }
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        call_at(self.api, method, path, body)
    }
}

pub fn call_at(api: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Value {
    let (status, text) =
        http(api, method, path, body).unwrap_or_else(|| panic!("{method} {path}: no answer"));
    assert!(status < 300, "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
}

/// Three servers forming a Raft group.
pub struct Group {
    pub servers: Vec<Crashable>,
}

impl Group {
    pub fn start(dir: &Path) -> Group {
        Group::start_with(dir, &[])
    }

    /// Three servers started with `extra` flags beside the group's.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Group {
        let mut servers: Vec<Crashable> = ["s1", "s2", "s3"]
            .iter()
            .map(|name| Crashable::new(dir, name))
            .collect();
        let seed = servers[0].gossip.to_string();
        for server in &mut servers {
            server.extra = vec![
                "--id".into(),
                server.name.clone(),
                "--bootstrap-expect".into(),
                "3".into(),
                "--join".into(),
                seed.clone(),
            ];
            server.extra.extend(extra.iter().map(|s| s.to_string()));
        }
        for server in &mut servers {
            server.start();
        }
        let group = Group { servers };
        group.leader();
        group
    }

    /// Each live server's view of the group (`/api/v1/cluster`'s `group`).
    pub fn views(&self) -> Vec<(usize, Value)> {
        self.servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.node.is_some())
            .filter_map(|(k, s)| {
                let (status, body) = http_within(
                    s.api,
                    "GET",
                    "/api/v1/cluster",
                    None,
                    Duration::from_secs(2),
                )?;
                (status == 200).then_some(())?;
                let cluster: Value = serde_json::from_str(&body).ok()?;
                Some((k, cluster["group"].clone()))
            })
            .collect()
    }

    /// The leader, once it has applied at least what every live server has, and every live
    /// server agrees it leads (so no stale read is taken for the truth).
    pub fn leader(&self) -> usize {
        eventually("a leader that has applied everything", || {
            let views = self.views();
            let leaders: Vec<&(usize, Value)> = views
                .iter()
                .filter(|(_, g)| g["role"] == "leader")
                .collect();
            let [(leader, view)] = leaders.as_slice() else {
                return None;
            };
            let applied = view["applied"].as_u64()?;
            let agreed = views.iter().all(|(_, g)| {
                g["term"] == view["term"] && g["applied"].as_u64().is_some_and(|a| a <= applied)
            });
            agreed.then_some(*leader)
        })
    }

    /// A call that must succeed, at the leader (retried while the group elects one).
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        eventually(&format!("{method} {path} answered by the leader"), || {
            let leader = &self.servers[self.leader()];
            let (status, text) = http(leader.api, method, path, body)?;
            if status == 503 {
                return None;
            }
            assert!(status < 300, "{method} {path}: {status} {text}");
            Some(
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}")),
            )
        })
    }

    /// The gossip address workers (and new servers) join.
    pub fn join_addr(&self) -> String {
        self.servers[0].gossip.to_string()
    }

    pub fn kill_all_servers(&mut self) {
        for server in &mut self.servers {
            server.kill();
        }
    }
}
