//! How Vigil writes every file it creates (keys, config, bundles, evidence,
//! exports, anchors): atomically, privately by default, and never through a
//! name someone else could have planted.
//!
//! A temporary file with a random name (`.NAME.<16 hex>.tmp`, 64 random
//! bits from [`crate::random`]) is created in the destination's directory
//! with `O_CREAT | O_EXCL | O_NOFOLLOW` and mode 0600 (0644 for
//! [`Access::Public`]), so that a file or symbolic link planted at that name
//! makes the create fail — it is never followed, opened or truncated; the
//! next random name is tried. The data is written to that handle, fsynced,
//! and the temporary file is renamed over the destination; then the
//! directory is fsynced. A crash leaves the old file or the new one, never
//! half of one (at worst a stray `.NAME.*.tmp`).
//!
//! A destination that is a symbolic link, a directory, a device, a FIFO or a
//! socket is refused with an error. (Were a link to be swapped in after that
//! check, the rename would replace the link itself — `rename(2)` does not
//! follow it — so nothing is ever written through a link; refusing it up
//! front just means Vigil writes where the user meant, or says why not.)
//!
//! [`write_private`] and [`write_atomic`] write a byte slice;
//! [`AtomicFile`] streams (journal exports) and only replaces the
//! destination on [`AtomicFile::commit`] — dropped before that, it removes
//! its temporary file.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Who may read the file written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Mode 0600: secrets, decrypted exports, evidence, bundles — the
    /// default for outputs.
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

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The path has no file name (`/`, `..`, `dir/..`).
    #[error("{} does not name a file: give the path of a file to write", .0.display())]
    NotAFileName(PathBuf),
    /// The destination is a symbolic link.
    #[error(
        "{} is a symbolic link: Vigil does not write through links; give the path of the real file, or remove the link",
        .0.display()
    )]
    Symlink(PathBuf),
    /// The destination exists and is not a regular file.
    #[error(
        "{} exists and is not a regular file (a directory, device, FIFO or socket): Vigil replaces outputs atomically; give the path of a regular file",
        .0.display()
    )]
    NotRegular(PathBuf),
    /// Every temporary name tried was taken.
    #[error(
        "could not create a temporary file next to {}: {TRIES} random names were all taken; check who is creating files in {}",
        .path.display(), .dir.display()
    )]
    NoTemporaryName {
        /// The destination.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
    /// The destination is the file the command reads.
    #[error(
        "{} is also the input {}: writing the output there would replace what it was made from; give another output path",
        .output.display(), .input.display()
    )]
    SameAsInput {
        /// The destination.
        output: PathBuf,
        /// The input it names (another name of the same file, perhaps).
        input: PathBuf,
    },
    /// A system call failed.
    #[error("{what} {}", .path.display())]
    Io {
        /// What was being done ("creating", "writing", ...).
        what: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// How many random temporary names are tried before giving up.
const TRIES: usize = 16;
/// The longest part of the destination's name kept in the temporary name
/// (so that the temporary name stays within `NAME_MAX`).
const NAME_KEPT: usize = 64;

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> OutputError + 'a {
    move |source| OutputError::Io { what, path: path.to_path_buf(), source }
}

/// The directory part of `path` (`.` when it has none: `out.jsonl`).
pub fn dir_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Writes `bytes` to `path` atomically with mode 0600 (see the module docs).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    write_atomic(path, bytes, Access::Private)
}

/// Writes `bytes` to `path` atomically with the mode of `access` (see the
/// module docs).
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> Result<(), OutputError> {
    let mut file = AtomicFile::create(path, access)?;
    file.write_all(bytes).map_err(io_error("writing", &file.tmp))?;
    file.commit()
}

/// Refuses `output` when it names the same file as `input` (the same
/// device and inode: another spelling, a hard link), so that a command
/// never replaces the file it reads (`journal export J -o J`, `policy
/// compile p.toml -o p.toml`). A destination that does not exist yet
/// cannot be the input.
pub fn refuse_input(output: &Path, input: &Path) -> Result<(), OutputError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(out) = fs::metadata(output) else { return Ok(()) };
    let inp = fs::metadata(input).map_err(io_error("reading", input))?;
    if (out.dev(), out.ino()) == (inp.dev(), inp.ino()) {
        return Err(OutputError::SameAsInput { output: output.to_path_buf(), input: input.to_path_buf() });
    }
    Ok(())
}

