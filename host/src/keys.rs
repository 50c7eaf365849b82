//! Key files: `vigil init` creates them, every command that signs reads them
//! (format: docs/keys.md).
//!
//! - `platform.key`, `cost.key`: dual signing keys (Ed25519 + ML-DSA-65
//!   seeds), mode 0600;
//! - `journal.key`: the 32-byte journal master key, mode 0600;
//! - `platform.pub`, `cost.pub`: the public keys as a COSE_KeySet — the file
//!   a verifier pins;
//! - `config.toml`: settings ([`config`]).
//!
//! A secret file is opened without following a symbolic link and checked
//! on the opened handle (`fstat`): a regular file, owned by this user, that
//! group and others cannot access — otherwise refused, naming the file and
//! the command that fixes it. Secret bytes live in zeroizing buffers. Keys
//! are never overwritten without `--force` ([`init`]).

pub mod config;
mod init;

pub use config::PolicyPin;
pub use init::{InitReport, init};

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use coset::cbor::value::Value;
use coset::{CborSerializable, CoseKey, CoseKeyBuilder, CoseKeySet, KeyType, iana};
use serde::Serialize;
use vigil_attest::dual::{DualPublicKey, DualSigningKey, SEED_LEN};
use zeroize::Zeroizing;

/// Why a key or settings file could not be used. Every message names the
/// file and says what fixes it.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file is missing.
    #[error("{0}")]
    Missing(String),
    /// A secret file is not safe to read: a link, not a regular file, owned
    /// by someone else, or open to group or others.
    #[error("{0}")]
    Unsafe(String),
    /// A key, key set or settings file does not hold what it must.
    #[error("{0}")]
    Invalid(String),
    /// A secret key does not match its public key set.
    #[error("{0}")]
    Mismatch(String),
    /// `vigil init` would lose something (a journal only the keys it would
    /// replace can read, a public key without its secret key); nothing was
    /// changed.
    #[error("{0}")]
    Refused(String),
    /// The operating system refused (reading, creating, changing modes).
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Writing a key or settings file failed.
    #[error(transparent)]
    Output(#[from] crate::output_file::OutputError),
}

/// Results of this module.
pub type Result<T, E = KeyError> = std::result::Result<T, E>;

/// An [`KeyError::Io`] maker for `map_err`.
fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> KeyError {
    let what = what.into();
    move |source| KeyError::Io { what, source }
}

/// First line of a dual key file.
const DUAL_KEY_HEADER: &str = "vigil-dual-key-v1";
/// First line of the journal key file.
const JOURNAL_KEY_HEADER: &str = "vigil-journal-key-v1";

/// `N` bytes from the kernel's CSPRNG (see [`crate::random`]).
pub fn random<const N: usize>() -> Result<[u8; N]> {
    crate::random::bytes().map_err(io("reading /dev/urandom for key material"))
}

/// The largest secret file read (key files are about 200 bytes).
const MAX_SECRET_FILE: u64 = 4096;

