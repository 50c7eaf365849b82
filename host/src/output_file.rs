//! How Vigil writes every file it creates (keys, config, bundles, evidence,
//! exports, anchors): atomically, privately by default, and never through a
//! name someone else could have planted.
//!
//! A temporary file with a random name is created next to the destination
//! with `O_CREAT | O_EXCL | O_NOFOLLOW` (a file or symlink planted at that
//! name makes the create fail instead of being followed or reused), written,
//! fsynced, and renamed over the destination; then the directory is fsynced.
//! A destination that is a symbolic link is refused: replacing the link
//! would be safe, but it would not write where the user pointed.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Who may read the file written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Mode 0600: secrets, decrypted exports — the default for outputs.
    Private,
    /// Mode 0644: public keys and configuration meant to be read by others.
    Public,
}

impl Access {
    fn mode(self) -> u32 {
        match self {
            Access::Private => 0o600,
            Access::Public => 0o644,
        }
    }
}

/// The directory part of `path` (`.` when it has none).
pub fn dir_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Writes `bytes` to `path` atomically with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes, Access::Private)
}

/// Writes `bytes` to `path` atomically (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> Result<()> {
    let Some(name) = path.file_name() else {
        bail!("{} does not name a file", path.display());
    };
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!("{} is a symbolic link: Vigil does not write through links; give the real path", path.display());
    }
    let dir = dir_of(path);
    let random: [u8; 8] = crate::random::bytes().context("reading /dev/urandom for a temporary file name")?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), hex::encode(random)));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(access.mode())
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = file
        .write_all(bytes)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|_| {
            fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-output-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn outputs_are_private_atomic_and_never_follow_links() {
        let dir = scratch("links");
        let out = dir.join("export.jsonl");
        write_private(&out, b"one").unwrap();
        assert_eq!(fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
        write_private(&out, b"two").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"two");
        write_atomic(&dir.join("k.pub"), b"pub", Access::Public).unwrap();
        assert_eq!(fs::metadata(dir.join("k.pub")).unwrap().permissions().mode() & 0o777, 0o644);
        // A destination that is a planted symlink: refused, target intact.
        let victim = dir.join("victim");
        fs::write(&victim, b"precious").unwrap();
        let link = dir.join("link.jsonl");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(write_private(&link, b"x").unwrap_err().to_string().contains("symbolic link"));
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        // The old predictable temporary names, planted: never used.
        for planted in ["export.vgp.tmp", "export.jsonl.tmp", "export.tmp"] {
            std::os::unix::fs::symlink(&victim, dir.join(planted)).unwrap();
        }
        write_private(&out, b"three").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(&out).unwrap(), b"three");
        // No temporary files left behind.
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name().to_string_lossy().ends_with(".tmp") && e.file_name().to_string_lossy().starts_with('.')
            })
            .collect();
        assert!(left.is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
