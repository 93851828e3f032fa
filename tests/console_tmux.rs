//! End-to-end: `shoal tui` on a real terminal (a detached tmux pane, 100×30) against a real server
//! and worker. A job that fails against a local HTTP target answering 500 and a job whose tag no
//! worker carries give the console something to show; the test reads the screen with
//! `tmux capture-pane`, drives it with `tmux send-keys`, retries the failure from the console and
//! checks the server queued it.
//!
//! tmux is required (CI's `.ci/run` installs it): without it the test fails, it does not skip.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A local HTTP target that answers every request with a 500 and a body of `boom`.
fn failing_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the HTTP target");
    let addr = listener.local_addr().expect("target address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer_500(stream));
        }
    });
    format!("http://{addr}/fail")
}

/// Reads the request (headers and any body) first, so closing the connection never resets it
/// under the client's feet, then answers 500.
fn answer_500(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let header_end = loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let headers = String::from_utf8_lossy(&request[..header_end]).to_ascii_lowercase();
    let body_len: usize = headers
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < header_end + body_len {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.write_all(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\nboom",
    );
    let _ = stream.flush();
}

/// A tmux server on its own socket with one detached session; killed on drop (also when the test
/// panics, after printing the screen for the failure's context).
struct Tmux {
    socket: String,
    session: String,
}

/// Fails (does not skip) without tmux: CI installs it, and a skipped test proves nothing.
fn require_tmux() {
    match Command::new("tmux").arg("-V").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`tmux -V` failed ({}): this test drives `shoal tui` in tmux; install it with \
             `apt-get install -y tmux` (CI's .ci/run does)",
            out.status
        ),
        Err(error) => panic!(
            "tmux is not on PATH ({error}): this test drives `shoal tui` in tmux; install it \
             with `apt-get install -y tmux` (CI's .ci/run does)"
        ),
    }
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        require_tmux();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let tmux = Tmux {
            socket: format!("shoal-test-{}-{nanos}", std::process::id()),
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
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-f", "/dev/null", "-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// The visible screen, one line per row.
    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", &self.session]);
        assert!(
            out.status.success(),
            "tmux capture-pane failed (did the console exit?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", &self.session, "-l", text]);
        assert!(out.status.success(), "tmux send-keys {text:?}");
    }

    /// Presses a named key (`Enter`, `Escape`).
    fn press(&self, key: &str) {
        let out = self.run(&["send-keys", "-t", &self.session, key]);
        assert!(out.status.success(), "tmux send-keys {key}");
    }

    /// Waits until the screen satisfies `check` and returns it.
    fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        eventually(&format!("the console to show {what}"), || {
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
                "--- console screen at failure ---\n{}\n---",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let _ = self.run(&["kill-session", "-t", &self.session]);
        let _ = self.run(&["kill-server"]);
    }
}

/// The first screen line containing `needle`.
fn line_with<'a>(screen: &'a str, needle: &str) -> Option<&'a str> {
    row_with(screen, &[needle])
}

/// The first screen line containing every one of `needles`.
fn row_with<'a>(screen: &'a str, needles: &[&str]) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
}

fn wait_instance(server: &Server, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(&format!("instance {id} to be {what}"), || {
        let value = server.cli_json(&["instance", "show", id]);
        check(&value).then_some(value)
    })
}

