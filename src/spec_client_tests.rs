use std::sync::OnceLock;

use super::*;
use crate::spec::{HttpSpec, JobSpec};

use crate::test_pki as pki;

/// One PKI for the whole module (key generation is the slow part).
fn pki() -> &'static pki::TestPki {
    static PKI: OnceLock<pki::TestPki> = OnceLock::new();
    PKI.get_or_init(pki::TestPki::new)
}

fn https() -> JobSpec {
    JobSpec {
        name: "secure".into(),
        on_demand: true,
        http: HttpSpec {
            url: "https://127.0.0.1:8443/run".into(),
            ..HttpSpec::default()
        },
        ..JobSpec::default()
    }
}

fn mtls() -> TlsSpec {
    TlsSpec {
        ca_pem: Some(pki().ca_pem.clone()),
        client_cert_pem: Some(pki().client.cert_pem.clone()),
        client_key_pem: Some(pki().client.key_pem.clone()),
        ..TlsSpec::default()
    }
}

#[test]
fn every_option_round_trips_through_the_job_format() {
    let mut spec = https();
    spec.http.tls = Some(mtls());
    spec.http.proxy = Some("http://127.0.0.1:3128".into());
    spec.http.timeout = Some("10s".into());
    spec.http.connect_timeout = Some("2s".into());
    spec.http.expect_body_regex = Some(r#""status":\s*"ok""#.into());
    let def = spec.validate().unwrap();
    let client = &def.http.client;
    assert_eq!(client.connect_timeout_ms, Some(2000));
    assert_eq!(client.proxy.as_deref(), Some("http://127.0.0.1:3128"));
    let tls = client.tls.as_ref().unwrap();
    assert_eq!(tls.ca_pem.as_deref(), Some(pki().ca_pem.as_str()));
    assert_eq!(
        tls.client_key_pem.as_ref().map(PrivateKeyPem::expose),
        Some(pki().client.key_pem.as_str())
    );
    let text = toml::to_string(&def.to_spec()).unwrap();
    assert_eq!(JobSpec::from_toml(&text).unwrap().validate().unwrap(), def);
    // The stored form (JSON) and the worker's assignment carry the key; the API's does not.
    let stored = serde_json::to_string(&def).unwrap();
    assert!(stored.contains("PRIVATE KEY"));
    let job = crate::test_support::job(1, def);
    let shown = serde_json::to_string(&job.clone().redacted()).unwrap();
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert!(shown.contains(REDACTED), "{shown}");
    assert!(!format!("{job:?}").contains("PRIVATE KEY"));
}

#[test]
fn a_job_stored_before_these_options_reads_the_same() {
    // `expect_body` was and stays a plain substring; a stored task without the new fields
    // decodes to a task on the shared client.
    let old = r#"{"method":"GET","url":"http://127.0.0.1/x","headers":[],"body":null,
        "timeout_ms":1000,"expect_status":[],"expect_body":"a.b"}"#;
    let task: crate::model::HttpTask = serde_json::from_str(old).unwrap();
    assert_eq!(task.expect_body.as_deref(), Some("a.b"));
    assert_eq!(task.expect_body_regex, None);
    assert!(task.client.is_default());
    let again: crate::model::HttpTask =
        serde_json::from_str(&serde_json::to_string(&task).unwrap()).unwrap();
    assert_eq!(again, task);
    // An old TOML file means the same too.
    let file =
        "name = \"j\"\non_demand = true\n[http]\nurl = \"http://a/\"\nexpect_body = \"a.b\"\n";
    let def = JobSpec::from_toml(file).unwrap().validate().unwrap();
    assert_eq!(def.http.expect_body.as_deref(), Some("a.b"));
    assert_eq!(def.http.expect_body_regex, None);
}

/// The full mTLS options with one edit.
fn tls_with(edit: fn(&mut TlsSpec)) -> Option<TlsSpec> {
    let mut tls = mtls();
    edit(&mut tls);
    Some(tls)
}

