//! Who may log in over SSH, and the server's own host key.
//!
//! Operators are the public keys of two `authorized_keys`-format files: `--ssh-authorized-keys`
//! (full access) and `--ssh-readonly-keys` (look only). The files are read again at every login,
//! so adding or removing a key takes effect without a restart; they are also read once at start
//! so a mistake is refused before the server serves anyone. Options in front of a key (`from=`,
//! `command=`, …) are refused rather than ignored: Shoal would not honour them, and a key that
//! looks restricted but is not would be worse than an error.
//!
//! The host key is an Ed25519 key generated on first start in the data directory (mode 0600)
//! and kept, so clients see the same host every time.
//!
//! This module owns key files only: it never decides what a session may do beyond [`Access`].

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use russh::keys::ssh_key::authorized_keys::Entry;
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, public::KeyData};

/// File name of the host key in the data directory.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Every console action and every client command.
    Full,
    /// Look only: the console refuses every action, `exec` runs only reading commands.
    ReadOnly,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Full => "full",
            Access::ReadOnly => "read-only",
        })
    }
}

/// A logged-in operator: the key that proved itself, as logs name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// The key's comment in the keys file (often `user@host`), or `-`.
    pub comment: String,
    /// The user name the client asked for (informational: keys alone decide).
    pub user: String,
    pub access: Access,
}

/// The two key files.
#[derive(Clone, Debug, Default)]
pub struct KeyFiles {
    pub authorized: Option<PathBuf>,
    pub readonly: Option<PathBuf>,
}

/// One listed key.
#[derive(Clone, Debug)]
struct Listed {
    key: KeyData,
    comment: String,
    access: Access,
}

impl KeyFiles {
    /// Reads both files; any line that is not a plain public key is an error naming the file,
    /// the line and the fix.
    fn load(&self) -> anyhow::Result<Vec<Listed>> {
        let mut listed = Vec::new();
        if let Some(path) = &self.readonly {
            listed.extend(read_keys(path, "--ssh-readonly-keys", Access::ReadOnly)?);
        }
        if let Some(path) = &self.authorized {
            listed.extend(read_keys(path, "--ssh-authorized-keys", Access::Full)?);
        }
        Ok(listed)
    }

    /// Checks the files at start-up and says how many keys each gives.
    pub fn check(&self) -> anyhow::Result<(usize, usize)> {
        if self.authorized.is_none() && self.readonly.is_none() {
            anyhow::bail!(
                "--ssh needs --ssh-authorized-keys FILE or --ssh-readonly-keys FILE (or both): \
                 public keys in authorized_keys format, one per line; nobody could log in \
                 otherwise"
            );
        }
        let listed = self.load()?;
        let count = |access| listed.iter().filter(|l| l.access == access).count();
        Ok((count(Access::Full), count(Access::ReadOnly)))
    }

    /// The operator `key` speaks for, or `None` when it is listed in neither file. A key in both
    /// files is read-only: the narrower grant wins.
    pub fn find(&self, key: &PublicKey, user: &str) -> anyhow::Result<Option<Operator>> {
        let listed = self.load()?;
        // Read-only keys are listed first, so the first match is the narrower grant.
        Ok(listed
            .into_iter()
            .find(|l| &l.key == key.key_data())
            .map(|l| Operator {
                fingerprint: fingerprint(key),
                comment: l.comment,
                user: user.to_string(),
                access: l.access,
            }))
    }
}

/// `SHA256:…` of a public key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn read_keys(path: &Path, flag: &str, access: Access) -> anyhow::Result<Vec<Listed>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "{flag} {}: cannot read the keys file; give a readable file of public keys \
             (authorized_keys format)",
            path.display()
        )
    })?;
    let mut listed = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{flag} {} line {}", path.display(), index + 1);
        let entry: Entry = line.parse().map_err(|error| {
            anyhow::anyhow!(
                "{at}: not a public key ({error}); each line is one key as in authorized_keys, \
                 e.g. `ssh-ed25519 AAAAC3Nza… ops@laptop`"
            )
        })?;
        if !entry.config_opts().is_empty() {
            anyhow::bail!(
                "{at}: options ({}) are not supported: Shoal would not honour them. Remove them; \
                 for a look-only key, list it in --ssh-readonly-keys instead",
                entry.config_opts().as_str()
            );
        }
        let key = entry.public_key();
        let comment = key.comment().to_string();
        listed.push(Listed {
            key: key.key_data().clone(),
            comment: if comment.is_empty() {
                "-".into()
            } else {
                comment
            },
            access,
        });
    }
    Ok(listed)
}

