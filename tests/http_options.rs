//! End-to-end: a job's HTTP options on a real server and worker process — TLS against a local
//! HTTPS target with its own CA (made here with rcgen), mTLS, `insecure`, a body regex, a proxy
//! that counts what it forwards, and a connect timeout told apart from the whole-request
//! timeout. A private key is never shown back by the API, the CLI or the logs.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use serde_json::Value;

#[path = "../src/test_pki.rs"]
mod pki;

use pki::TestPki;

/// Servers in this file run on their own runtime thread, like `TestTarget`.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// An HTTPS target answering "secure ok" with the PKI's server certificate; with
/// `require_client_cert` it refuses clients without a certificate signed by the PKI's CA.
struct HttpsTarget {
    addr: SocketAddr,
    answered: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl HttpsTarget {
    fn start(pki: &TestPki, require_client_cert: bool) -> HttpsTarget {
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
        use tokio_rustls::rustls::server::WebPkiClientVerifier;
        use tokio_rustls::rustls::{RootCertStore, ServerConfig};

        let builder = ServerConfig::builder();
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            roots.add(CertificateDer::from(pki.ca_der.clone())).unwrap();
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .unwrap(),
            )
        } else {
            builder.with_no_client_auth()
        };
        let config = builder
            .with_single_cert(
                vec![CertificateDer::from(pki.server.cert_der.clone())],
                PrivatePkcs8KeyDer::from(pki.server.key_der.clone()).into(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = runtime();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let answered = Arc::new(AtomicUsize::new(0));
        let counter = answered.clone();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    // A refused handshake simply ends the connection.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |_request| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        async {
                            Ok::<_, Infallible>(hyper::Response::new(axum::body::Body::from(
                                "secure ok",
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        HttpsTarget {
            addr,
            answered,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        format!("https://{}/secure", self.addr)
    }
}

/// A plain HTTP forward proxy: it takes absolute-form requests (`GET http://host/path`),
/// fetches them itself and counts them.
struct CountingProxy {
    addr: SocketAddr,
    forwarded: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl CountingProxy {
    fn start() -> CountingProxy {
        let runtime = runtime();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let forwarded = Arc::new(AtomicUsize::new(0));
        let counter = forwarded.clone();
        let upstream = reqwest::Client::new();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let counter = counter.clone();
            let upstream = upstream.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let target = request.uri().to_string();
                match upstream
                    .request(request.method().clone(), &target)
                    .send()
                    .await
                {
                    Ok(response) => {
                        let status = response.status();
                        (status, response.text().await.unwrap_or_default())
                    }
                    Err(error) => (reqwest::StatusCode::BAD_GATEWAY, error.to_string()),
                }
            }
        });
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CountingProxy {
            addr,
            forwarded,
            _runtime: runtime,
        }
    }
}

/// A listener whose accept queue is full and never drained: connections to it stay in the
/// TCP handshake, so only a connect timeout ends them.
struct BlackHole {
    addr: SocketAddr,
    _listener: tokio::net::TcpListener,
    _queued: Vec<std::net::TcpStream>,
    _runtime: tokio::runtime::Runtime,
}

impl BlackHole {
    fn start() -> BlackHole {
        let runtime = runtime();
        let listener = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            socket.listen(0).unwrap()
        });
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        for _ in 0..8 {
            match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300))
            {
                Ok(stream) => queued.push(stream),
                Err(_) => break,
            }
        }
        assert!(
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500))
                .is_err(),
            "the black hole's accept queue should be full"
        );
        BlackHole {
            addr,
            _listener: listener,
            _queued: queued,
            _runtime: runtime,
        }
    }
}

fn add(server: &Server, name: &str, url: &str, extra: &[&str]) -> Value {
    let mut args = vec!["job", "add", "--name", name, "--on-demand", "--url", url];
    args.extend_from_slice(extra);
    server.cli_json(&args)
}

/// Runs the job once and waits for its instance to end.
fn run_to_end(server: &Server, job: &str) -> Value {
    let id = server.cli_json(&["job", "run", job])["id"].to_string();
    eventually(&format!("instance {id} of {job} to end"), || {
        let instance = server.cli_json(&["instance", "show", &id]);
        matches!(instance["state"].as_str(), Some("succeeded" | "failed")).then_some(instance)
    })
}

fn reason(instance: &Value) -> String {
    instance["reason"].as_str().unwrap_or_default().to_string()
}

