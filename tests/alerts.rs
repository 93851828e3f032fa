//! Alerts and chains end to end, with real receivers on 127.0.0.1: a webhook receiver that
//! counts and verifies signatures, a real SMTP server (Python's aiosmtpd: plain, and requiring
//! STARTTLS and AUTH), a receiver that is down then up, a server SIGKILLed before its alert was
//! delivered, and a chain of three jobs (seen through the CLI and the console).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::{Server, TestTarget, eventually, free_tcp_port};
use hmac::{Hmac, Mac};

#[path = "../src/test_pki.rs"]
mod test_pki;
use sha2::Sha256;

const KEY: &str = "test-hmac-key-0123456789";

/// One request the receiver got: lower-cased headers and the body.
#[derive(Debug, Clone)]
struct Got {
    headers: HashMap<String, String>,
    body: String,
}

impl Got {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }

    /// Whether `X-Shoal-Signature` is the HMAC-SHA256 of the body under [`KEY`].
    fn signed(&self) -> bool {
        let Some(given) = self.headers.get("x-shoal-signature") else {
            return false;
        };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(self.body.as_bytes());
        *given == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// A minimal HTTP receiver: answers 200 to everything and keeps what it got.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    fn start(addr: SocketAddr) -> Receiver {
        let listener = TcpListener::bind(addr).expect("bind the receiver");
        let receiver = Receiver {
            addr: listener.local_addr().unwrap(),
            got: Arc::default(),
        };
        let got = receiver.got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(request) = read_request(stream) {
                    got.lock().unwrap().push(request);
                }
            }
        });
        receiver
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