/// Refuses a destination that is a link or exists as anything but a
/// regular file.
fn check_destination(path: &Path) -> Result<(), OutputError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(OutputError::Symlink(path.to_path_buf())),
        Ok(meta) if !meta.file_type().is_file() => Err(OutputError::NotRegular(path.to_path_buf())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OutputError::Io { what: "inspecting", path: path.to_path_buf(), source: e }),
    }
}

/// A file being written under a random temporary name; it replaces its
/// destination on [`commit`](Self::commit) and is removed if dropped
/// before. Writes go straight to the file: wrap it in a
/// [`std::io::BufWriter`] for many small writes.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temporary file for `path` (see the module docs).
    pub fn create(path: &Path, access: Access) -> Result<Self, OutputError> {
        Self::create_named(path, access, &mut || crate::random::bytes::<8>())
    }

    /// [`create`](Self::create) with the source of the random name parts
    /// given (tests plant files at the names it will produce).
    fn create_named(
        path: &Path,
        access: Access,
        random: &mut dyn FnMut() -> io::Result<[u8; 8]>,
    ) -> Result<Self, OutputError> {
        let Some(name) = path.file_name() else { return Err(OutputError::NotAFileName(path.to_path_buf())) };
        check_destination(path)?;
        let dir = dir_of(path);
        let kept: String = name.to_string_lossy().chars().take(NAME_KEPT).collect();
        for _ in 0..TRIES {
            let random = random().map_err(io_error("reading /dev/urandom to name a temporary file for", path))?;
            let tmp = dir.join(OsString::from(format!(".{kept}.{}.tmp", hex::encode(random))));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(access.mode())
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)
            {
                Ok(file) => return Ok(AtomicFile { file, tmp, path: path.to_path_buf(), committed: false }),
                // Something (a file, a link) is at that name: not ours,
                // never touched. Try another name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(OutputError::Io { what: "creating", path: tmp, source: e }),
            }
        }
        Err(OutputError::NoTemporaryName { path: path.to_path_buf(), dir: dir.to_path_buf() })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fsyncs the data, renames it over the destination and fsyncs the
    /// directory.
    pub fn commit(mut self) -> Result<(), OutputError> {
        self.file.flush().map_err(io_error("writing", &self.tmp))?;
        self.file.sync_all().map_err(io_error("syncing", &self.tmp))?;
        check_destination(&self.path)?;
        fs::rename(&self.tmp, &self.path).map_err(io_error("renaming the temporary file over", &self.path))?;
        self.committed = true;
        let dir = dir_of(&self.path);
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_error("syncing the directory", dir))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-output-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Names of `.*.tmp` files left in `dir`.
    fn temporaries(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') && n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn an_output_naming_the_input_is_refused_and_the_input_kept() {
        let dir = scratch("same");
        let input = dir.join("journal.vgj");
        fs::write(&input, b"the input").unwrap();
        let other = dir.join("export.jsonl");
        // Not there yet, or another file: fine.
        refuse_input(&other, &input).unwrap();
        fs::write(&other, b"old export").unwrap();
        refuse_input(&other, &input).unwrap();
        // The same name, another spelling of it, a hard link: refused.
        let spelled = dir.join(".").join("journal.vgj");
        let linked = dir.join("hard-link.vgj");
        fs::hard_link(&input, &linked).unwrap();
        for output in [&input, &spelled, &linked] {
            let e = refuse_input(output, &input).unwrap_err();
            assert!(matches!(e, OutputError::SameAsInput { .. }), "{e}");
            assert!(e.to_string().contains("give another output path"), "{e}");
        }
        assert_eq!(fs::read(&input).unwrap(), b"the input");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn outputs_are_private_atomic_and_never_follow_links() {
        let dir = scratch("links");
        let out = dir.join("export.jsonl");
        write_private(&out, b"one").unwrap();
        assert_eq!(mode(&out), 0o600);
        // Replacing a file that had looser permissions makes it private.
        fs::set_permissions(&out, fs::Permissions::from_mode(0o666)).unwrap();
        write_private(&out, b"two").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"two");
        assert_eq!(mode(&out), 0o600);
        write_atomic(&dir.join("k.pub"), b"pub", Access::Public).unwrap();
        assert_eq!(mode(&dir.join("k.pub")) & 0o600, 0o600);
        // A destination that is a planted symlink: refused, target intact.
        let victim = dir.join("victim");
        fs::write(&victim, b"precious").unwrap();
        let link = dir.join("link.jsonl");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = write_private(&link, b"x").unwrap_err();
        assert!(matches!(err, OutputError::Symlink(_)), "{err}");
        assert!(err.to_string().contains("symbolic link"));
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        // A dangling link (the file it names would be created): refused too.
        let dangling = dir.join("dangling.jsonl");
        std::os::unix::fs::symlink(dir.join("would-be-created"), &dangling).unwrap();
        assert!(matches!(write_private(&dangling, b"x"), Err(OutputError::Symlink(_))));
        assert!(!dir.join("would-be-created").exists());
        // The old predictable temporary names, planted: never used.
        for planted in ["export.vgp.tmp", "export.jsonl.tmp", "export.tmp", ".export.jsonl.tmp"] {
            std::os::unix::fs::symlink(&victim, dir.join(planted)).unwrap();
        }
        write_private(&out, b"three").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(&out).unwrap(), b"three");
        // No temporary files of ours left behind.
        assert_eq!(temporaries(&dir), [".export.jsonl.tmp"]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_or_link_at_the_temporary_name_is_skipped_not_clobbered() {
        let dir = scratch("collide");
        let out = dir.join("bundle.vgp");
        let victim = dir.join("victim");
        fs::write(&victim, b"precious").unwrap();
        // The attacker knows (or guesses) the first two names: a symlink at
        // the first, a file of theirs at the second.
        let first = dir.join(format!(".bundle.vgp.{}.tmp", hex::encode([1u8; 8])));
        let second = dir.join(format!(".bundle.vgp.{}.tmp", hex::encode([2u8; 8])));
        std::os::unix::fs::symlink(&victim, &first).unwrap();
        fs::write(&second, b"theirs").unwrap();
        let mut n = 0u8;
        let mut names = || {
            n += 1;
            Ok([n; 8])
        };
        let mut file = AtomicFile::create_named(&out, Access::Private, &mut names).unwrap();
        file.write_all(b"ours").unwrap();
        file.commit().unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"ours");
        assert_eq!(mode(&out), 0o600);
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(&second).unwrap(), b"theirs");
        assert!(fs::symlink_metadata(&first).unwrap().file_type().is_symlink());
        // Every name taken: a clear error, nothing written anywhere.
        let mut same = || Ok([1u8; 8]);
        let err = AtomicFile::create_named(&out, Access::Private, &mut same).unwrap_err();
        assert!(matches!(err, OutputError::NoTemporaryName { .. }), "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(&out).unwrap(), b"ours");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn streaming_writes_replace_only_on_commit() {
        let dir = scratch("stream");
        let out = dir.join("export.jsonl");
        write_private(&out, b"old").unwrap();
        {
            let mut file = AtomicFile::create(&out, Access::Private).unwrap();
            file.write_all(b"half of a new ").unwrap();
            // Dropped without commit (an error mid-export): old file intact,
            // temporary removed.
        }
        assert_eq!(fs::read(&out).unwrap(), b"old");
        assert!(temporaries(&dir).is_empty());
        let mut file = AtomicFile::create(&out, Access::Private).unwrap();
        assert_eq!(file.path(), out);
        for _ in 0..1000 {
            file.write_all(b"line\n").unwrap();
        }
        file.commit().unwrap();
        assert_eq!(fs::read(&out).unwrap().len(), 5000);
        assert!(temporaries(&dir).is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn odd_destinations_are_refused_and_bare_names_and_long_names_work() {
        let dir = scratch("odd");
        assert!(matches!(write_private(&dir, b"x"), Err(OutputError::NotRegular(_))));
        assert!(matches!(write_private(Path::new("/"), b"x"), Err(OutputError::NotAFileName(_))));
        assert!(matches!(write_private(&dir.join(".."), b"x"), Err(OutputError::NotAFileName(_))));
        assert!(matches!(write_private(Path::new("/dev/null"), b"x"), Err(OutputError::NotRegular(_))));
        assert_eq!(dir_of(Path::new("out.jsonl")), Path::new("."));
        assert_eq!(dir_of(Path::new("a/out.jsonl")), Path::new("a"));
        assert_eq!(dir_of(Path::new("/out.jsonl")), Path::new("/"));
        // A 255-byte name (NAME_MAX): the temporary name still fits.
        let long = dir.join("x".repeat(255));
        write_private(&long, b"long").unwrap();
        assert_eq!(fs::read(&long).unwrap(), b"long");
        // A missing directory: an error that names the temporary file.
        let err = write_private(&dir.join("missing/out"), b"x").unwrap_err();
        assert!(err.to_string().contains("creating"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