fn write_pems(dir: &Path, pki: &TestPki) {
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::write(dir.join("certs/ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(dir.join("certs/client.pem"), &pki.client.cert_pem).unwrap();
    std::fs::write(dir.join("certs/client.key"), &pki.client.key_pem).unwrap();
}

#[test]
fn https_jobs_verify_with_their_ca_skip_only_when_insecure_and_present_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    write_pems(dir.path(), &pki);
    let certs = dir.path().join("certs");
    let ca = certs.join("ca.pem").display().to_string();
    let cert = certs.join("client.pem").display().to_string();
    let key = certs.join("client.key").display().to_string();
    let https = HttpsTarget::start(&pki, false);
    let mtls = HttpsTarget::start(&pki, true);
    let server = Server::start(dir.path(), &[]);
    let worker = server.worker(dir.path(), "w1", &[]);

    add(&server, "with-ca", &https.url(), &["--ca-file", &ca]);
    add(&server, "without-ca", &https.url(), &[]);
    add(&server, "insecure", &https.url(), &["--insecure"]);
    add(
        &server,
        "mtls",
        &mtls.url(),
        &[
            "--ca-file",
            &ca,
            "--client-cert",
            &cert,
            "--client-key",
            &key,
        ],
    );
    add(&server, "mtls-no-cert", &mtls.url(), &["--ca-file", &ca]);

    let ok = run_to_end(&server, "with-ca");
    assert_eq!(ok["state"], "succeeded", "{ok}");
    assert_eq!(ok["attempts"][0]["excerpt"], "secure ok");

    let refused = run_to_end(&server, "without-ca");
    assert_eq!(refused["state"], "failed", "{refused}");
    let why = reason(&refused);
    assert!(
        why.contains("certificate verification failed") && why.contains("http.tls"),
        "a clear certificate error naming the fix: {why}"
    );

    let insecure = run_to_end(&server, "insecure");
    assert_eq!(insecure["state"], "succeeded", "{insecure}");
    let shown = server.cli(&["job", "show", "insecure"]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("INSECURE"), "job show marks it: {text}");
    assert!(text.contains("insecure = true"), "{text}");

    let mutual = run_to_end(&server, "mtls");
    assert_eq!(mutual["state"], "succeeded", "{mutual}");
    let no_cert = run_to_end(&server, "mtls-no-cert");
    assert_eq!(no_cert["state"], "failed", "{no_cert}");
    assert!(
        reason(&no_cert).contains("client certificate"),
        "{}",
        reason(&no_cert)
    );
    assert_eq!(
        https.answered.load(Ordering::SeqCst),
        2,
        "with-ca and insecure"
    );
    assert_eq!(
        mtls.answered.load(Ordering::SeqCst),
        1,
        "only the job with a cert"
    );

    // The API and the CLI show that a key is set, never the key.
    let job = server.cli_json(&["job", "show", "mtls"]);
    assert_eq!(job["http"]["tls"]["client_key_pem"], "<redacted>");
    assert!(job["http"]["tls"]["client_cert_pem"].is_string());
    let listed = server.cli(&["job", "list", "--output", "json"]);
    let shown_text = String::from_utf8_lossy(&shown.stdout).into_owned()
        + &String::from_utf8_lossy(&listed.stdout)
        + &String::from_utf8_lossy(&server.cli(&["job", "show", "mtls"]).stdout);
    assert!(!shown_text.contains("PRIVATE KEY"), "{shown_text}");
    // An update that does not touch the key keeps it (the CLI starts from the redacted job).
    server.cli_json(&["job", "update", "mtls", "--timeout", "20s"]);
    let again = run_to_end(&server, "mtls");
    assert_eq!(
        again["state"], "succeeded",
        "the stored key was kept: {again}"
    );

    // A job file names its PEM files relative to itself.
    let file = dir.path().join("mtls.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"mtls-file\"\non_demand = true\n[http]\nurl = \"{}\"\nconnect_timeout = \
             \"5s\"\n[http.tls]\nca_file = \"certs/ca.pem\"\nclient_cert_file = \
             \"certs/client.pem\"\nclient_key_file = \"certs/client.key\"\n",
            mtls.url()
        ),
    )
    .unwrap();
    server.cli_json(&["job", "apply", "--file", &file.display().to_string()]);
    let from_file = run_to_end(&server, "mtls-file");
    assert_eq!(from_file["state"], "succeeded", "{from_file}");

    // Nothing logged the key: not the server, not the worker that used it.
    for log in [server.node.log_text(), worker.log_text()] {
        assert!(!log.contains("PRIVATE KEY"), "a log shows the key:\n{log}");
    }
}

