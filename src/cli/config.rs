//! The daemons' config file (`shoal.toml`, `--config FILE`, `SHOAL_CONFIG`) and
//! `shoal config print`.
//!
//! Every daemon setting is a clap flag; the file only fills in the ones that neither a flag nor
//! an environment variable set, so the order is flags > environment > file > defaults. The file's
//! keys are the flags' names in snake_case, under `[server]` (for `shoal server` and
//! `shoal up`), `[worker]` (`shoal worker`) and `[up]` (`shoal up`'s own settings, which also
//! override `[server]` there):
//!
//! ```toml
//! [server]
//! data_dir = "/var/lib/shoal"
//! api = "0.0.0.0:7070"
//! retain_age = "30d"
//! metrics_job_labels = ["nightly-report"]
//!
//! [worker]
//! join = ["10.0.0.5:7946"]
//! capacity = 16
//! tags = ["billing"]
//! ```
//!
//! The file's values are handed to clap as if they were flags, so each is parsed and validated
//! exactly like its flag; an error names the file and the key. Unknown sections and keys are
//! refused with the keys that exist. This module owns the merge and its provenance; it must never
//! interpret a setting itself (that is the flag's parser and `cli::server_config`'s job).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// The file read when neither `--config` nor `SHOAL_CONFIG` names one, if it exists.
pub const DEFAULT_FILE: &str = "shoal.toml";

/// The sections of the file, and the subcommand whose flags each may set.
const SECTIONS: [&str; 3] = ["server", "worker", "up"];

/// Settings never read from the file: the file's own name, and diagnostics.
const NOT_IN_FILE: [&str; 3] = ["config", "help", "version"];

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(String),
    File(PathBuf),
    Default,
    Unset,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Default => f.write_str("default"),
            Source::Unset => f.write_str("unset"),
        }
    }
}

/// A daemon's command line with the config file merged in.
pub struct Merged {
    pub matches: ArgMatches,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Arg ids whose value came from the file.
    from_file: Vec<String>,
}

/// Parses `argv` against `cli`; for `server`, `worker` and `up`, merges the config file in.
/// Errors of clap itself (bad flags, `--help`) are returned as clap errors for clap to print.
pub fn merge(cli: &Command, argv: Vec<OsString>) -> Result<Merged, MergeError> {
    let matches = cli.clone().try_get_matches_from(&argv)?;
    let Some((name, sub)) = matches.subcommand() else {
        return Ok(Merged {
            matches,
            file: None,
            from_file: Vec::new(),
        });
    };
    if !SECTIONS.contains(&name) {
        return Ok(Merged {
            matches,
            file: None,
            from_file: Vec::new(),
        });
    }
    let Some(path) = config_path(sub)? else {
        return Ok(Merged {
            matches,
            file: None,
            from_file: Vec::new(),
        });
    };
    let table = read_file(&path, cli)?;
    let sub_cmd = subcommand(cli, name);
    // `up` is a server too: [server] first, then [up] over it.
    let sections: &[&str] = if name == "up" {
        &["server", "up"]
    } else {
        &[name]
    };
    let mut settings: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for section in sections {
        let Some(values) = table.get(*section) else {
            continue;
        };
        for (key, value) in values {
            settings.insert(key.clone(), (section.to_string(), value.clone()));
        }
    }
    let mut extra: Vec<OsString> = Vec::new();
    let mut from_file = Vec::new();
    let mut injected: Vec<(String, String, Vec<OsString>)> = Vec::new();
    for (key, (section, values)) in &settings {
        let Some(arg) = sub_cmd.get_arguments().find(|a| a.get_id().as_str() == key) else {
            // Keys of [server] that `up` has too are checked against `server`; this key is valid
            // in its section (read_file checked) but means nothing to this subcommand.
            continue;
        };
        if matches!(
            sub.value_source(key),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let Some(long) = arg.get_long() else {
            continue;
        };
        let mut args = Vec::new();
        if arg.get_action().takes_values() {
            for value in values {
                args.push(OsString::from(format!("--{long}")));
                args.push(OsString::from(value));
            }
        } else if values.iter().any(|v| v == "true") {
            args.push(OsString::from(format!("--{long}")));
        }
        from_file.push(key.clone());
        injected.push((format!("{section}.{key}"), long.to_string(), args.clone()));
        extra.extend(args);
    }
    if extra.is_empty() {
        return Ok(Merged {
            matches,
            file: Some(path),
            from_file,
        });
    }
    let mut full = argv.clone();
    full.extend(extra);
    match cli.clone().try_get_matches_from(&full) {
        Ok(matches) => Ok(Merged {
            matches,
            file: Some(path),
            from_file,
        }),
        Err(_) => {
            // Find the key to blame: the first whose value alone is refused.
            for (key, long, args) in &injected {
                let mut alone = vec![OsString::from("shoal"), OsString::from(name)];
                alone.extend(args.iter().cloned());
                if let Err(error) = cli.clone().try_get_matches_from(&alone) {
                    return Err(MergeError::Other(anyhow::anyhow!(
                        "config file {}: {key}: {} (the same value as --{long} would be)",
                        path.display(),
                        clap_reason(&error)
                    )));
                }
            }
            Err(MergeError::Other(anyhow::anyhow!(
                "config file {}: its settings conflict with the command line",
                path.display()
            )))
        }
    }
}

/// How merging fails: as clap (usage errors, `--help`, `--version`: clap prints and exits), or
/// with a message naming the file and key.
pub enum MergeError {
    Clap(clap::Error),
    Other(anyhow::Error),
}

impl From<clap::Error> for MergeError {
    fn from(error: clap::Error) -> Self {
        MergeError::Clap(error)
    }
}

impl From<anyhow::Error> for MergeError {
    fn from(error: anyhow::Error) -> Self {
        MergeError::Other(error)
    }
}

/// The part of clap's message that says what was wrong, without its usage lines.
fn clap_reason(error: &clap::Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.trim_start_matches("error: ").to_string()
}

fn subcommand<'a>(cli: &'a Command, name: &str) -> &'a Command {
    cli.find_subcommand(name)
        .unwrap_or_else(|| unreachable!("the subcommand {name} was just parsed"))
}

