//! Shared harness of the end-to-end tests: real `shoal` processes on 127.0.0.1, free ports, a
//! temp data dir, and polling helpers with generous deadlines (no timing assertions here; timing
//! goals live in the benchmarks). A test waits for what happened (`eventually`), never for a time
//! to pass: CI runs test binaries side by side on two cores. `SHOAL_TEST_KEEP_LOGS=DIR` keeps the
//! process logs of a failing test.
#![allow(dead_code)]

pub mod group;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_shoal");

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free tcp port")
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free udp port")
}

/// A child process that is killed when dropped, with its output captured in a log file.
pub struct Node {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Node {
    pub fn spawn(name: &str, dir: &Path, args: &[&str]) -> Node {
        Node::spawn_with_env(name, dir, args, &[])
    }

    pub fn spawn_with_env(name: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Node {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let err = file.try_clone().expect("log file");
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_remove("SHOAL_SERVER")
            .env_remove("SHOAL_TOKEN")
            .env("SHOAL_LOG", "info,shoal=debug")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("spawn shoal");
        Node {
            name: name.to_string(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    /// Sends SIGSTOP and waits until every thread of the process is stopped: `kill` returns
    /// before a busy machine has stopped them, and meanwhile the process still answers.
    pub fn pause(&self) {
        self.signal("STOP");
        wait_stopped_node(self);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit on its own; panics with its log after the deadline.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > within {
                panic!("{} did not exit; log:\n{}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.keep_log();
        }
    }
}

impl Node {
    /// With `SHOAL_TEST_KEEP_LOGS=DIR`, a failing test's process logs are copied to
    /// `DIR/<test>/<ms>-<name>.log` (its temp dir, and the logs in it, are removed).
    fn keep_log(&self) {
        let Some(keep) = std::env::var_os("SHOAL_TEST_KEEP_LOGS") else {
            return;
        };
        let test = std::thread::current()
            .name()
            .unwrap_or("test")
            .replace("::", "-");
        let dir = Path::new(&keep).join(test);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let kept = dir.join(format!("{stamp}-{}.log", self.name));
        if let Err(error) =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::copy(&self.log, &kept))
        {
            eprintln!("could not keep {}: {error}", self.log.display());
        }
    }
}

/// A running server with its addresses.
pub struct Server {
    pub node: Node,
    pub api: SocketAddr,
    pub gossip: SocketAddr,
    pub url: String,
}

impl Server {
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Server::spawn("server", dir, extra, None)
    }

    /// A server whose API and worker RPC require `token`.
    pub fn start_with_token(dir: &Path, token: &str) -> Server {
        Server::spawn("server", dir, &["--token", token], Some(token))
    }

    /// A server started with `extra` flags that close its API (scoped tokens, say); `probe` is a
    /// token that may read, used to see it answer.
    pub fn start_closed(dir: &Path, extra: &[&str], probe: &str) -> Server {
        Server::spawn("server", dir, extra, Some(probe))
    }

    /// `shoal up`: a server with embedded workers in one process.
    pub fn start_up(dir: &Path, extra: &[&str]) -> Server {
        Server::spawn("up", dir, extra, None)
    }

    fn spawn(command: &str, dir: &Path, extra: &[&str], token: Option<&str>) -> Server {
        let api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let gossip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let data = dir.join("data");
        let mut args = vec![
            command.to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--api".into(),
            api.to_string(),
            "--gossip".into(),
            gossip.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let node = Node::spawn("server", dir, &args);
        let server = Server {
            node,
            api,
            gossip,
            url: format!("http://{api}"),
        };
        eventually(&format!("server at {} to answer", server.url), || {
            let mut probe = vec!["members", "--server", &server.url, "--output", "json"];
            if let Some(token) = token {
                probe.extend_from_slice(&["--token", token]);
            }
            cli(&probe).status.success().then_some(())
        });
        server
    }

    pub fn worker(&self, dir: &Path, name: &str, extra: &[&str]) -> Node {
        let join = self.gossip.to_string();
        let mut args = vec!["worker", "--join", &join, "--id", name];
        args.extend_from_slice(extra);
        Node::spawn(name, dir, &args)
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", &self.url]);
        cli(&all)
    }

    /// Runs a CLI command that must succeed and print JSON.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--output", "json"]);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "shoal {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "shoal {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub fn member_state(&self, id: &str) -> Option<String> {
        let members = self.cli_json(&["members"]);
        members.as_array()?.iter().find_map(|m| {
            (m["id"] == id).then(|| m["state"].as_str().unwrap_or_default().to_string())
        })
    }
}

pub fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SHOAL_SERVER")
        .env_remove("SHOAL_TOKEN")
        .output()
        .expect("run shoal")
}

/// Polls `check` until it yields a value, for up to 60 s (generous: CI machines are busy).
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        if start.elapsed() > Duration::from_secs(60) {
            panic!("timed out after 60s waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), for tests that must survive
/// a server dying mid-request. `None` when the connection failed or the answer was cut off.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<(u16, String)> {
    http_within(addr, method, path, body, Duration::from_secs(60))
}

/// [`http`], giving up on an answer after `within` (a stopped process accepts connections but
/// never answers).
pub fn http_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    within: Duration,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(within)).ok()?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8(response).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: Option<usize> = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    });
    // A response cut short by a crash is no answer at all.
    if length.is_some_and(|n| n != body.len()) {
        return None;
    }
    Some((status, body.to_string()))
}

/// The local HTTP target (`shoal::local::target`), served from its own runtime thread, so it outlives
/// any server or worker the test kills.
pub struct TestTarget {
    pub target: shoal::local::target::Target,
    _runtime: tokio::runtime::Runtime,
}

impl TestTarget {
    pub fn start() -> TestTarget {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let target = runtime
            .block_on(shoal::local::target::Target::start_keeping_all(
                "127.0.0.1:0".parse().unwrap(),
            ))
            .unwrap();
        TestTarget {
            target,
            _runtime: runtime,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.target.url(path)
    }
}

/// Waits until every thread of `node` is stopped by SIGSTOP, so that it does nothing more.
pub fn wait_stopped_node(node: &Node) {
    let tasks = format!("/proc/{}/task", node.pid());
    eventually(&format!("{} to be stopped", node.name), || {
        let threads = std::fs::read_dir(&tasks).ok()?;
        let mut states = threads.map(|thread| {
            let stat = std::fs::read_to_string(thread.ok()?.path().join("stat")).ok()?;
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state)
        });
        states
            .all(|state| state.as_deref() == Some("T"))
            .then_some(())
    });
}
