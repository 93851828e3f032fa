//! README commands must not rot. Every command in a `sh` block of the README is parsed by the real
//! CLI (or checked to exist, for scripts and cargo), every TOML block is a valid job, and the
//! blocks marked `<!-- readme-test: run -->` are run, line by line, against a live server.

mod common;

use std::path::Path;

use clap::Parser;
use common::*;

struct Block {
    lang: String,
    run: bool,
    lines: Vec<String>,
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    let mut marked = false;
    for line in text.lines() {
        if let Some(fence) = line.strip_prefix("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => {
                    current = Some(Block {
                        lang: fence.trim().to_string(),
                        run: marked,
                        lines: Vec::new(),
                    })
                }
            }
            marked = false;
            continue;
        }
        match current.as_mut() {
            Some(block) => block.lines.push(line.to_string()),
            None if !line.trim().is_empty() => marked = line.trim() == "<!-- readme-test: run -->",
            None => {}
        }
    }
    assert!(current.is_none(), "README has an unclosed code block");
    blocks
}

/// The commands of a shell block: comments dropped, `&&` chains split, words shell-split.
fn commands(block: &Block) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    for line in &block.lines {
        let words = shell_words::split(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let words: Vec<String> = words
            .into_iter()
            .take_while(|w| !w.starts_with('#'))
            .collect();
        for command in words.split(|w| w == "&&") {
            if !command.is_empty() {
                commands.push(command.to_vec());
            }
        }
    }
    commands
}

/// Checks one README command; returns the `shoal` arguments if it is a `shoal` command.
fn check(command: &[String]) -> Option<Vec<String>> {
    // Environment assignments and an ssh hop in front do not change what runs.
    let mut words: Vec<&str> = command
        .iter()
        .map(String::as_str)
        .skip_while(|w| w.contains('=') && !w.starts_with('-'))
        .collect();
    if words.first() == Some(&"ssh") {
        let mut rest = words[1..].iter();
        let mut after = Vec::new();
        // `-p PORT`: Shoal's own SSH console, whose commands are the client's without `shoal`.
        let mut shoal_console = false;
        while let Some(word) = rest.next() {
            match *word {
                "-t" | "-N" => {}
                "-L" => {
                    rest.next();
                }
                "-p" => {
                    shoal_console = true;
                    rest.next();
                }
                _host => {
                    after = rest.copied().collect();
                    break;
                }
            }
        }
        if after.is_empty() {
            return None;
        }
        if shoal_console {
            let line = after.join(" ");
            if let Err(refusal) = shoal::cli::remote::parse(&line) {
                panic!("README command over SSH {line:?} is refused: {}", refusal.0);
            }
            after.insert(0, "shoal");
        }
        words = after;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match words.as_slice() {
        ["cargo", "run", "--release", "--", args @ ..] => Some(shoal_args(args)),
        ["cargo", "run", "--release", "--example", name, "--", ..] => {
            assert!(
                root.join(format!("examples/{name}.rs")).exists(),
                "{words:?}"
            );
            None
        }
        ["cargo", "test", "--test", name, ..] => {
            assert!(root.join(format!("tests/{name}.rs")).exists(), "{words:?}");
            None
        }
        [program, args @ ..] if program.starts_with("target/release/examples/") => {
            let name = program.trim_start_matches("target/release/examples/");
            let source = std::fs::read_to_string(root.join(format!("examples/{name}.rs")))
                .unwrap_or_else(|e| panic!("{words:?}: examples/{name}.rs: {e}"));
            for arg in args {
                assert!(
                    source.contains(&format!("\"{arg}\"")),
                    "{words:?}: examples/{name}.rs knows no argument {arg:?}"
                );
            }
            None
        }
        ["cargo", "test", "--workspace"]
        | ["cargo", "build", "--release", "--bins", "--examples"]
        | ["cargo", "install", "--path", "."] => None,
        // The CLI's own environment: a variable it reads, set for the commands after it.
        ["export", assignment] if assignment.starts_with("SHOAL_SERVER=") => {
            let urls = assignment.trim_start_matches("SHOAL_SERVER=");
            if let Err(error) = shoal::client::ApiClient::new(urls, None, &Default::default()) {
                panic!("README {words:?}: {error:#}");
            }
            None
        }
        [script] if script.ends_with(".sh") => {
            assert!(root.join(script).exists(), "{script} does not exist");
            None
        }
        [program, args @ ..] if *program == "shoal" || program.ends_with("/shoal") => {
            Some(shoal_args(args))
        }
        _ => panic!("README command {words:?} is not checked by tests/readme.rs; add it there"),
    }
}

fn shoal_args(args: &[&str]) -> Vec<String> {
    let argv: Vec<&str> = std::iter::once("shoal")
        .chain(args.iter().copied())
        .collect();
    if let Err(error) = shoal::cli::Cli::try_parse_from(&argv) {
        panic!("README command {argv:?} is refused by the CLI:\n{error}");
    }
    args.iter().map(|a| a.to_string()).collect()
}

#[test]
fn every_shell_command_in_the_readme_is_accepted_by_the_cli() {
    let mut checked = 0;
    for block in blocks(&readme()).iter().filter(|b| b.lang == "sh") {
        for command in commands(block) {
            check(&command);
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} commands found in the README");
}

#[path = "../src/test_pki.rs"]
mod pki;

#[test]
fn every_toml_block_in_the_readme_is_a_valid_job() {
    // The PEM files the README's TLS example names, freshly made, next to its job file.
    let dir = tempfile::tempdir().unwrap();
    let pki = pki::TestPki::new();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(dir.path().join("certs/client.pem"), &pki.client.cert_pem).unwrap();
    std::fs::write(dir.path().join("certs/client.key"), &pki.client.key_pem).unwrap();
    let mut checked = 0;
    for block in blocks(&readme()).iter().filter(|b| b.lang == "toml") {
        let text = block.lines.join("\n");
        // A channel file (it has a `kind`, which no job has) is checked as a channel.
        if let Ok(channel) = shoal::alert::spec::ChannelSpec::from_toml(&text) {
            channel
                .validate()
                .unwrap_or_else(|e| panic!("README channel is invalid: {e}\n{text}"));
            continue;
        }
        let mut spec = shoal::spec::JobSpec::from_toml(&text)
            .unwrap_or_else(|e| panic!("README job does not parse: {e}\n{text}"));
        spec.read_files(dir.path())
            .unwrap_or_else(|e| panic!("README job names files it cannot read: {e}\n{text}"));
        spec.validate()
            .unwrap_or_else(|e| panic!("README job is invalid: {e}\n{text}"));
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} job files found in the README");
}

#[test]
fn the_readmes_first_steps_run_against_a_live_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_up(dir.path(), &["--workers", "1"]);
    let api = server.api.to_string();
    let mut ran = 0;
    for block in blocks(&readme()).iter().filter(|b| b.run) {
        for command in commands(block) {
            let args = check(&command).expect("only shoal commands are run");
            let args: Vec<String> = args
                .iter()
                .map(|a| a.replace("127.0.0.1:7070", &api))
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = server.cli(&args);
            assert!(
                out.status.success(),
                "README command `shoal {}` failed:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            ran += 1;
        }
    }
    assert!(ran >= 5, "only {ran} README commands ran");
}