/// `--config`/`SHOAL_CONFIG` if given (it must exist), else `./shoal.toml` if it exists.
fn config_path(sub: &ArgMatches) -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = sub.get_one::<PathBuf>("config") {
        if !path.is_file() {
            bail!(
                "--config {}: no such file (SHOAL_CONFIG also names it); write one (see `shoal \
                 config print` for every key) or leave the option out",
                path.display()
            );
        }
        return Ok(Some(path.clone()));
    }
    let default = Path::new(DEFAULT_FILE);
    Ok(default.is_file().then(|| default.to_path_buf()))
}

/// The file as `section → key → values` (arrays give several values), every section and key
/// checked against the subcommands' flags.
fn read_file(
    path: &Path,
    cli: &Command,
) -> anyhow::Result<BTreeMap<String, BTreeMap<String, Vec<String>>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|error| anyhow::anyhow!("config file {}: {error}", path.display()))?;
    let mut out = BTreeMap::new();
    for (section, body) in table {
        if !SECTIONS.contains(&section.as_str()) {
            bail!(
                "config file {}: unknown {} {section:?}; the sections are [server], [worker] and \
                 [up] (settings go inside one of them)",
                path.display(),
                if body.is_table() { "section" } else { "key" }
            );
        }
        let toml::Value::Table(body) = body else {
            bail!(
                "config file {}: {section} must be a section ([{section}]), not a value",
                path.display()
            );
        };
        let allowed = settable(subcommand(cli, &section));
        let mut keys = BTreeMap::new();
        for (key, value) in body {
            if !allowed.contains(&key) {
                bail!(
                    "config file {}: unknown key {section}.{key}; [{section}] takes: {}",
                    path.display(),
                    allowed.join(", ")
                );
            }
            let values = match value {
                toml::Value::Array(items) => items
                    .into_iter()
                    .map(|item| scalar(&item))
                    .collect::<Option<Vec<_>>>(),
                other => scalar(&other).map(|v| vec![v]),
            };
            let Some(values) = values else {
                bail!(
                    "config file {}: {section}.{key}: write a string, number, boolean or a list \
                     of them",
                    path.display()
                );
            };
            keys.insert(key, values);
        }
        out.insert(section, keys);
    }
    Ok(out)
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The keys a section may set: its subcommand's visible flags, less the config file's own.
fn settable(sub: &Command) -> Vec<String> {
    sub.get_arguments()
        .filter(|a| a.get_long().is_some() && !a.is_hide_set())
        .map(|a| a.get_id().to_string())
        .filter(|id| !NOT_IN_FILE.contains(&id.as_str()))
        .collect()
}