/// Reads a secret file: opened with `O_NOFOLLOW` (and `O_NONBLOCK`, so a
/// FIFO planted in its place cannot hang the open), then checked on the
/// opened handle — a regular file, owned by this process's effective user,
/// with no group or other permission bits — so that what is checked is what
/// is read. The bytes come back in a buffer that is zeroed when dropped.
pub fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => KeyError::Missing(format!("{} is missing: run `vigil init`", path.display())),
            Some(libc::ELOOP) => KeyError::Unsafe(format!(
                "{} is a symbolic link: a secret key must be a regular file in the key directory; replace the link with the file",
                path.display()
            )),
            _ => io(format!("opening {}", path.display()))(e),
        })?;
    let meta = file.metadata().map_err(io(format!("reading {}", path.display())))?;
    if !meta.file_type().is_file() {
        return Err(KeyError::Unsafe(format!(
            "{} is not a regular file (a directory, FIFO, socket or device); refusing to read a secret from it. Put the key file back (or run `vigil init --force` to make new keys)",
            path.display()
        )));
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(KeyError::Unsafe(format!(
            "{} belongs to uid {}, not to this user (uid {euid}); refusing to use it. Fix it with `chown {euid} {}`, or run as its owner",
            path.display(),
            meta.uid(),
            path.display()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Unsafe(format!(
            "{} is readable by group or others (mode {mode:04o}); refusing to use it. Fix it with `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    // Allocated once at its final size, so no reallocation leaves a copy.
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_SECRET_FILE as usize + 1));
    (&file).take(MAX_SECRET_FILE + 1).read_to_end(&mut bytes).map_err(io(format!("reading {}", path.display())))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(KeyError::Invalid(format!("{} is larger than a key file can be", path.display())));
    }
    Ok(bytes)
}

/// A [`KeyError::Invalid`].
fn invalid(message: String) -> KeyError {
    KeyError::Invalid(message)
}

/// Decodes the hex of a secret into a zeroizing array.
fn secret_hex<const N: usize>(hex: &str) -> Option<Zeroizing<[u8; N]>> {
    let mut out = Zeroizing::new([0u8; N]);
    hex::decode_to_slice(hex.trim(), &mut out[..]).ok()?;
    Some(out)
}

/// Writes `bytes` to `path` atomically: 0600 for secrets, 0644 otherwise.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    let access = if secret { crate::output_file::Access::Private } else { crate::output_file::Access::Public };
    Ok(crate::output_file::write_atomic(path, bytes, access)?)
}

/// Reads a dual signing key file ([`read_secret`]).
pub fn read_dual_key(path: &Path) -> Result<DualSigningKey> {
    let bytes = read_secret(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::Invalid(format!("{} is not text", path.display())))?;
    let mut lines = text.lines();
    if lines.next() != Some(DUAL_KEY_HEADER) {
        return Err(KeyError::Invalid(format!(
            "{} is not a Vigil dual key file (expected first line `{DUAL_KEY_HEADER}`)",
            path.display()
        )));
    }
    let mut seed = |name: &str| -> Result<Zeroizing<[u8; SEED_LEN]>> {
        let line = lines.next().ok_or_else(|| invalid(format!("{}: missing the {name} seed line", path.display())))?;
        let hex = line
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or_else(|| invalid(format!("{}: expected `{name} <hex>`", path.display())))?;
        secret_hex(hex).ok_or_else(|| invalid(format!("{}: the {name} seed must be 32 bytes of hex", path.display())))
    };
    let ed = seed("ed25519")?;
    let ml = seed("ml-dsa-65")?;
    Ok(DualSigningKey::from_seeds(&ed, &ml))
}

/// Builds the text of a secret file from pieces, secrets hex-encoded
/// through a zeroizing buffer, into one zeroizing buffer allocated once at
/// its final size (growing it would leave a copy of what it held so far in
/// freed memory).
fn secret_text(pieces: &[SecretPiece<'_>]) -> Zeroizing<Vec<u8>> {
    let len = pieces
        .iter()
        .map(|p| match p {
            SecretPiece::Text(t) => t.len(),
            SecretPiece::Hex(b) => b.len() * 2,
        })
        .sum();
    let mut text = Zeroizing::new(Vec::with_capacity(len));
    for piece in pieces {
        match piece {
            SecretPiece::Text(t) => text.extend_from_slice(t.as_bytes()),
            SecretPiece::Hex(bytes) => {
                let mut hex = Zeroizing::new([0u8; 2 * SEED_LEN]);
                let hex = &mut hex[..bytes.len() * 2];
                hex::encode_to_slice(bytes, hex).expect("the buffer is twice the input's length");
                text.extend_from_slice(hex);
            }
        }
    }
    debug_assert_eq!(text.capacity(), len);
    text
}

/// A piece of a secret file's text.
enum SecretPiece<'a> {
    Text(&'a str),
    /// A secret of at most [`SEED_LEN`] bytes, written as hex.
    Hex(&'a [u8]),
}

fn dual_key_text(ed: &[u8; SEED_LEN], ml: &[u8; SEED_LEN]) -> Zeroizing<Vec<u8>> {
    secret_text(&[
        SecretPiece::Text(DUAL_KEY_HEADER),
        SecretPiece::Text("\ned25519 "),
        SecretPiece::Hex(ed),
        SecretPiece::Text("\nml-dsa-65 "),
        SecretPiece::Hex(ml),
        SecretPiece::Text("\n"),
    ])
}

fn journal_key_text(key: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    secret_text(&[
        SecretPiece::Text(JOURNAL_KEY_HEADER),
        SecretPiece::Text("\n"),
        SecretPiece::Hex(key),
        SecretPiece::Text("\n"),
    ])
}

/// The COSE_KeySet of a dual public key: an OKP Ed25519 key (alg −8) and an
/// AKP ML-DSA-65 key (alg −49), each with its kid.
pub fn cose_key_set(public: &DualPublicKey) -> Result<Vec<u8>> {
    let ed = CoseKeyBuilder::new_okp_key()
        .algorithm(iana::Algorithm::EdDSA)
        .param(iana::OkpKeyParameter::Crv as i64, Value::from(iana::EllipticCurve::Ed25519 as i64))
        .param(iana::OkpKeyParameter::X as i64, Value::Bytes(public.ed25519.to_vec()))
        .key_id(public.ed25519_kid().to_vec())
        .build();
    let ml = CoseKeyBuilder::new()
        .kty(KeyType::Assigned(iana::KeyType::AKP))
        .algorithm(iana::Algorithm::ML_DSA_65)
        .param(iana::AkpKeyParameter::Pub as i64, Value::Bytes(public.ml_dsa_65.to_vec()))
        .key_id(public.ml_dsa_65_kid().to_vec())
        .build();
    CoseKeySet(vec![ed, ml]).to_vec().map_err(|e| KeyError::Invalid(format!("encoding the COSE_KeySet: {e:?}")))
}

fn key_param(key: &CoseKey, label: i64) -> Option<&[u8]> {
    key.params.iter().find(|(l, _)| *l == coset::Label::Int(label)).and_then(|(_, v)| v.as_bytes()).map(Vec::as_slice)
}

/// Reads a `.pub` COSE_KeySet back into a dual public key. Exactly one
/// Ed25519 and one ML-DSA-65 key are required.
pub fn read_cose_key_set(bytes: &[u8]) -> Result<DualPublicKey> {
    let set = CoseKeySet::from_slice(bytes).map_err(|e| invalid(format!("not a COSE_KeySet: {e:?}")))?;
    let (mut ed, mut ml) = (None, None);
    for key in &set.0 {
        match (&key.kty, &key.alg) {
            (KeyType::Assigned(iana::KeyType::OKP), Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA))) => {
                if ed.replace(key_param(key, iana::OkpKeyParameter::X as i64)).is_some() {
                    return Err(invalid("the key set has two Ed25519 keys".into()));
                }
            }
            (KeyType::Assigned(iana::KeyType::AKP), Some(coset::Algorithm::Assigned(iana::Algorithm::ML_DSA_65))) => {
                if ml.replace(key_param(key, iana::AkpKeyParameter::Pub as i64)).is_some() {
                    return Err(invalid("the key set has two ML-DSA-65 keys".into()));
                }
            }
            _ => return Err(invalid("the key set holds a key that is neither Ed25519 nor ML-DSA-65".into())),
        }
    }
    let ed = ed.flatten().ok_or_else(|| invalid("the key set has no Ed25519 key".into()))?;
    let ml = ml.flatten().ok_or_else(|| invalid("the key set has no ML-DSA-65 key".into()))?;
    let key = DualPublicKey::from_parts(ed, ml).map_err(|e| invalid(e.as_str().into()))?;
    // Exactly the canonical encoding vigil writes: kids, curve and order
    // included, so no byte of a key set can change without notice.
    if cose_key_set(&key)? != bytes {
        return Err(invalid(
            "the key set is not in canonical form (a kid, curve or other field differs from what its keys imply)"
                .into(),
        ));
    }
    Ok(key)
}

/// The dual key pairs `vigil init` makes: platform (evidence, journal
/// checkpoints), cost (cost records), policy (policy bundles).
const PAIRS: [&str; 3] = ["platform", "cost", "policy"];

/// Reads the policy pins of `DIR/config.toml` (none when there is no
/// config; a config that does not read is an error).
pub fn policy_pin(dir: &Path) -> Result<PolicyPin> {
    Ok(config::read(dir)?.map(|c| c.pin).unwrap_or_default())
}

/// The policy signing key (`DIR/policy.key`).
pub fn policy_key(dir: &Path) -> Result<DualSigningKey> {
    let path = dir.join("policy.key");
    if !path.exists() {
        return Err(KeyError::Missing(format!(
            "no policy key in {}: run `vigil init` (it adds one to an existing key directory)",
            dir.display()
        )));
    }
    read_dual_key(&path)
}

/// One public key as `vigil keys show` prints it.
#[derive(Debug, Serialize)]
pub struct PublicKeyReport {
    /// `platform` or `cost`.
    pub name: String,
    /// The `.pub` file.
    pub file: String,
    /// SHA-256 fingerprint over both keys.
    pub fingerprint: String,
    /// Ed25519 kid.
    pub ed25519_kid: String,
    /// Ed25519 public key.
    pub ed25519: String,
    /// ML-DSA-65 kid.
    pub ml_dsa_65_kid: String,
    /// Whether the secret key file matches this public key.
    pub secret_matches: bool,
}

/// `vigil keys show`: the public keys, checked against the secret files.
pub fn show(dir: &Path) -> Result<Vec<PublicKeyReport>> {
    let mut out = Vec::new();
    for name in PAIRS {
        if name == "policy" && !dir.join("policy.pub").exists() {
            continue;
        }
        let pub_path = dir.join(format!("{name}.pub"));
        let bytes =
            fs::read(&pub_path).map_err(io(format!("reading {}: run `vigil init` first", pub_path.display())))?;
        let public = read_cose_key_set(&bytes).map_err(|e| invalid(format!("{}: {e}", pub_path.display())))?;
        let secret = read_dual_key(&dir.join(format!("{name}.key")))?;
        out.push(PublicKeyReport {
            name: name.into(),
            file: pub_path.display().to_string(),
            fingerprint: hex::encode(public.fingerprint()),
            ed25519_kid: hex::encode(public.ed25519_kid()),
            ed25519: hex::encode(public.ed25519),
            ml_dsa_65_kid: hex::encode(public.ml_dsa_65_kid()),
            secret_matches: secret.public() == public,
        });
    }
    read_journal_key(dir)?;
    Ok(out)
}

/// The platform key pair from `dir`: the secret (for the VMM) and the pinned
/// public key set `platform.pub` (for verifiers), checked to match.
pub fn platform_pair(dir: &Path) -> Result<(DualSigningKey, DualPublicKey)> {
    dual_pair(dir, "platform")
}

/// The cost key pair from `dir` (signs cost statements, docs/cost.md):
/// `cost.key` and `cost.pub`, checked to match.
pub fn cost_pair(dir: &Path) -> Result<(DualSigningKey, DualPublicKey)> {
    dual_pair(dir, "cost")
}

/// The dual key pair `NAME.key` / `NAME.pub` from `dir`, checked to match.
fn dual_pair(dir: &Path, name: &str) -> Result<(DualSigningKey, DualPublicKey)> {
    let key_path = dir.join(format!("{name}.key"));
    if !key_path.exists() {
        return Err(KeyError::Missing(format!(
            "no {name} key in {}: run `vigil init` first (or pass --dir / set VIGIL_DIR)",
            dir.display()
        )));
    }
    let secret = read_dual_key(&key_path)?;
    let pub_path = dir.join(format!("{name}.pub"));
    let bytes = fs::read(&pub_path).map_err(io(format!("reading {}", pub_path.display())))?;
    let public = read_cose_key_set(&bytes).map_err(|e| invalid(format!("{}: {e}", pub_path.display())))?;
    if secret.public() != public {
        return Err(KeyError::Mismatch(format!(
            "{} does not match {}: restore the pair or run `vigil init --force`",
            key_path.display(),
            pub_path.display()
        )));
    }
    Ok((secret, public))
}

/// Reads the journal master key `journal.key` from `dir` (after checking
/// its mode).
pub fn read_journal_key(dir: &Path) -> Result<crate::journal::MasterKey> {
    let path = dir.join("journal.key");
    if !path.exists() {
        return Err(KeyError::Missing(format!(
            "no journal key in {}: run `vigil init` first (or pass --dir / set VIGIL_DIR)",
            dir.display()
        )));
    }
    let bytes = read_secret(&path)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::Invalid(format!("{} is not text", path.display())))?;
    let mut lines = text.lines();
    if lines.next() != Some(JOURNAL_KEY_HEADER) {
        return Err(invalid(format!(
            "{} is not a Vigil journal key file (expected first line `{JOURNAL_KEY_HEADER}`)",
            path.display()
        )));
    }
    let key: Zeroizing<[u8; 32]> = lines
        .next()
        .and_then(secret_hex)
        .ok_or_else(|| invalid(format!("{}: the second line must be the 32-byte key in hex", path.display())))?;
    Ok(crate::journal::MasterKey::from_bytes(&key))
}