/// Loads the host key from `data_dir`, generating it on first start.
pub fn host_key(data_dir: &Path) -> anyhow::Result<PrivateKey> {
    let path = data_dir.join(HOST_KEY_FILE);
    if path.exists() {
        warn_if_readable_by_others(&path);
        return PrivateKey::read_openssh_file(&path).with_context(|| {
            format!(
                "cannot read the SSH host key {}: restore it from a backup, or delete it to \
                 generate a new one (clients will then warn that the host key changed)",
                path.display()
            )
        });
    }
    let key = generate_host_key()?;
    write_private(&path, &key)?;
    tracing::info!(path = %path.display(), fingerprint = %fingerprint(key.public_key()),
        "generated the SSH host key");
    Ok(key)
}

fn generate_host_key() -> anyhow::Result<PrivateKey> {
    // russh's own generator wants rand 0.10's RNG traits; an Ed25519 key is just 32 random bytes
    // from the operating system, which rand 0.9's OsRng gives without a second rand.
    let mut seed = [0u8; 32];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut seed)
        .context("the operating system's random source failed; cannot make an SSH host key")?;
    let keypair = Ed25519Keypair::from_seed(&seed);
    seed.fill(0);
    PrivateKey::new(KeypairData::Ed25519(keypair), "shoal host key")
        .context("cannot build the SSH host key")
}

/// Writes the key with mode 0600, via a temporary file renamed into place, so a crash never
/// leaves a half-written key (which would change the host's identity on the next start).
fn write_private(path: &Path, key: &PrivateKey) -> anyhow::Result<()> {
    let text = key
        .to_openssh(LineEnding::LF)
        .context("cannot encode the SSH host key")?;
    let temp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    written
        .and_then(|()| std::fs::rename(&temp, path))
        .with_context(|| {
            format!(
                "cannot write the SSH host key {}: is the data directory writable?",
                path.display()
            )
        })
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the SSH host key is readable by other users; run chmod 600 on it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINZn0UXlPRdAGHN3gRvNqAt6pDXQtU4qfLqemAVv0TRm";

    fn key() -> PublicKey {
        ED.parse().unwrap()
    }

    #[test]
    fn keys_are_found_with_their_comment_and_access() {
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().join("full");
        let look = dir.path().join("look");
        std::fs::write(&full, format!("# operators\n\n{ED} ops@laptop\n")).unwrap();
        std::fs::write(&look, "").unwrap();
        let files = KeyFiles {
            authorized: Some(full.clone()),
            readonly: Some(look.clone()),
        };
        assert_eq!(files.check().unwrap(), (1, 0));
        let found = files.find(&key(), "ops").unwrap().unwrap();
        assert_eq!(found.comment, "ops@laptop");
        assert_eq!(found.access, Access::Full);
        assert!(found.fingerprint.starts_with("SHA256:"), "{found:?}");

        // Also listed as read-only: the narrower grant wins. Files are read at each login.
        std::fs::write(&look, format!("{ED}\n")).unwrap();
        let found = files.find(&key(), "ops").unwrap().unwrap();
        assert_eq!(
            (found.access, found.comment.as_str()),
            (Access::ReadOnly, "-")
        );

        std::fs::write(&full, "").unwrap();
        std::fs::write(&look, "").unwrap();
        assert_eq!(files.find(&key(), "ops").unwrap(), None);
    }

    #[test]
    fn bad_lines_and_options_are_refused_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let files = KeyFiles {
            authorized: Some(path.clone()),
            readonly: None,
        };
        std::fs::write(&path, format!("{ED}\nnot a key\n")).unwrap();
        let error = files.check().unwrap_err().to_string();
        assert!(error.contains("line 2: not a public key"), "{error}");
        std::fs::write(&path, format!("from=\"10.0.0.1\" {ED} ops@laptop\n")).unwrap();
        let error = files.check().unwrap_err().to_string();
        assert!(
            error.contains("line 1: options (from=\"10.0.0.1\")"),
            "{error}"
        );
        assert!(error.contains("--ssh-readonly-keys"), "{error}");
        let error = KeyFiles::default().check().unwrap_err().to_string();
        assert!(error.contains("--ssh-authorized-keys FILE"), "{error}");
    }

    #[test]
    fn host_key_is_generated_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = host_key(dir.path()).unwrap();
        let again = host_key(dir.path()).unwrap();
        assert_eq!(
            fingerprint(first.public_key()),
            fingerprint(again.public_key())
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(HOST_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            fingerprint(host_key(other.path()).unwrap().public_key()),
            fingerprint(first.public_key())
        );
    }
}