/// One line of `shoal config print`.
pub struct Effective {
    pub key: String,
    pub values: Vec<String>,
    pub source: Source,
}

impl Merged {
    /// Every setting of the daemon subcommand, its value and where it came from.
    pub fn effective(&self, cli: &Command) -> Vec<Effective> {
        let Some((name, sub)) = self.matches.subcommand() else {
            return Vec::new();
        };
        let sub_cmd = subcommand(cli, name);
        let mut out = Vec::new();
        for arg in sub_cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.get_long().is_none() || arg.is_hide_set() || NOT_IN_FILE.contains(&id) {
                continue;
            }
            let values: Vec<String> = sub
                .get_raw(id)
                .map(|raw| {
                    raw.map(|v| {
                        if id.contains("token") {
                            "<hidden>".to_string()
                        } else {
                            v.to_string_lossy().into_owned()
                        }
                    })
                    .collect()
                })
                .unwrap_or_default();
            let source = if self.from_file.iter().any(|k| k == id) {
                Source::File(self.file.clone().unwrap_or_default())
            } else {
                match sub.value_source(id) {
                    Some(ValueSource::CommandLine) => Source::Flag,
                    Some(ValueSource::EnvVariable) => Source::Env(
                        arg.get_env()
                            .map(|e| e.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    ),
                    Some(ValueSource::DefaultValue) => Source::Default,
                    _ => Source::Unset,
                }
            };
            out.push(Effective {
                key: id.to_string(),
                values,
                source,
            });
        }
        out
    }
}

/// `shoal config print`: the settings as a config file would hold them, each with its source.
pub fn print(
    cli: &Command,
    daemon: &str,
    config: Option<&Path>,
    flags: Vec<OsString>,
) -> anyhow::Result<()> {
    let mut argv = vec![OsString::from("shoal"), OsString::from(daemon)];
    if let Some(path) = config {
        argv.push("--config".into());
        argv.push(path.into());
    }
    argv.extend(flags);
    let merged = match merge(cli, argv) {
        Ok(merged) => merged,
        Err(MergeError::Clap(error)) => bail!("{}", clap_reason(&error)),
        Err(MergeError::Other(error)) => return Err(error),
    };
    let section = if daemon == "up" { "up" } else { daemon };
    match &merged.file {
        Some(path) => println!(
            "# shoal {daemon}: effective settings; config file {}",
            path.display()
        ),
        None => println!(
            "# shoal {daemon}: effective settings; no config file (--config, SHOAL_CONFIG or ./{DEFAULT_FILE})"
        ),
    }
    println!("[{section}]");
    for line in merged.effective(cli) {
        let value = match line.values.as_slice() {
            [] => String::new(),
            [one] if !is_list(cli, daemon, &line.key) => toml_value(one),
            many => format!(
                "[{}]",
                many.iter()
                    .map(|v| toml_value(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let assignment = if line.values.is_empty() {
            format!("# {} =", line.key)
        } else {
            format!("{} = {value}", line.key)
        };
        println!("{assignment:<48} # {}", line.source);
    }
    Ok(())
}

fn is_list(cli: &Command, daemon: &str, key: &str) -> bool {
    subcommand(cli, daemon)
        .get_arguments()
        .find(|a| a.get_id().as_str() == key)
        .is_some_and(|a| matches!(a.get_action(), clap::ArgAction::Append))
}

/// A value as TOML writes it: numbers and booleans bare, everything else quoted.
fn toml_value(value: &str) -> String {
    if value.parse::<f64>().is_ok() || value == "true" || value == "false" {
        value.to_string()
    } else {
        toml::Value::String(value.to_string()).to_string()
    }
}
