//! The daemons' config file: the order flags > environment > file > defaults, shown by `shoal
//! config print` for each combination; a server really started from a file; and the errors of a
//! bad file, each naming the file and the key.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn shoal(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir);
    for name in [
        "SHOAL_CONFIG",
        "SHOAL_RETAIN_AGE",
        "SHOAL_TOKEN",
        "SHOAL_API",
    ] {
        command.env_remove(name);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run shoal")
}

/// The line of `shoal config print` for `key`: (value, source).
fn printed(out: &Output, key: &str) -> (String, String) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "config print failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"));
    let (assignment, source) = line.split_once(" # ").expect("a source comment");
    let value = assignment.trim().trim_start_matches(&format!("{key} = "));
    (value.to_string(), source.trim().to_string())
}

#[test]
fn flags_beat_the_environment_which_beats_the_file_which_beats_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shoal.toml"),
        "[server]\nretain_age = \"30d\"\nmax_admin_requests = 7\n\n[worker]\ncapacity = 16\n",
    )
    .unwrap();
    // (file has it, environment, flag) → (value, source)
    type Row<'a> = (bool, Option<&'a str>, Option<&'a str>, &'a str, &'a str);
    let table: [Row; 5] = [
        (false, None, None, "\"7d\"", "default"),
        (true, None, None, "\"30d\"", "file shoal.toml"),
        (true, Some("20d"), None, "\"20d\"", "env SHOAL_RETAIN_AGE"),
        (true, Some("20d"), Some("10d"), "\"10d\"", "flag"),
        (false, None, Some("10d"), "\"10d\"", "flag"),
    ];
    let empty = tempfile::tempdir().unwrap();
    for (file, env, flag, value, source) in table {
        let cwd = if file { dir.path() } else { empty.path() };
        let mut args = vec!["config", "print", "server"];
        if let Some(flag) = flag {
            args.extend(["--", "--retain-age", flag]);
        }
        let env: Vec<(&str, &str)> = env.map(|v| ("SHOAL_RETAIN_AGE", v)).into_iter().collect();
        let out = shoal(&args, &env, cwd);
        assert_eq!(
            printed(&out, "retain_age"),
            (value.to_string(), source.to_string()),
            "file {file}, env {env:?}, flag {flag:?}"
        );
    }
    // A setting without an environment variable: file over default, flag over file.
    let out = shoal(&["config", "print", "worker"], &[], dir.path());
    assert_eq!(
        printed(&out, "capacity"),
        ("16".into(), "file shoal.toml".into())
    );
    let out = shoal(
        &["config", "print", "worker", "--", "--capacity", "3"],
        &[],
        dir.path(),
    );
    assert_eq!(printed(&out, "capacity"), ("3".into(), "flag".into()));
    // SHOAL_CONFIG names the file from anywhere; `up` reads [server] too.
    let path = dir.path().join("shoal.toml");
    let out = shoal(
        &["config", "print", "up"],
        &[("SHOAL_CONFIG", path.to_str().unwrap())],
        empty.path(),
    );
    assert_eq!(printed(&out, "max_admin_requests").0, "7");
    // A token is never printed.
    let out = shoal(
        &["config", "print", "server"],
        &[("SHOAL_TOKEN", "very-secret")],
        empty.path(),
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("very-secret"));
    assert_eq!(
        printed(&out, "token"),
        ("\"<hidden>\"".into(), "env SHOAL_TOKEN".into())
    );
}

#[test]
fn a_server_runs_with_the_settings_of_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_tcp_port());
    let gossip = format!("127.0.0.1:{}", free_udp_port());
    let data = dir.path().join("from-file");
    let path = dir.path().join("prod.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\napi = \"{api}\"\ngossip = \"{gossip}\"\ndata_dir = \"{}\"\nid = \"filed\"\n",
            data.display()
        ),
    )
    .unwrap();
    let _server = Node::spawn(
        "server",
        dir.path(),
        &["server", "--config", path.to_str().unwrap()],
    );
    let members = eventually("the server to answer on the file's --api", || {
        let (status, body) = http(api.parse().unwrap(), "GET", "/api/v1/members", None)?;
        (status == 200).then_some(body)
    });
    assert!(members.contains("\"filed\""), "the file's id: {members}");
    assert!(
        data.join("shoal.redb").is_file(),
        "the file's data_dir is used"
    );
}

#[test]
fn a_bad_file_is_refused_at_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "[server]\nretain_sweep_every = \"soon\"\n",
            "server",
            &["server.retain_sweep_every", "\"soon\" is not a duration"],
        ),
        (
            "[server]\nport = 7070\n",
            "server",
            &["unknown key server.port", "[server] takes: data_dir, api"],
        ),
        (
            "[worker]\ncapacity = \"many\"\n",
            "worker",
            &["worker.capacity", "'many'"],
        ),
        (
            "api = \"0.0.0.0:7070\"\n",
            "server",
            &["unknown key \"api\"", "[server], [worker] and [up]"],
        ),
        (
            "[servre]\napi = \"0.0.0.0:7070\"\n",
            "server",
            &["unknown section \"servre\""],
        ),
        ("[server\napi = 1\n", "server", &["bad.toml", "line 1"]),
    ];
    for (text, daemon, needles) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = shoal(
            &[daemon, "--config", path.to_str().unwrap()],
            &[],
            dir.path(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} was accepted");
        assert!(stderr.contains("config file"), "{text:?}: {stderr}");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{text:?}: {needle:?} not in {stderr}"
            );
        }
    }
    let out = shoal(&["server", "--config", "missing.toml"], &[], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config missing.toml: no such file"));
}
