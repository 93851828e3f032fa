//! End-to-end: the console and the CLI over SSH, with the real OpenSSH client against `shoal up
//! --ssh`. Client keys are made with `ssh-keygen`; the console runs in a detached tmux pane read
//! with `capture-pane` and driven with `send-keys`, as in `console_tmux.rs`.
//!
//! What is shown: a key of `--ssh-authorized-keys` logs in and sees the workers and the
//! no-worker banner, switches views, sees the console redraw when the window is resized, runs a
//! job and finds it applied, and quits with its session gone; a key of `--ssh-readonly-keys` is
//! refused every action (console and command); an unknown key is refused; an `exec` command's
//! JSON is parsed; the host key is the same after a restart. The server's log names the key of
//! every login, refusal and action.
//!
//! tmux and the OpenSSH client are required (CI's `.ci/run` installs both): without them the test
//! fails, it does not skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        found,
        "`{program}` is not on PATH: this test drives the SSH console with the real OpenSSH \
         client under tmux; install it with `apt-get install -y {package}` (CI's .ci/run does)"
    );
}

/// A client key made by `ssh-keygen`, with its fingerprint as the server logs it.
struct Key {
    path: PathBuf,
    public: String,
    fingerprint: String,
}

fn keygen(dir: &Path, name: &str) -> Key {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("{name}@laptop"))
        .arg("-f")
        .arg(&path)
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    let listed = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(path.with_extension("pub"))
        .output()
        .expect("run ssh-keygen -l");
    // "256 SHA256:… name@laptop (ED25519)"
    let fingerprint = String::from_utf8_lossy(&listed.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("ssh-keygen -l: {listed:?}"))
        .to_string();
    Key {
        path,
        public,
        fingerprint,
    }
}

/// How a test reaches the SSH console.
struct Ssh {
    port: u16,
    known_hosts: PathBuf,
}

impl Ssh {
    /// The `ssh` arguments up to the destination: this key only, no agent, no user config, and
    /// the host key remembered under one alias whatever the port.
    fn args(&self, key: &Key, strict: &str) -> Vec<String> {
        [
            "-F",
            "/dev/null",
            "-p",
            &self.port.to_string(),
            "-i",
            &key.path.display().to_string(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "BatchMode=yes",
            "-o",
            &format!("StrictHostKeyChecking={strict}"),
            "-o",
            &format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o",
            "HostKeyAlias=shoal-under-test",
            "-o",
            "LogLevel=ERROR",
            "ops@127.0.0.1",
        ]
        .map(String::from)
        .to_vec()
    }

    /// `ssh … COMMAND`.
    fn exec(&self, key: &Key, command: &str) -> Output {
        Command::new("ssh")
            .args(self.args(key, "accept-new"))
            .arg(command)
            .output()
            .expect("run ssh")
    }

    /// The console in tmux: `ssh -t …`, then a line with its exit status.
    fn console(&self, key: &Key) -> Tmux {
        let args: Vec<String> = self
            .args(key, "accept-new")
            .iter()
            .map(|a| format!("'{a}'"))
            .collect();
        Tmux::start(&format!(
            "ssh -t {}; echo \"[ssh exited with status $?]\"; sleep 600",
            args.join(" ")
        ))
    }
}

/// A tmux server on its own socket with one detached 100×30 session; killed on drop (printing
/// the screen first when the test failed).
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let tmux = Tmux {
            socket: format!("shoal-ssh-test-{}-{nanos}", std::process::id()),
            session: "console".to_string(),
        };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            &tmux.session,
            "-x",
            "100",
            "-y",
            "30",
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-f", "/dev/null", "-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", &self.session]);
        assert!(out.status.success(), "tmux capture-pane: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn type_text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", &self.session, "-l", text]);
        assert!(out.status.success(), "tmux send-keys {text:?}");
    }

    fn press(&self, key: &str) {
        let out = self.run(&["send-keys", "-t", &self.session, key]);
        assert!(out.status.success(), "tmux send-keys {key}");
    }

    fn resize(&self, width: u16, height: u16) {
        let out = self.run(&[
            "resize-window",
            "-t",
            &self.session,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
        ]);
        assert!(out.status.success(), "tmux resize-window: {out:?}");
    }

    fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        eventually(&format!("the screen to show {what}"), || {
            let screen = self.screen();
            check(&screen).then_some(screen)
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let out = self.run(&["capture-pane", "-p", "-t", &self.session]);
            eprintln!(
                "--- screen at failure ---\n{}\n---",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let _ = self.run(&["kill-server"]);
    }
}

fn line_with<'a>(screen: &'a str, needles: &[&str]) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
}