fn read_request(mut stream: std::net::TcpStream) -> Option<Got> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, mut body) = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buffer).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            break (head.to_string(), body.as_bytes().to_vec());
        }
    };
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while body.len() < length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let _ =
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    Some(Got {
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn ok(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args);
    assert!(
        out.status.success(),
        "shoal {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn webhook_channel(dir: &Path, server: &Server, url: &str) {
    let file = write(
        dir,
        "ops.toml",
        &format!(
            "name = \"ops\"\nkind = \"webhook\"\nurl = \"{url}\"\nhmac_key = \"{KEY}\"\n\
             headers = {{ Authorization = \"Bearer header-secret\" }}\n"
        ),
    );
    ok(server, &["channel", "add", "--file", &file]);
}

fn alerts(server: &Server, status: &str) -> Vec<serde_json::Value> {
    server
        .cli_json(&["alert", "list", "--status", status])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn instances(server: &Server, job: &str, state: &str) -> Vec<serde_json::Value> {
    server
        .cli_json(&[
            "instance", "list", "--job", job, "--state", state, "--limit", "1000",
        ])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_job_failing_again_and_again_alerts_once_signed_then_once_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    let server = Server::start_up(dir.path(), &["--workers", "1"]);
    webhook_channel(dir.path(), &server, &receiver.url("/hook"));
    // Secrets go in, never out.
    let shown =
        ok(&server, &["channel", "show", "ops"]) + &ok(&server, &["channel", "list", "-o", "json"]);
    assert!(
        !shown.contains(KEY) && !shown.contains("header-secret"),
        "{shown}"
    );
    let job = write(
        dir.path(),
        "flaky.toml",
        &format!(
            "name = \"flaky\"\nevery = \"200ms\"\n[http]\nurl = \"{}\"\n[alerts]\nchannels = [\"ops\"]\n",
            target.url("/fail")
        ),
    );
    ok(&server, &["job", "add", "--file", &job]);
    eventually("ten failures", || {
        (instances(&server, "flaky", "failed").len() >= 10).then_some(())
    });
    ok(
        &server,
        &["job", "update", "flaky", "--url", &target.url("/ok")],
    );
    eventually("the recovery alert", || {
        (receiver.got().len() >= 2).then_some(())
    });
    eventually("more successes", || {
        (instances(&server, "flaky", "succeeded").len() >= 3).then_some(())
    });
    ok(&server, &["job", "pause", "flaky"]);
    let got = receiver.got();
    let events: Vec<String> = got.iter().map(|g| g.json()["event"].to_string()).collect();
    assert_eq!(events, ["\"failure\"", "\"recovery\""], "{got:?}");
    assert!(got.iter().all(Got::signed), "signatures: {got:?}");
    assert!(
        got.iter()
            .all(|g| g.headers["authorization"] == "Bearer header-secret")
    );
    let failure = got[0].json();
    assert_eq!(failure["job"], "flaky");
    assert!(
        failure["reason"].as_str().unwrap().contains("500"),
        "{failure}"
    );
    assert!(failure["attempts"].as_u64() >= Some(1));
    let command = failure["command"].as_str().unwrap();
    assert!(command.starts_with(&format!("shoal instance show {}", failure["instance"])));
    assert_eq!(alerts(&server, "sent").len(), 2);
    let logs = server.node.log_text();
    assert!(!logs.contains(KEY) && !logs.contains("header-secret"));
}

#[test]
fn a_receiver_down_gets_the_alert_once_up_and_scheduling_goes_on_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let port = free_tcp_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = Server::start_up(dir.path(), &["--workers", "1"]);
    webhook_channel(dir.path(), &server, &format!("http://{addr}/hook"));
    let job = write(
        dir.path(),
        "once.toml",
        &format!(
            "name = \"broken\"\non_demand = true\n[http]\nurl = \"{}\"\n[alerts]\nchannels = [\"ops\"]\n",
            target.url("/fail")
        ),
    );
    ok(&server, &["job", "add", "--file", &job]);
    ok(
        &server,
        &[
            "job",
            "add",
            "--name",
            "tick",
            "--every",
            "200ms",
            "--url",
            &target.url("/ok"),
        ],
    );
    ok(&server, &["job", "run", "broken"]);
    let pending = eventually("a refused try", || {
        alerts(&server, "pending")
            .into_iter()
            .find(|a| a["tries"].as_u64() >= Some(1))
    });
    assert!(
        pending["answer"].as_str().unwrap().contains("connect"),
        "{pending}"
    );
    // The receiver is down; the scheduler and the dispatcher are not held up by it.
    let before = instances(&server, "tick", "succeeded").len();
    eventually("ticks while the receiver is down", || {
        (instances(&server, "tick", "succeeded").len() >= before + 5).then_some(())
    });
    let receiver = Receiver::start(addr);
    eventually("the alert, once the receiver is up", || {
        (receiver.got().len() == 1).then_some(())
    });
    eventually("it recorded as sent", || {
        (alerts(&server, "sent").len() == 1).then_some(())
    });
    assert!(receiver.got()[0].signed());
}

#[test]
fn an_alert_raised_before_a_sigkill_is_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let port = free_tcp_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = Server::start_up(dir.path(), &["--workers", "1"]);
    webhook_channel(dir.path(), &server, &format!("http://{addr}/hook"));
    let job = write(
        dir.path(),
        "once.toml",
        &format!(
            "name = \"broken\"\non_demand = true\n[http]\nurl = \"{}\"\n[alerts]\nchannels = [\"ops\"]\n",
            target.url("/fail")
        ),
    );
    ok(&server, &["job", "add", "--file", &job]);
    ok(&server, &["job", "run", "broken"]);
    eventually("the alert in the outbox", || {
        (alerts(&server, "pending").len() == 1).then_some(())
    });
    server.node.signal("KILL");
    drop(server);
    let receiver = Receiver::start(addr);
    let server = Server::start_up(dir.path(), &["--workers", "1"]);
    eventually("the alert, after the restart", || {
        (receiver.got().len() == 1).then_some(())
    });
    assert_eq!(receiver.got()[0].json()["job"], "broken");
    eventually("it recorded as sent", || {
        (alerts(&server, "sent").len() == 1).then_some(())
    });
}

/// Whether python3 with aiosmtpd is here; says the test is skipped when not.
fn aiosmtpd_available() -> bool {
    let python = std::process::Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status();
    let available = python.is_ok_and(|s| s.success());
    if !available {
        eprintln!("SKIPPED: python3 with aiosmtpd is not installed (.ci/run installs it with pip)");
    }
    available
}

#[test]
fn a_failure_mails_through_a_real_smtp_server() {
    if !aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let port = free_tcp_port();
    let maildir = dir.path().join("mail");
    let mut smtp = std::process::Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args([
            "-c",
            "aiosmtpd.handlers.Mailbox",
            &maildir.display().to_string(),
        ])
        .spawn()
        .expect("start aiosmtpd");
    let server = Server::start_up(dir.path(), &["--workers", "1"]);
    let channel = write(
        dir.path(),
        "mail.toml",
        &format!(
            "name = \"mail\"\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             from = \"shoal@example.com\"\nto = [\"oncall@example.com\"]\ndefault = true\n"
        ),
    );
    ok(&server, &["channel", "add", "--file", &channel]);
    // No [alerts] table: the default channel.
    ok(
        &server,
        &[
            "job",
            "add",
            "--name",
            "nightly",
            "--on-demand",
            "--url",
            &target.url("/fail"),
        ],
    );
    ok(&server, &["job", "run", "nightly"]);
    let mail = eventually("the mail", || {
        let entry = std::fs::read_dir(maildir.join("new"))
            .ok()?
            .flatten()
            .next()?;
        std::fs::read_to_string(entry.path()).ok()
    });
    let _ = smtp.kill();
    let _ = smtp.wait();
    assert!(mail.contains("To: oncall@example.com"), "{mail}");
    assert!(mail.contains("job nightly failed"), "{mail}");
    assert!(mail.contains("shoal instance show"), "{mail}");
    eventually("recorded as sent", || {
        alerts(&server, "sent")
            .first()
            .filter(|a| {
                a["answer"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("SMTP 250")
            })
            .cloned()
    });
}

/// An SMTP server (aiosmtpd) that requires STARTTLS before anything else and AUTH before any
/// mail, accepts one login, and writes each mail it takes to `OUT/N.json` with what it knew of
/// the session: whether it was under TLS (and which version), and who logged in.
const SMTP_STARTTLS_AUTH: &str = r#"
import json, os, ssl, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

host, port, cert, key, out, user, password = sys.argv[1:8]

def authenticator(server, session, envelope, mechanism, data):
    good = (isinstance(data, LoginPassword) and data.login.decode() == user
            and data.password.decode() == password)
    # handled=False: aiosmtpd answers a failure itself (535), rather than leaving it to us.
    return AuthResult(success=good, handled=False, auth_data=data if good else None)

class Keep:
    async def handle_DATA(self, server, session, envelope):
        tls = session.ssl or {}
        ssl_object = tls.get("ssl_object")
        record = {
            "tls": session.ssl is not None,
            "tls_version": ssl_object.version() if ssl_object else None,
            "authenticated": bool(session.authenticated),
            "login": session.auth_data.login.decode() if session.auth_data else None,
            "rcpt_tos": envelope.rcpt_tos,
            "content": envelope.content.decode("utf-8", "replace"),
        }
        path = os.path.join(out, "%d.json" % len(os.listdir(out)))
        with open(path + ".part", "w") as f:
            json.dump(record, f)
        os.rename(path + ".part", path)
        return "250 OK kept"

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
Controller(Keep(), hostname=host, port=int(port), tls_context=context, require_starttls=True,
           authenticator=authenticator, auth_required=True, auth_require_tls=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// A child process killed when dropped, so a failed test leaves no server behind.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_failure_mails_through_starttls_with_the_login() {
    if !aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki::TestPki::new();
    let cert = write(dir.path(), "smtp.pem", &pki.server.cert_pem);
    let key = write(dir.path(), "smtp.key", &pki.server.key_pem);
    let ca = write(dir.path(), "ca.pem", &pki.ca_pem);
    let script = write(dir.path(), "smtp.py", SMTP_STARTTLS_AUTH);
    let out = dir.path().join("mail");
    std::fs::create_dir(&out).unwrap();
    let port = free_tcp_port();
    let password = "app-s3cret-password";
    let mut smtp = Stopped(
        std::process::Command::new("python3")
            .args([&script, "127.0.0.1", &port.to_string(), &cert, &key])
            .args([&out.display().to_string(), "shoal", password])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start aiosmtpd"),
    );
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(smtp.0.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready", "aiosmtpd did not start");

    let target = TestTarget::start();
    let server = Server::start_up(dir.path(), &["--workers", "1"]);
    let channel = |name: &str, password: &str| {
        let file = write(
            dir.path(),
            &format!("{name}.toml"),
            &format!(
                "name = \"{name}\"\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\n\
                 tls = \"starttls\"\nusername = \"shoal\"\npassword = \"{password}\"\n\
                 ca_file = \"{ca}\"\nfrom = \"shoal@example.com\"\nto = [\"oncall@example.com\"]\n"
            ),
        );
        ok(&server, &["channel", "add", "--file", &file]);
    };
    channel("mail", password);
    // The same relay with a wrong password: it must be refused, so a login that is not checked
    // cannot pass for one that is.
    channel("wrong", "not-the-password");
    let job = write(
        dir.path(),
        "nightly.toml",
        &format!(
            "name = \"nightly\"\non_demand = true\n[http]\nurl = \"{}\"\n\
             [alerts]\nchannels = [\"mail\", \"wrong\"]\n",
            target.url("/fail")
        ),
    );
    ok(&server, &["job", "add", "--file", &job]);
    ok(&server, &["job", "run", "nightly"]);
    let kept = eventually("the mail", || {
        let text = std::fs::read_to_string(out.join("0.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()
    });
    let refused = eventually("the wrong login refused", || {
        alerts(&server, "pending,failed").into_iter().find(|a| {
            a["channel"] == "wrong" && a["answer"].as_str().is_some_and(|s| s.contains("535"))
        })
    });
    drop(smtp);
    assert_eq!(kept["tls"], true, "{kept}");
    assert!(
        kept["tls_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLSv1.")),
        "{kept}"
    );
    assert_eq!(kept["authenticated"], true, "{kept}");
    assert_eq!(kept["login"], "shoal", "{kept}");
    assert_eq!(kept["rcpt_tos"][0], "oncall@example.com", "{kept}");
    let content = kept["content"].as_str().unwrap_or_default();
    assert!(content.contains("job nightly failed"), "{content}");
    assert!(
        std::fs::read_dir(&out).unwrap().count() == 1,
        "only the right login delivers: {refused}"
    );
    let sent = alerts(&server, "sent");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["channel"], "mail");
    assert!(
        sent[0]["answer"]
            .as_str()
            .is_some_and(|a| a.starts_with("SMTP 250")),
        "{sent:?}"
    );
    // The password went in; it never comes out.
    let shown = ok(&server, &["channel", "show", "mail"])
        + &ok(&server, &["channel", "list", "-o", "json"]);
    assert!(!shown.contains(password), "{shown}");
    assert!(!server.node.log_text().contains(password));
}

#[test]
fn a_chain_of_three_passes_parents_along_and_a_cycle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    let server = Server::start_up(dir.path(), &["--workers", "1"]);
    let url = receiver.url("/step");
    let file = |name: &str, next: &str| {
        write(
            dir.path(),
            &format!("{name}.toml"),
            &format!(
                "name = \"{name}\"\non_demand = true\non_success = [{next}]\n[http]\nurl = \"{url}\"\n"
            ),
        )
    };
    let add = |name: &str, next: &str| server.cli(&["job", "add", "--file", &file(name, next)]);
    let unknown = add("extract", "\"nope\"");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("on_success: no job named \"nope\""));
    assert!(add("report", "").status.success());
    assert!(add("load", "\"report\"").status.success());
    assert!(add("extract", "\"load\"").status.success());
    let cycle = server.cli(&[
        "job",
        "update",
        "report",
        "--file",
        &file("report", "\"extract\""),
    ]);
    let refusal = String::from_utf8_lossy(&cycle.stderr).to_string();
    assert!(
        refusal.contains("report → extract → load → report"),
        "{refusal}"
    );
    let first = server.cli_json(&["job", "run", "extract"]);
    let last = eventually("the chain's end", || {
        instances(&server, "report", "succeeded").into_iter().next()
    });
    let middle = server.cli_json(&["instance", "show", &last["parent"].to_string()]);
    assert_eq!(middle["job_name"], "load");
    assert_eq!(middle["parent"], first["id"]);
    assert_eq!(middle["children"][0], last["id"]);
    let parents: Vec<Option<String>> = receiver
        .got()
        .iter()
        .map(|g| g.headers.get("x-shoal-parent").cloned())
        .collect();
    assert_eq!(
        parents,
        [
            None,
            Some(first["id"].to_string()),
            Some(middle["id"].to_string())
        ]
    );
    // The API resolves each link to its job and state; the CLI shows them.
    assert_eq!(middle["chain"]["parent"]["job_name"], "extract");
    assert_eq!(middle["chain"]["parent"]["state"], "succeeded");
    assert_eq!(middle["chain"]["children"][0]["job_name"], "report");
    let detail = ok(&server, &["instance", "show", &middle["id"].to_string()]);
    assert!(
        detail.contains(&format!(
            "parent:   instance {} of job extract (succeeded)",
            first["id"]
        )),
        "{detail}"
    );
    assert!(
        detail.contains(&format!(
            "children: instance {} of job report (succeeded)",
            last["id"]
        )),
        "{detail}"
    );
    // A job shows whom it queues and who queues it.
    let load = ok(&server, &["job", "show", "load"]);
    assert!(load.contains("# upstream: extract (on_success)"), "{load}");
    assert!(load.contains("# downstream: report (on_success)"), "{load}");
    let report = server.cli_json(&["job", "show", "report"]);
    assert_eq!(report["upstream"][0]["job"], "load");
    assert_eq!(report["upstream"][0]["on"], "on_success");

    // The console, fed by the same API, shows the chain around the middle instance, and the
    // middle job's place in it.
    let screen = console_screen(&server, "3/load\n\n");
    assert!(
        screen.contains(&format!(
            "parent     instance {} of extract · succeeded",
            first["id"]
        )),
        "{screen}"
    );
    assert!(
        screen.contains(&format!(
            "children   instance {} of report · succeeded",
            last["id"]
        )),
        "{screen}"
    );
    let screen = console_screen(&server, "2/load\n\n");
    assert!(
        screen.contains("upstream   extract (on success)"),
        "{screen}"
    );
    assert!(
        screen.contains("downstream report (on success)"),
        "{screen}"
    );
}

/// The console's screen (100×30) after one refresh from `server` through the console's own data
/// source, and `keys` typed (`\n` is Enter).
fn console_screen(server: &Server, keys: &str) -> String {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use shoal_tui::DataSource;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = shoal::client::ApiClient::new(&server.url, None, &Default::default()).unwrap();
    let mut source = shoal::client::console::ApiSource::new(client, runtime.handle().clone());
    let mut app = shoal_tui::App::new(shoal_tui::Options::default());
    app.apply_snapshot(source.refresh());
    for c in keys.chars() {
        let code = match c {
            '\n' => KeyCode::Enter,
            c => KeyCode::Char(c),
        };
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
    }
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(100, 30)).unwrap();
    terminal
        .draw(|frame| shoal_tui::render(&app, frame))
        .unwrap();
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
