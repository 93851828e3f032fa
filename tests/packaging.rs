//! What an operator installs: the example systemd units (checked by `systemd-analyze verify`
//! where systemd is installed), the example config file they read, shell completions, and help
//! text that stands in for a man page.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn units() -> [&'static str; 2] {
    ["shoal-server.service", "shoal-worker.service"]
}

#[test]
fn the_systemd_units_verify_and_are_hardened() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/systemd");
    for unit in units() {
        let text = std::fs::read_to_string(examples.join(unit)).expect("read the unit");
        for option in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=",
            "SystemCallFilter=@system-service",
            "--config /etc/shoal/shoal.toml",
        ] {
            assert!(text.contains(option), "{unit} lacks {option}");
        }
    }
    let server = std::fs::read_to_string(examples.join("shoal-server.service")).unwrap();
    assert!(
        server.contains("ReadWritePaths=/var/lib/shoal")
            && server.contains("--data-dir /var/lib/shoal")
    );

    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!(
            "SKIPPED: systemd-analyze is not installed (apt-get install systemd); the units were not verified"
        );
        return;
    };
    assert!(probe.status.success());
    // verify checks that ExecStart's binary exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for unit in units() {
        let text = std::fs::read_to_string(examples.join(unit)).unwrap();
        let path = dir.path().join(unit);
        std::fs::write(&path, text.replace("/usr/local/bin/shoal", BIN)).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Only complaints about our units count (the host's own units may have warnings).
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("shoal-")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn the_example_config_file_is_valid_for_both_daemons() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/systemd/shoal.toml");
    for (daemon, key) in [("server", "api"), ("worker", "capacity")] {
        let out = Command::new(BIN)
            .args([
                "config",
                "print",
                daemon,
                "--config",
                file.to_str().unwrap(),
            ])
            .env_remove("SHOAL_CONFIG")
            .env_remove("SHOAL_TOKEN")
            .env_remove("SHOAL_API")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap();
        assert!(
            line.contains("# file "),
            "{daemon}.{key} comes from the file: {line}"
        );
        assert!(
            !text.contains("replace-with"),
            "tokens are never printed: {text}"
        );
    }
}

#[test]
fn completions_are_generated_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef shoal"),
        ("fish", "complete -c shoal"),
    ] {
        let out = cli(&["completions", shell]);
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell} script lacks {marker:?}");
        assert!(
            script.contains("metrics-job-labels"),
            "{shell} script completes the server's flags"
        );
    }
    // The bash script is valid bash.
    let script = cli(&["completions", "bash"]).stdout;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shoal.bash");
    std::fs::write(&path, script).unwrap();
    if let Ok(out) = Command::new("bash").arg("-n").arg(&path).output() {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = cli(&["completions", "tcsh"]);
    assert!(!out.status.success(), "an unknown shell is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}

#[test]
fn help_stands_in_for_a_man_page() {
    let out = cli(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for section in [
        "Getting started:",
        "Configuration",
        "Environment:",
        "SHOAL_TOKEN_READ",
        "Files:",
        "Exit status:",
    ] {
        assert!(text.contains(section), "shoal --help lacks {section:?}");
    }
    let out = cli(&["help", "server"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--token-admin",
        "--config",
        "--metrics-job-labels",
        "[env: SHOAL_DATA_DIR=",
    ] {
        assert!(text.contains(flag), "shoal help server lacks {flag:?}");
    }
}
