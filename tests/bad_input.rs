//! End-to-end: malformed API requests and job files against a real server process. Each is
//! refused with a 4xx whose JSON names the field (or, for job files, an error naming the key),
//! and the store is byte-for-byte unchanged afterwards.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A raw HTTP/1.1 exchange: the request bytes exactly as given, the status and the body back.
fn raw(addr: SocketAddr, request: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The server may answer (413) and close before reading a huge body: ignore write errors and
    // read whatever answer came.
    let _ = stream.write_all(request);
    let _ = stream.flush();
    let mut response = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(_) if !response.is_empty() => break,
            Err(error) => panic!("no response: {error}"),
        }
    }
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = match response.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => response[at + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

fn request(method: &str, path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

const JSON: &str = "Content-Type: application/json";

/// A valid job body, as a JSON value to spoil one field at a time.
fn good_job() -> Value {
    json!({
        "name": "fresh",
        "every": "1h",
        "http": { "url": "http://127.0.0.1:9/ok", "timeout": "5s" }
    })
}

fn with(mut value: Value, pointer: &str, new: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() {
        &mut value
    } else {
        value.pointer_mut(parent).unwrap()
    };
    target[key] = new;
    value
}

fn without(mut value: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() {
        &mut value
    } else {
        value.pointer_mut(parent).unwrap()
    };
    target.as_object_mut().unwrap().remove(key);
    value
}

/// One malformed request: what to send, and what the answer must be.
struct Case {
    what: String,
    request: Vec<u8>,
    status: u16,
    /// The JSON error's `field` must equal this (or its message contain it, for parse errors
    /// where serde names the field only in the message).
    field: &'static str,
}

fn post_job(what: &str, body: Value, field: &'static str) -> Case {
    Case {
        what: what.to_string(),
        request: request("POST", "/api/v1/jobs", &[JSON], body.to_string().as_bytes()),
        status: 422,
        field,
    }
}

fn raw_case(
    what: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
    status: u16,
    field: &'static str,
) -> Case {
    Case {
        what: what.to_string(),
        request: request(method, path, headers, body),
        status,
        field,
    }
}

#[rustfmt::skip]
fn api_cases() -> Vec<Case> {
    let job = good_job;
    let mut cases = vec![
        // Not JSON at all, or not a job.
        raw_case("truncated JSON", "POST", "/api/v1/jobs", &[JSON], b"{\"name\": ", 422, "name"),
        raw_case("empty body", "POST", "/api/v1/jobs", &[JSON], b"", 422, "body"),
        raw_case("a JSON array", "POST", "/api/v1/jobs", &[JSON], b"[]", 422, "body"),
        raw_case("a JSON string", "POST", "/api/v1/jobs", &[JSON], b"\"job\"", 422, "body"),
        raw_case("JSON null", "POST", "/api/v1/jobs", &[JSON], b"null", 422, "body"),
        raw_case("no content type", "POST", "/api/v1/jobs", &[], job().to_string().as_bytes(), 422, "content-type"),
        raw_case("text/plain", "POST", "/api/v1/jobs", &["Content-Type: text/plain"], job().to_string().as_bytes(), 422, "content-type"),
        raw_case("invalid UTF-8", "POST", "/api/v1/jobs", &[JSON], b"{\"name\": \"\xff\xfe\", \"every\": \"1h\"}", 422, "name"),
        raw_case("lone UTF-16 surrogate", "POST", "/api/v1/jobs", &[JSON], br#"{"name": "a\ud800b", "every": "1h", "http": {"url": "http://a/"}}"#, 422, "name"),
        raw_case("10000 nested arrays", "POST", "/api/v1/jobs", &[JSON], "[".repeat(10_000).as_bytes(), 422, "[0]"),
        raw_case("duplicate key", "POST", "/api/v1/jobs", &[JSON], br#"{"name": "a", "name": "b", "every": "1h", "http": {"url": "http://a/"}}"#, 422, "name"),
        raw_case("trailing garbage", "POST", "/api/v1/jobs", &[JSON], format!("{} x", job()).as_bytes(), 422, "body"),
        // Wrong types and unknown fields.
        post_job("name is a number", with(job(), "/name", json!(5)), "name"),
        post_job("http is a string", with(job(), "/http", json!("http://a/")), "http"),
        post_job("url is a number", with(job(), "/http/url", json!(80)), "http.url"),
        post_job("timeout is a number", with(job(), "/http/timeout", json!(5)), "http.timeout"),
        post_job("every is a number", with(job(), "/every", json!(0)), "every"),
        post_job("max_concurrent negative", with(job(), "/max_concurrent", json!(-1)), "max_concurrent"),
        post_job("max_concurrent overflows u32", with(job(), "/max_concurrent", json!(99_999_999_999u64)), "max_concurrent"),
        post_job("expect_status negative", with(job(), "/http/expect_status", json!([-1])), "http.expect_status"),
        post_job("on_demand is a string", with(job(), "/on_demand", json!("yes")), "on_demand"),
        post_job("unknown field", with(job(), "/colour", json!("blue")), "colour"),
        post_job("unknown http field", with(job(), "/http/verb", json!("GET")), "verb"),
        post_job("unknown retry field", with(job(), "/retry", json!({"tries": 3})), "tries"),
        post_job("missing http", without(job(), "/http"), "http"),
        post_job("missing url", without(job(), "/http/url"), "url"),
        post_job("missing name", without(job(), "/name"), "name"),
        // Valid JSON, invalid job.
        post_job("empty name", with(job(), "/name", json!("")), "name"),
        post_job("200-byte name", with(job(), "/name", json!("n".repeat(200))), "name"),
        post_job("name with a space", with(job(), "/name", json!("my job")), "name"),
        post_job("all-digit name", with(job(), "/name", json!("123")), "name"),
        post_job("name with RTL override", with(job(), "/name", json!("job\u{202e}gpj")), "name"),
        post_job("name with an emoji", with(job(), "/name", json!("job💥")), "name"),
        post_job("name with NUL", with(job(), "/name", json!("a\u{0}b")), "name"),
        post_job("name with zero-width space", with(job(), "/name", json!("a\u{200b}b")), "name"),
        post_job("no schedule", without(job(), "/every"), "schedule"),
        post_job("two schedules", with(job(), "/cron", json!("* * * * * *")), "schedule"),
        post_job("every 0s", with(job(), "/every", json!("0s")), "every"),
        post_job("every 1ms", with(job(), "/every", json!("1ms")), "every"),
        post_job("every 1000 years", with(job(), "/every", json!("1000y")), "every"),
        post_job("every soon", with(job(), "/every", json!("soon")), "every"),
        post_job("delay negative", with(without(job(), "/every"), "/delay", json!("-5s")), "delay"),
        post_job("at yesterday", with(without(job(), "/every"), "/at", json!("yesterday")), "at"),
        post_job("at in the past", with(without(job(), "/every"), "/at", json!("2001-01-01T00:00:00Z")), "at"),
        post_job("at year 10000", with(without(job(), "/every"), "/at", json!("+10000-01-01T00:00:00Z")), "at"),
        post_job("cron hour 25", with(without(job(), "/every"), "/cron", json!("0 0 25 * * *")), "cron"),
        post_job("cron year 3000", with(without(job(), "/every"), "/cron", json!("0 0 0 1 1 * 3000")), "cron"),
        post_job("cron in the past", with(without(job(), "/every"), "/cron", json!("0 0 0 1 1 * 2001")), "cron"),
        post_job("cron February 30", with(without(job(), "/every"), "/cron", json!("0 0 0 30 2 *")), "cron"),
        post_job("cron empty", with(without(job(), "/every"), "/cron", json!("")), "cron"),
        post_job("cron 8 fields", with(without(job(), "/every"), "/cron", json!("* * * * * * * *")), "cron"),
        post_job("cron step 0", with(without(job(), "/every"), "/cron", json!("*/0 * * * * *")), "cron"),
        post_job("cron full-width digits", with(without(job(), "/every"), "/cron", json!("０ * * * * *")), "cron"),
        post_job("cron huge number", with(without(job(), "/every"), "/cron", json!("99999999999999999999 * * * * *")), "cron"),
        post_job("cron with NUL", with(without(job(), "/every"), "/cron", json!("0 * * * *\u{0} *")), "cron"),
        post_job("unknown timezone", with(job(), "/timezone", json!("Mars/Olympus_Mons")), "timezone"),
        post_job("method YELL", with(job(), "/http/method", json!("YELL")), "http.method"),
        post_job("method with CRLF", with(job(), "/http/method", json!("GET\r\nX: y")), "http.method"),
        post_job("url ftp", with(job(), "/http/url", json!("ftp://127.0.0.1/")), "http.url"),
        post_job("url javascript", with(job(), "/http/url", json!("javascript:alert(1)")), "http.url"),
        post_job("url without host", with(job(), "/http/url", json!("http://")), "http.url"),
        post_job("url not a URL", with(job(), "/http/url", json!("not a url")), "http.url"),
        post_job("url with CRLF", with(job(), "/http/url", json!("http://127.0.0.1/\r\nHost: evil")), "http.url"),
        post_job("header name with a space", with(job(), "/http/headers", json!({"Bad Name": "x"})), "http.headers.Bad Name"),
        post_job("header name with CRLF", with(job(), "/http/headers", json!({"X-A\r\nX-Evil": "1"})), "http.headers.X-A\r\nX-Evil"),
        post_job("header value with CRLF", with(job(), "/http/headers", json!({"X-Test": "a\r\nX-Evil: 1"})), "http.headers.X-Test"),
        post_job("header value with lone LF", with(job(), "/http/headers", json!({"X-Test": "a\nb"})), "http.headers.X-Test"),
        post_job("header value with NUL", with(job(), "/http/headers", json!({"X-Test": "a\u{0}b"})), "http.headers.X-Test"),
        post_job("empty header name", with(job(), "/http/headers", json!({"": "x"})), "http.headers."),
        post_job("reserved header", with(job(), "/http/headers", json!({"X-Shoal-Instance": "1-1"})), "http.headers.X-Shoal-Instance"),
        post_job("65 headers", with(job(), "/http/headers", Value::Object((0..65).map(|i| (format!("X-H{i}"), json!("v"))).collect())), "http.headers"),
        post_job("task body over 64 KiB", with(job(), "/http/body", json!("b".repeat(65 * 1024))), "http.body"),
        post_job("timeout 0s", with(job(), "/http/timeout", json!("0s")), "http.timeout"),
        post_job("timeout 10 years", with(job(), "/http/timeout", json!("3650d")), "http.timeout"),
        post_job("timeout overflows", with(job(), "/http/timeout", json!("99999999999999999999s")), "http.timeout"),
        post_job("expect_status 999", with(job(), "/http/expect_status", json!([999])), "http.expect_status"),
        post_job("expect_body empty", with(job(), "/http/expect_body", json!("")), "http.expect_body"),
        post_job("retry count 1000", with(job(), "/retry", json!({"count": 1000})), "retry.count"),
        post_job("retry backoff 0ms", with(job(), "/retry", json!({"count": 1, "backoff": "0ms"})), "retry.backoff"),
        post_job("tag with a space", with(job(), "/target", json!({"tags": ["has space"]})), "target.tags"),
        post_job("empty worker id", with(job(), "/target", json!({"workers": [""]})), "target.workers"),
        post_job("strategy fastest", with(job(), "/strategy", json!("fastest")), "strategy"),
        post_job("strategy in capitals", with(job(), "/strategy", json!("BROADCAST")), "strategy"),
        post_job("misfire sometimes", with(job(), "/misfire", json!("sometimes")), "misfire"),
        post_job("max_concurrent 0", with(job(), "/max_concurrent", json!(0)), "max_concurrent"),
        post_job("max_concurrent 1e6", with(job(), "/max_concurrent", json!(1_000_000)), "max_concurrent"),
        post_job("dispatch_timeout 30 days", with(job(), "/dispatch_timeout", json!("30d")), "dispatch_timeout"),
        // Size limits.
        raw_case("10 MB body", "POST", "/api/v1/jobs", &[JSON], &vec![b' '; 10 * 1024 * 1024], 413, "body"),
        raw_case("300 KB body", "PUT", "/api/v1/jobs", &[JSON], format!("{{\"name\": \"{}\"}}", "x".repeat(300 * 1024)).as_bytes(), 413, "body"),
        // Other endpoints.
        raw_case("update with a bad body", "PUT", "/api/v1/jobs/base", &[JSON], with(job(), "/every", json!("0s")).to_string().as_bytes(), 422, "every"),
        raw_case("apply with a bad body", "PUT", "/api/v1/jobs", &[JSON], with(job(), "/name", json!("base")).to_string().replace("1h", "1ms").as_bytes(), 422, "every"),
        raw_case("update of a missing job", "PUT", "/api/v1/jobs/nope", &[JSON], job().to_string().as_bytes(), 404, ""),
        raw_case("run of a missing job", "POST", "/api/v1/jobs/nope/run", &[], b"", 404, ""),
        raw_case("delete of a missing job", "DELETE", "/api/v1/jobs/999999", &[], b"", 404, ""),
        raw_case("instance id not a number", "GET", "/api/v1/instances/abc", &[], b"", 422, "id"),
        raw_case("instance id negative", "POST", "/api/v1/instances/-1/cancel", &[], b"", 422, "id"),
        raw_case("instance id overflows", "GET", "/api/v1/instances/99999999999999999999999", &[], b"", 422, "id"),
        raw_case("missing instance", "GET", "/api/v1/instances/424242", &[], b"", 404, ""),
        raw_case("list limit 0", "GET", "/api/v1/instances?limit=0", &[], b"", 422, "limit"),
        raw_case("list limit not a number", "GET", "/api/v1/instances?limit=lots", &[], b"", 422, "limit"),
        raw_case("list unknown state", "GET", "/api/v1/instances?state=done", &[], b"", 422, "state"),
        raw_case("list unknown parameter", "GET", "/api/v1/instances?colour=blue", &[], b"", 422, "colour"),
        raw_case("list of a missing job", "GET", "/api/v1/instances?job=nope", &[], b"", 404, ""),
        raw_case("unknown route", "GET", "/api/v1/nothing-here", &[], b"", 404, ""),
        raw_case("poll with no worker id", "POST", "/rpc/v1/poll", &[JSON], br#"{"worker": "", "free": 1, "wait_ms": 0}"#, 422, "worker"),
        raw_case("poll with wrong types", "POST", "/rpc/v1/poll", &[JSON], br#"{"worker": "w", "free": "many", "wait_ms": 0}"#, 422, "free"),
        raw_case("report of an unknown event", "POST", "/rpc/v1/report", &[JSON], br#"{"worker": "w", "events": [{"event": "exploded"}]}"#, 422, "events"),
    ];
    let started = r#"{"event":"started","instance":1,"attempt":1,"at_ms":0}"#;
    let events = vec![started; 4097].join(",");
    cases.push(raw_case(
        "report of 4097 events",
        "POST",
        "/rpc/v1/report",
        &[JSON],
        format!(r#"{{"worker": "w", "events": [{events}]}}"#).as_bytes(),
        422,
        "events",
    ));
    cases
}

/// Requests broken at the HTTP level: hyper refuses them before any handler, with a bare 400.
fn http_level_cases() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "CR inside a header value",
            b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\nConnection: close\r\n\r\n"
                .to_vec(),
        ),
        (
            "NUL inside a header value",
            b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\nConnection: close\r\n\r\n"
                .to_vec(),
        ),
        (
            "space in a header name",
            b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX A: b\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "two content lengths",
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}"
                .to_vec(),
        ),
        (
            "not HTTP",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 hello\r\n\r\n".to_vec(),
        ),
    ]
}

/// The whole store as the API shows it.
fn snapshot(server: &Server) -> (String, String) {
    let jobs = raw(server.api, &request("GET", "/api/v1/jobs", &[], b""));
    let instances = raw(
        server.api,
        &request("GET", "/api/v1/instances?limit=10000", &[], b""),
    );
    assert_eq!(jobs.0, 200);
    assert_eq!(instances.0, 200);
    (
        String::from_utf8_lossy(&jobs.1).into_owned(),
        String::from_utf8_lossy(&instances.1).into_owned(),
    )
}

/// A server holding one on-demand job, `base`: something bad input must leave alone.
fn server_with_a_job(dir: &std::path::Path) -> Server {
    let server = Server::start(dir, &[]);
    server.cli_json(&[
        "job",
        "add",
        "--name",
        "base",
        "--on-demand",
        "--url",
        "http://127.0.0.1:9/",
    ]);
    server
}

#[test]
fn malformed_api_requests_get_a_4xx_naming_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_a_job(dir.path());
    // Something more to leave alone: a finished instance of it.
    let id = server.cli_json(&["job", "run", "base"])["id"].to_string();
    server.cli_json(&["instance", "cancel", &id]);
    let before = snapshot(&server);
    assert!(before.0.contains("\"base\""));

    let cases = api_cases();
    let mut failures = Vec::new();
    for case in &cases {
        let (status, body) = raw(server.api, &case.request);
        let text = String::from_utf8_lossy(&body);
        let error: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let field = error["field"].as_str().unwrap_or_default();
        let named = case.field.is_empty()
            || field == case.field
            || field.starts_with(&format!("{}[", case.field))
            || field.starts_with(&format!("{}.", case.field))
            || error["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("`{}`", case.field)));
        if status != case.status || error["message"].as_str().is_none() || !named {
            failures.push(format!(
                "{}: expected {} naming {:?}, got {status} {text}",
                case.what, case.status, case.field
            ));
        }
        assert_eq!(
            snapshot(&server),
            before,
            "{}: the store changed",
            case.what
        );
    }
    let http_cases = http_level_cases();
    for (what, bytes) in &http_cases {
        let (status, _) = raw(server.api, bytes);
        if status != 400 {
            failures.push(format!("{what}: expected 400, got {status}"));
        }
        assert_eq!(snapshot(&server), before, "{what}: the store changed");
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad requests were not refused properly:\n{}",
        failures.len(),
        cases.len() + http_cases.len(),
        failures.join("\n")
    );
    println!("bad API requests tried: {}", cases.len() + http_cases.len());
}

#[test]
fn malformed_job_files_are_refused_naming_the_key_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_a_job(dir.path());
    let before = snapshot(&server);
    let http = "[http]\nurl = \"http://127.0.0.1:9/\"\n";
    let files: Vec<(&str, Vec<u8>, &str)> = vec![
        ("TOML syntax error", b"name = \"a\nevery = \"1h\"\n".to_vec(), "line"),
        ("unknown key", format!("name = \"a\"\nevery = \"1h\"\ncolour = \"blue\"\n{http}").into_bytes(), "colour"),
        ("unknown http key", format!("name = \"a\"\nevery = \"1h\"\n{http}verb = \"GET\"\n").into_bytes(), "verb"),
        ("wrong type", format!("name = 5\nevery = \"1h\"\n{http}").into_bytes(), "name"),
        ("missing http table", b"name = \"a\"\nevery = \"1h\"\n".to_vec(), "http"),
        ("duplicate key", format!("name = \"a\"\nname = \"b\"\nevery = \"1h\"\n{http}").into_bytes(), "name"),
        ("not UTF-8", b"name = \"\xff\xfe\"\n".to_vec(), "UTF-8"),
        ("empty file", Vec::new(), "name"),
        ("bad cron", format!("name = \"a\"\ncron = \"0 0 25 * * *\"\n{http}").into_bytes(), "hour"),
        ("header injection", format!("name = \"a\"\nevery = \"1h\"\n{http}[http.headers]\nX-Test = \"a\\r\\nX-Evil: 1\"\n").into_bytes(), "http.headers.X-Test"),
        ("every as an integer", format!("name = \"a\"\nevery = 0\n{http}").into_bytes(), "every"),
        ("array instead of table", b"name = \"a\"\nevery = \"1h\"\nhttp = [1, 2]\n".to_vec(), "http"),
        ("huge file", format!("name = \"a\"\nevery = \"1h\"\n{http}body = \"{}\"\n", "b".repeat(2 * 1024 * 1024)).into_bytes(), "http.body"),
    ];
    for (what, content, expected) in &files {
        let path = dir.path().join("job.toml");
        std::fs::write(&path, content).unwrap();
        for verb in ["add", "apply"] {
            let path = path.display().to_string();
            let args: Vec<&str> = if verb == "add" {
                vec!["job", "add", "--file", &path]
            } else {
                vec!["job", "apply", "--file", &path]
            };
            let out = server.cli(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{what} ({verb}) must fail");
            assert!(
                stderr.contains(expected),
                "{what} ({verb}): the error should name {expected:?}: {stderr}"
            );
            assert_eq!(snapshot(&server), before, "{what}: the store changed");
        }
    }
    println!(
        "bad job files tried: {} (each with add and apply)",
        files.len()
    );
}