#[test]
fn bad_client_options_name_their_field() {
    type Edit = fn(&mut JobSpec);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "a key without a certificate",
            |s| s.http.tls = tls_with(|t| t.client_cert_pem = None),
            "http.tls.client_key_pem",
        ),
        (
            "a certificate without a key",
            |s| s.http.tls = tls_with(|t| t.client_key_pem = None),
            "http.tls.client_cert_pem",
        ),
        (
            "a CA that is not PEM",
            |s| s.http.tls = tls_with(|t| t.ca_pem = Some("not a certificate".into())),
            "http.tls.ca_pem",
        ),
        (
            "a CA PEM with broken base64",
            |s| {
                s.http.tls = tls_with(|t| {
                    t.ca_pem = Some(
                        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".into(),
                    )
                })
            },
            "http.tls.ca_pem",
        ),
        (
            "a key given as the certificate",
            |s| s.http.tls = tls_with(|t| t.client_cert_pem = t.client_key_pem.clone()),
            "http.tls.client_cert_pem",
        ),
        (
            "a key that is not PEM",
            |s| s.http.tls = tls_with(|t| t.client_key_pem = Some("secret-stuff".into())),
            "http.tls.client_key_pem",
        ),
        (
            "a key of another certificate",
            |s| s.http.tls = tls_with(|t| t.client_key_pem = Some(pki().server.key_pem.clone())),
            "http.tls.client_key_pem",
        ),
        (
            "insecure with a CA",
            |s| s.http.tls = tls_with(|t| t.insecure = true),
            "http.tls.insecure",
        ),
        (
            "TLS options on an http:// URL",
            |s| {
                s.http.url = "http://127.0.0.1:8080/".into();
                s.http.tls = tls_with(|_| {});
            },
            "http.tls",
        ),
        (
            "a path sent to the API",
            |s| s.http.tls = tls_with(|t| t.ca_file = Some("/etc/ssl/ca.pem".into())),
            "http.tls.ca_file",
        ),
        (
            "a huge CA",
            |s| s.http.tls = tls_with(|t| t.ca_pem = Some("x".repeat(MAX_CA_PEM + 1))),
            "http.tls.ca_pem",
        ),
        (
            "a proxy that is not a URL",
            |s| s.http.proxy = Some("127.0.0.1:3128".into()),
            "http.proxy",
        ),
        (
            "a socks proxy",
            |s| s.http.proxy = Some("socks5://127.0.0.1:1080".into()),
            "http.proxy",
        ),
        (
            "a proxy with credentials",
            |s| s.http.proxy = Some("http://user:pw@127.0.0.1:3128".into()),
            "http.proxy",
        ),
        (
            "a proxy with a path",
            |s| s.http.proxy = Some("http://127.0.0.1:3128/x".into()),
            "http.proxy",
        ),
        (
            "connect timeout longer than the total",
            |s| {
                s.http.timeout = Some("5s".into());
                s.http.connect_timeout = Some("6s".into());
            },
            "http.connect_timeout",
        ),
        (
            "zero connect timeout",
            |s| s.http.connect_timeout = Some("0s".into()),
            "http.connect_timeout",
        ),
        (
            "an invalid regex",
            |s| s.http.expect_body_regex = Some("(unclosed".into()),
            "http.expect_body_regex",
        ),
        (
            "a regex too large once compiled",
            |s| s.http.expect_body_regex = Some(r"\w{1000}".into()),
            "http.expect_body_regex",
        ),
        (
            "a regex too long",
            |s| s.http.expect_body_regex = Some("a".repeat(2000)),
            "http.expect_body_regex",
        ),
    ];
    for (what, edit, field) in cases {
        let mut spec = https();
        edit(&mut spec);
        let error = spec
            .validate()
            .err()
            .unwrap_or_else(|| panic!("{what}: should be refused"));
        assert_eq!(error.field, field, "{what}: {error}");
        assert!(
            !error.reason.contains("secret-stuff") && !error.reason.contains("PRIVATE KEY-----\n"),
            "{what}: the error quotes the key: {error}"
        );
    }
}