/// The widest screen line, in characters (the console's frame spans the whole width).
fn width(screen: &str) -> usize {
    screen
        .lines()
        .map(|l| l.trim_end().chars().count())
        .max()
        .unwrap_or(0)
}

fn log_has(server: &Server, needles: &[&str]) -> bool {
    server
        .node
        .log_text()
        .lines()
        .any(|l| needles.iter().all(|n| l.contains(n)))
}

fn wait_log(server: &Server, what: &str, needles: &[&str]) {
    eventually(&format!("the server to log {what}"), || {
        log_has(server, needles).then_some(())
    });
}

fn instances_of(server: &Server, job: &str) -> usize {
    server
        .cli_json(&["instance", "list", "--job", job])
        .as_array()
        .map_or(0, Vec::len)
}

/// The `host_key=SHA256:…` the server logged when it started the SSH console.
fn logged_host_key(server: &Server) -> String {
    eventually("the server to log its SSH host key", || {
        server.node.log_text().lines().find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("host_key="))
                .map(str::to_string)
        })
    })
}

#[test]
fn console_and_commands_over_ssh() {
    require("tmux", "tmux");
    require("ssh", "openssh-client");
    require("ssh-keygen", "openssh-client");
    let dir = tempfile::tempdir().unwrap();
    let ops = keygen(dir.path(), "ops");
    let viewer = keygen(dir.path(), "viewer");
    let stranger = keygen(dir.path(), "stranger");
    let authorized = dir.path().join("authorized_keys");
    let readonly = dir.path().join("readonly_keys");
    std::fs::write(&authorized, format!("# operators\n{}", ops.public)).unwrap();
    std::fs::write(&readonly, &viewer.public).unwrap();

    let port = free_tcp_port();
    let listen = format!("127.0.0.1:{port}");
    let flags = [
        "--workers",
        "1",
        "--ssh",
        &listen,
        "--ssh-authorized-keys",
        authorized.to_str().unwrap(),
        "--ssh-readonly-keys",
        readonly.to_str().unwrap(),
    ];
    let server = Server::start_up(dir.path(), &flags);
    let host_key = logged_host_key(&server);
    let ssh = Ssh {
        port,
        known_hosts: dir.path().join("known_hosts"),
    };

    // Something to see and do: a job no worker can take, and one that runs when asked.
    let target = format!("{}/healthz", server.url);
    server.cli_json(&[
        "job",
        "add",
        "--name",
        "billing",
        "--on-demand",
        "--url",
        &target,
        "--tag",
        "billing",
        "--dispatch-timeout",
        "1h",
    ]);
    server.cli_json(&[
        "job",
        "add",
        "--name",
        "hello",
        "--on-demand",
        "--url",
        &target,
    ]);
    let queued = server.cli_json(&["job", "run", "billing"])["id"].clone();

    // exec: the CLI's JSON, from the server's own API.
    let out = ssh.exec(&ops, "instance list --state queued --output json");
    assert!(out.status.success(), "{out:?}");
    let listed: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON over ssh ({e}): {out:?}"));
    let first = &listed.as_array().expect("an array of instances")[0];
    assert_eq!(
        (&first["id"], &first["job_name"]),
        (&queued, &Value::from("billing"))
    );
    wait_log(
        &server,
        "the exec login",
        &["SSH login", &ops.fingerprint, "ops@laptop"],
    );
    wait_log(
        &server,
        "the command",
        &["SSH command", &ops.fingerprint, "instance list"],
    );

    // The host key was recorded on first contact and is the one the server logged.
    let known = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&ssh.known_hosts)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&known.stdout).contains(&host_key),
        "{host_key} not in {known:?}"
    );

    // A read-only key reads, and may not change anything.
    let out = ssh.exec(&viewer, "members --output json");
    assert!(out.status.success(), "{out:?}");
    let out = ssh.exec(&viewer, "job run hello");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("this key is read-only"), "{said}");
    wait_log(
        &server,
        "the refused command",
        &["SSH command refused", &viewer.fingerprint, "viewer@laptop"],
    );
    assert_eq!(instances_of(&server, "hello"), 0);

    // An unknown key gets nothing.
    let out = ssh.exec(&stranger, "members");
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    wait_log(
        &server,
        "the refused login",
        &["SSH login refused", &stranger.fingerprint],
    );
    // Neither do commands beyond the client's.
    let out = ssh.exec(&ops, "job apply --file /etc/passwd");
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // The console, as `shoal tui` shows it.
    let tmux = ssh.console(&ops);
    let screen = tmux.wait_for("the workers and the no-worker banner", |s| {
        s.contains("1 live 0 dead") && s.contains("NO WORKER CAN RUN QUEUED WORK")
    });
    assert!(
        line_with(&screen, &["1 queued for billing:"]).is_some(),
        "{screen}"
    );
    assert!(
        line_with(&screen, &["server-w1", "worker", "live"]).is_some(),
        "{screen}"
    );
    assert_eq!(width(&screen), 100, "{screen}");
    wait_log(
        &server,
        "the console login",
        &["SSH console opened", &ops.fingerprint],
    );

    // Switch views; then a bigger window is redrawn at its new size.
    tmux.type_text("2");
    tmux.wait_for("the jobs view", |s| {
        line_with(s, &["2:jobs"]).is_some() && line_with(s, &["hello", "on demand"]).is_some()
    });
    tmux.resize(140, 40);
    let screen = tmux.wait_for("the console at 140×40", |s| width(s) == 140);
    assert_eq!(screen.lines().count(), 40, "{screen}");
    assert!(
        screen.lines().nth(39).is_some_and(|l| !l.trim().is_empty()),
        "the last row is drawn:\n{screen}"
    );

    // Run `hello` from the console; the server has its instance.
    tmux.type_text("/hello");
    tmux.press("Enter");
    tmux.type_text("r");
    tmux.wait_for("the run confirmation", |s| s.contains("Run job hello"));
    tmux.type_text("y");
    tmux.wait_for("the queued run", |s| {
        line_with(s, &["run job hello: queued instance"]).is_some()
    });
    assert_eq!(instances_of(&server, "hello"), 1);
    wait_log(
        &server,
        "the action",
        &[
            "SSH console action",
            &ops.fingerprint,
            "ops@laptop",
            "run job hello",
        ],
    );

    // q ends the session: ssh exits 0, and the server closed it.
    tmux.type_text("q");
    tmux.wait_for("ssh to exit", |s| s.contains("[ssh exited with status 0]"));
    wait_log(
        &server,
        "the console's end",
        &["SSH console ended", &ops.fingerprint],
    );
    wait_log(
        &server,
        "the session's end",
        &["SSH session closed", &ops.fingerprint],
    );

    // A read-only console refuses the same action.
    let tmux = ssh.console(&viewer);
    tmux.wait_for("the read-only console", |s| s.contains("[read-only]"));
    tmux.type_text("2");
    tmux.type_text("/hello");
    tmux.press("Enter");
    tmux.type_text("r");
    tmux.wait_for("the refusal", |s| {
        s.contains("read-only: actions are disabled")
    });
    wait_log(
        &server,
        "the refused action",
        &[
            "SSH console action refused",
            &viewer.fingerprint,
            "viewer@laptop",
        ],
    );
    assert_eq!(instances_of(&server, "hello"), 1);
    drop(tmux);

    // Stopping the server closes an open console cleanly: the operator is told, ssh exits.
    let tmux = ssh.console(&ops);
    tmux.wait_for("the console", |s| s.contains("1 live 0 dead"));
    let mut server = server;
    server.node.signal("TERM");
    tmux.wait_for("the goodbye", |s| {
        s.contains("shoal: the server is stopping") && s.contains("[ssh exited with status 0]")
    });
    assert!(server.node.wait_exit(Duration::from_secs(60)).success());
    drop(tmux);

    // Restart on the same data directory: the same host key, which ssh checks strictly.
    drop(server);
    let server = Server::start_up(dir.path(), &flags);
    assert_eq!(logged_host_key(&server), host_key);
    let out = Command::new("ssh")
        .args(ssh.args(&ops, "yes"))
        .arg("members --output json")
        .output()
        .unwrap();
    assert!(out.status.success(), "the host key changed? {out:?}");
}