#[test]
fn console_shows_trouble_and_retries_a_failure() {
    require_tmux();
    let dir = tempfile::tempdir().unwrap();
    let target = failing_target();
    let server = Server::start(dir.path(), &[]);
    let _worker = server.worker(dir.path(), "w1", &[]);
    eventually("worker w1 to be live", || {
        (server.member_state("w1").as_deref() == Some("live")).then_some(())
    });

    // A job that fails: the target answers 500.
    server.cli_json(&[
        "job",
        "add",
        "--name",
        "fails",
        "--on-demand",
        "--url",
        &target,
        "--retries",
        "0",
    ]);
    let failed_id = server.cli_json(&["job", "run", "fails"])["id"].to_string();
    wait_instance(&server, &failed_id, "failed", |i| i["state"] == "failed");

    // A job no live worker can take: nobody carries its tag, so it stays queued with a reason.
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
    let queued_id = server.cli_json(&["job", "run", "billing"])["id"].to_string();
    wait_instance(&server, &queued_id, "queued with a no-worker reason", |i| {
        i["state"] == "queued"
            && i["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("no live worker carries tag"))
    });

    let command = format!(
        "env -u SHOAL_TOKEN -u NO_COLOR '{}' tui --server {} --refresh 500ms; \
         echo \"[shoal tui exited with status $?]\"; sleep 600",
        env!("CARGO_BIN_EXE_shoal"),
        server.url
    );
    let tmux = Tmux::start(&command);

    // Header: which cluster and server, and its health.
    let screen = tmux.wait_for("the header with data", |s| {
        line_with(s, "SHOAL").is_some_and(|l| l.contains("updated")) && s.contains("1 live 0 dead")
    });
    let header = line_with(&screen, "SHOAL").unwrap();
    assert!(
        header.contains(&format!(" {} ", shoal::node::DEFAULT_CLUSTER)),
        "{screen}"
    );
    assert!(header.contains(&server.url), "{screen}");

    // The no-worker banner: the stuck job, why, and the command that fixes it.
    let screen = tmux.wait_for("the no-worker banner", |s| {
        s.contains("NO WORKER CAN RUN QUEUED WORK")
    });
    let stuck = line_with(&screen, "1 queued for billing:").unwrap_or_else(|| panic!("{screen}"));
    assert!(
        stuck.contains(r#"no live worker carries tag "billing" (1 live worker(s): w1)"#),
        "{screen}"
    );
    let fix = format!("fix: shoal worker --join {} --tag billing", server.gossip);
    assert!(line_with(&screen, &fix).is_some(), "{fix:?} in\n{screen}");
    // The workers view lists the server and the worker.
    assert!(
        row_with(&screen, &["w1 ", "worker", "live"]).is_some(),
        "{screen}"
    );
    assert!(
        row_with(&screen, &["server ", "server", "live"]).is_some(),
        "{screen}"
    );

    // `:instances` lists both runs, with the queued one's reason.
    tmux.type_text(":instances");
    tmux.press("Enter");
    tmux.wait_for("the instances view", |s| {
        row_with(s, &["STATUS", "REASON"]).is_some()
            && row_with(
                s,
                &[
                    &format!("│{queued_id} "),
                    "billing",
                    "queued",
                    "no live worker",
                ],
            )
            .is_some()
            && row_with(s, &[&format!("│{failed_id} "), "fails", "failed", "w1"]).is_some()
    });

    // `4`: the failures view shows the failed run with the error that matters.
    tmux.type_text("4");
    let screen = tmux.wait_for("the failures view", |s| {
        row_with(s, &["ERROR", "TRY"]).is_some()
    });
    let row = row_with(&screen, &[&format!(" {failed_id} "), "fails"])
        .unwrap_or_else(|| panic!("no row for instance {failed_id}:\n{screen}"));
    assert!(row.contains("w1"), "{screen}");
    assert!(row.contains("expected status 2xx, got 500"), "{screen}");

    // Filter to the job, retry the selected failure, confirm.
    tmux.type_text("/fails");
    tmux.press("Enter");
    tmux.wait_for("the filter in the failures view", |s| {
        line_with(s, "4:failures").is_some_and(|l| l.contains("/fails"))
    });
    tmux.type_text("R");
    tmux.wait_for("the retry confirmation", |s| {
        s.contains(&format!("Retry instance {failed_id}?")) && s.contains("[y] yes")
    });
    tmux.type_text("y");
    let done = format!("retry instance {failed_id}: queued instance ");
    let screen = tmux.wait_for("the queued retry in the status line", |s| {
        line_with(s, &done).is_some_and(|l| l.contains("of job fails"))
    });
    let status = line_with(&screen, &done).unwrap();
    let retry_id: u64 = status
        .split(&done)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no instance id in {status:?}"));

    // The server has the new instance of the job.
    let listed = server.cli_json(&["instance", "list", "--job", "fails"]);
    let ids: Vec<u64> = listed
        .as_array()
        .expect("instance list is an array")
        .iter()
        .filter_map(|i| i["id"].as_u64())
        .collect();
    assert!(ids.contains(&retry_id), "{retry_id} not in {ids:?}");
    assert_eq!(ids.len(), 2, "{listed}");
    assert_ne!(retry_id.to_string(), failed_id);

    // `q` quits cleanly.
    tmux.type_text("q");
    tmux.wait_for("the console to exit with status 0", |s| {
        s.contains("[shoal tui exited with status 0]")
    });
}

/// `shoal demo` on a real terminal: the console opens on the demo cluster, the banner explains
/// the unplaceable `gpu-render` job with its fix, the failing job shows in the failures view, and
/// `q` stops every node: the process exits 0 and its API port is free again.
#[test]
fn demo_opens_the_console_and_q_stops_everything() {
    require_tmux();
    let api = format!("127.0.0.1:{}", free_tcp_port());
    let command = format!(
        "env -u NO_COLOR '{}' demo --api {api}; echo \"[shoal demo exited with status $?]\"; \
         sleep 600",
        env!("CARGO_BIN_EXE_shoal"),
    );
    let tmux = Tmux::start(&command);
    let screen = tmux.wait_for("the demo's workers and the no-worker banner", |s| {
        s.contains("2 live 0 dead") && s.contains("gpu-render") && s.contains("--tag gpu")
    });
    assert!(row_with(&screen, &["demo-w2", "eu"]).is_some(), "{screen}");
    assert!(
        line_with(&screen, "fix: shoal worker --join 127.0.0.1:").is_some(),
        "{screen}"
    );

    tmux.press("4");
    tmux.wait_for("the failing sample job in the failures view", |s| {
        row_with(s, &["flaky-export", "expected status 200, got 500"]).is_some()
    });

    tmux.press("q");
    tmux.wait_for("the demo to exit cleanly", |s| {
        s.contains("[shoal demo exited with status 0]")
    });
    assert!(
        std::net::TcpListener::bind(&api).is_ok(),
        "the demo's API {api} is still bound after q"
    );
}

/// Against a server with a token: a console without it says what is wrong and how to fix it; a
/// console given the token through `SHOAL_TOKEN` shows the cluster.
#[test]
fn console_sends_the_token_and_explains_a_missing_one() {
    require_tmux();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_token(dir.path(), "console-s3cret");
    let bin = env!("CARGO_BIN_EXE_shoal");

    let without = Tmux::start(&format!(
        "env -u SHOAL_TOKEN '{bin}' tui --server {}; sleep 600",
        server.url
    ));
    without.wait_for("the missing-token explanation", |s| {
        s.contains("missing or wrong token: pass --token or set SHOAL_TOKEN")
    });

    let with = Tmux::start(&format!(
        "env SHOAL_TOKEN=console-s3cret '{bin}' tui --server {}; sleep 600",
        server.url
    ));
    let screen = with.wait_for("the cluster's data", |s| {
        line_with(s, "SHOAL").is_some_and(|l| l.contains("updated"))
    });
    assert!(row_with(&screen, &["server", "live"]).is_some(), "{screen}");
    assert!(!screen.contains("wrong token"), "{screen}");
}