#[test]
fn a_redacted_key_keeps_the_stored_one_and_is_refused_without_one() {
    let mut spec = https();
    spec.http.tls = Some(mtls());
    let stored = spec.validate().unwrap();
    // What `job update` sends after reading the job from the API.
    let shown = crate::test_support::job(1, stored.clone()).redacted();
    let mut edited = shown.def.to_spec();
    edited.http.timeout = Some("5s".into());
    let def = edited.validate().unwrap();
    let kept = def.clone().with_stored_key(Some(&stored)).unwrap();
    assert_eq!(
        kept.http.client.tls.as_ref().unwrap().client_key_pem,
        stored.http.client.tls.as_ref().unwrap().client_key_pem
    );
    assert_eq!(kept.http.timeout_ms, 5000);
    let error = def.clone().with_stored_key(None).unwrap_err();
    assert_eq!(error.field, "http.tls.client_key_pem");
    // A new certificate with the stored key of the old one does not pass.
    let mut other_cert = edited.clone();
    other_cert.http.tls.as_mut().unwrap().client_cert_pem = Some(pki().server.cert_pem.clone());
    let error = other_cert
        .validate()
        .unwrap()
        .with_stored_key(Some(&stored))
        .unwrap_err();
    assert_eq!(error.field, "http.tls.client_key_pem", "{error}");
    // Jobs without a key are untouched.
    let plain = https().validate().unwrap();
    assert_eq!(plain.clone().with_stored_key(None).unwrap(), plain);
}

#[test]
fn files_are_read_relative_to_the_job_file_and_named_when_wrong() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/ca.pem"), &pki().ca_pem).unwrap();
    std::fs::write(dir.path().join("certs/client.pem"), &pki().client.cert_pem).unwrap();
    std::fs::write(dir.path().join("certs/client.key"), &pki().client.key_pem).unwrap();
    let file = dir.path().join("job.toml");
    std::fs::write(
        &file,
        "name = \"secure\"\non_demand = true\n[http]\nurl = \"https://127.0.0.1:8443/\"\n\
         [http.tls]\nca_file = \"certs/ca.pem\"\nclient_cert_file = \"certs/client.pem\"\n\
         client_key_file = \"certs/client.key\"\n",
    )
    .unwrap();
    let spec = JobSpec::from_toml_file(&file).unwrap();
    let tls = spec.http.tls.as_ref().unwrap();
    assert_eq!(tls.ca_file, None, "paths are replaced by what they hold");
    assert_eq!(tls.ca_pem.as_deref(), Some(pki().ca_pem.as_str()));
    let def = spec.validate().unwrap();
    assert!(def.http.client.tls.is_some());

    let mut missing = TlsSpec {
        ca_file: Some("certs/nope.pem".into()),
        ..TlsSpec::default()
    };
    let error = missing.read_files(dir.path()).unwrap_err();
    assert_eq!(error.field, "http.tls.ca_file");
    assert!(error.reason.contains("nope.pem"), "{error}");
    let mut both = TlsSpec {
        ca_file: Some("certs/ca.pem".into()),
        ca_pem: Some(pki().ca_pem.clone()),
        ..TlsSpec::default()
    };
    assert_eq!(
        both.read_files(dir.path()).unwrap_err().field,
        "http.tls.ca_file"
    );
    let mut wrong_kind = TlsSpec {
        client_key_file: Some("certs/ca.pem".into()),
        ..TlsSpec::default()
    };
    let error = wrong_kind.read_files(dir.path()).unwrap_err();
    assert_eq!(error.field, "http.tls.client_key_file");
    assert!(error.reason.contains("no private key"), "{error}");
}