/// The journal path: `explicit`, else the `journal` setting of
/// `DIR/config.toml` (relative to DIR unless absolute), else
/// `DIR/journal/vigil.vgj`.
pub fn journal_path(dir: &Path, explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let configured = config::read(dir)?.and_then(|c| c.journal);
    // A relative path is relative to the key directory (`join` keeps an
    // absolute one as it is).
    Ok(dir.join(configured.as_deref().unwrap_or(Path::new(config::DEFAULT_JOURNAL))))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{DirBuilderExt, symlink};

    use super::init::KEY_FILES;
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-keys-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).unwrap();
        dir
    }

    fn refusal(path: &Path) -> String {
        format!("{:#}", read_secret(path).unwrap_err())
    }

    #[test]
    fn init_writes_private_keys_in_a_private_directory() {
        let dir = scratch("init").join("keys");
        init(&dir, false).unwrap();
        let mode = |name: &str| fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        for name in KEY_FILES {
            assert_eq!(mode(name), 0o600, "{name}");
        }
        for name in ["platform.pub", "cost.pub", "policy.pub", "config.toml"] {
            assert_eq!(mode(name) & 0o022, 0, "{name} writable by others");
        }
        assert!(show(&dir).unwrap().iter().all(|k| k.secret_matches));
        let _ = fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    fn secret_file_text_round_trips_without_reallocating() {
        let text = dual_key_text(&[0xab; SEED_LEN], &[0x01; SEED_LEN]);
        assert_eq!(text.len(), text.capacity(), "allocated once at its final size");
        let expected = format!("{DUAL_KEY_HEADER}\ned25519 {}\nml-dsa-65 {}\n", "ab".repeat(32), "01".repeat(32));
        assert_eq!(&text[..], expected.as_bytes());
        let text = journal_key_text(&[7; 32]);
        assert_eq!(text.len(), text.capacity());
        assert_eq!(&text[..], format!("{JOURNAL_KEY_HEADER}\n{}\n", "07".repeat(32)).as_bytes());
    }

    #[test]
    fn secret_files_that_are_not_private_regular_files_of_this_user_are_refused() {
        let dir = scratch("secret");
        let key = dir.join("journal.key");
        fs::write(&key, journal_key_text(&[7; 32]).as_slice()).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_journal_key(&dir).is_ok());

        for mode in [0o640, 0o604, 0o660, 0o602] {
            fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
            let why = refusal(&key);
            assert!(why.contains(&format!("chmod 600 {}", key.display())), "{mode:o}: {why}");
        }
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();

        // A symlink to a private file of the same user: a path-based check
        // (stat follows the link) would pass it.
        let link = dir.join("link.key");
        symlink(&key, &link).unwrap();
        assert!(refusal(&link).contains("symbolic link"), "{}", refusal(&link));

        // A directory in its place.
        let sub = dir.join("dir.key");
        fs::DirBuilder::new().mode(0o700).create(&sub).unwrap();
        assert!(refusal(&sub).contains("not a regular file"), "{}", refusal(&sub));

        // A FIFO in its place: refused at once (O_NONBLOCK), not a hang
        // waiting for a writer.
        let fifo = dir.join("fifo.key");
        let made = std::process::Command::new("mkfifo").arg("-m").arg("600").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            assert!(refusal(&fifo).contains("not a regular file"), "{}", refusal(&fifo));
        }

        // Owned by another user (only root can arrange that).
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&key, Some(65534), None).unwrap();
            let why = refusal(&key);
            assert!(why.contains("belongs to uid 65534") && why.contains("chown"), "{why}");
            std::os::unix::fs::chown(&key, Some(0), None).unwrap();
        }

        // Larger than a key file.
        fs::write(&key, vec![b'a'; MAX_SECRET_FILE as usize + 1]).unwrap();
        assert!(refusal(&key).contains("larger"), "{}", refusal(&key));
        let _ = fs::remove_dir_all(&dir);
    }
}