#[test]
fn body_regex_proxy_and_the_two_timeouts_tell_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let proxy = CountingProxy::start();
    let hole = BlackHole::start();
    let server = Server::start(dir.path(), &[]);
    let _worker = server.worker(dir.path(), "w1", &[]);

    add(
        &server,
        "regex-match",
        &target.url("/ok"),
        &["--expect-body-regex", "^o+k$"],
    );
    add(
        &server,
        "regex-mismatch",
        &target.url("/ok"),
        &["--expect-body-regex", "^(ready|done)$"],
    );
    let proxy_url = format!("http://{}", proxy.addr);
    add(
        &server,
        "proxied",
        &target.url("/ok"),
        &["--proxy", &proxy_url],
    );
    let hole_url = format!("http://{}/never", hole.addr);
    add(
        &server,
        "connect-timeout",
        &hole_url,
        &["--connect-timeout", "300ms", "--timeout", "30s"],
    );
    add(
        &server,
        "total-timeout",
        &target.url("/slow?ms=5000"),
        &["--timeout", "300ms"],
    );

    let matched = run_to_end(&server, "regex-match");
    assert_eq!(matched["state"], "succeeded", "{matched}");
    let mismatched = run_to_end(&server, "regex-mismatch");
    assert_eq!(mismatched["state"], "failed");
    assert!(
        reason(&mismatched).contains("does not match the regex \"^(ready|done)$\""),
        "{}",
        reason(&mismatched)
    );

    let seen_before = target.target.received_count();
    let proxied = run_to_end(&server, "proxied");
    assert_eq!(proxied["state"], "succeeded", "{proxied}");
    assert_eq!(proxied["attempts"][0]["excerpt"], "ok");
    assert_eq!(
        proxy.forwarded.load(Ordering::SeqCst),
        1,
        "through the proxy"
    );
    assert_eq!(target.target.received_count(), seen_before + 1);

    let connect = run_to_end(&server, "connect-timeout");
    assert_eq!(connect["state"], "failed");
    let why = reason(&connect);
    assert!(
        why.contains("connect timed out after 300ms (http.connect_timeout)"),
        "{why}"
    );
    let total = run_to_end(&server, "total-timeout");
    assert_eq!(total["state"], "failed");
    let why = reason(&total);
    assert!(
        why.contains("timed out after 300ms (http.timeout, the whole request)")
            && !why.contains("connect"),
        "{why}"
    );
}

#[test]
fn bad_options_are_refused_naming_the_field_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    write_pems(dir.path(), &pki);
    let certs = dir.path().join("certs");
    let key = certs.join("client.key").display().to_string();
    let ca = certs.join("ca.pem").display().to_string();
    let server = Server::start(dir.path(), &[]);
    let url = "https://127.0.0.1:9/";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--client-key", &key], "http.tls.client_key_pem"),
        (vec!["--client-cert", &ca], "http.tls.client_cert_pem"),
        (vec!["--ca-file", &key], "--ca-file"),
        (vec!["--ca-file", "/nonexistent/ca.pem"], "--ca-file"),
        (vec!["--proxy", "socks5://127.0.0.1:1080"], "http.proxy"),
        (vec!["--proxy", "not a url"], "http.proxy"),
        (
            vec!["--connect-timeout", "10s", "--timeout", "5s"],
            "http.connect_timeout",
        ),
        (
            vec!["--expect-body-regex", "(open"],
            "http.expect_body_regex",
        ),
        (
            vec!["--expect-body-regex", r"\w{1000}"],
            "http.expect_body_regex",
        ),
        (vec!["--insecure", "--ca-file", &ca], "http.tls.insecure"),
    ];
    for (flags, field) in &cases {
        let mut args = vec!["job", "add", "--name", "bad", "--on-demand", "--url", url];
        args.extend_from_slice(flags);
        let out = server.cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} must be refused");
        assert!(
            stderr.contains(field),
            "{flags:?}: should name {field}: {stderr}"
        );
        assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    }
    // Straight to the API: a path is not read by the server, and the placeholder is no key.
    let body = format!(
        r#"{{"name":"bad","on_demand":true,"http":{{"url":"{url}","tls":{{"ca_file":"/etc/passwd"}}}}}}"#
    );
    let (status, answer) = http(server.api, "POST", "/api/v1/jobs", Some(&body)).unwrap();
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("http.tls.ca_file"), "{answer}");
    let body = format!(
        r#"{{"name":"bad","on_demand":true,"http":{{"url":"{url}","tls":{{"client_cert_pem":{},"client_key_pem":"<redacted>"}}}}}}"#,
        serde_json::to_string(&pki.client.cert_pem).unwrap()
    );
    let (status, answer) = http(server.api, "POST", "/api/v1/jobs", Some(&body)).unwrap();
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("http.tls.client_key_pem"), "{answer}");
    let jobs = server.cli_json(&["job", "list"]);
    assert_eq!(
        jobs.as_array().map(Vec::len),
        Some(0),
        "nothing stored: {jobs}"
    );
}
