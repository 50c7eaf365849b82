//! `vigil init`: makes what a key directory lacks and never overwrites a
//! key; `--force` replaces the keys, but not while a journal written with
//! them is in the directory (docs/keys.md, "vigil init").
//!
//! Everything is checked before anything is written: a refusal changes
//! nothing.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use vigil_attest::dual::{DualSigningKey, SEED_LEN};
use zeroize::Zeroizing;

use super::config::{self, Config};
use super::{
    KeyError, PAIRS, Result, cose_key_set, dual_key_text, io, journal_key_text, random, read_dual_key, write_file,
};

/// What `vigil init` did.
#[derive(Debug, Serialize)]
pub struct InitReport {
    /// Key directory.
    pub dir: String,
    /// Whether anything was written.
    pub created: bool,
    /// The files written, by name in the key directory.
    pub files: Vec<String>,
    /// Message for the user.
    pub message: String,
}

/// The secret key files.
pub(super) const KEY_FILES: [&str; 4] = ["platform.key", "cost.key", "policy.key", "journal.key"];

/// `vigil init`: without `force`, creates whatever of the key directory is
/// missing — a dual key pair whose two files are both missing, a public key
/// set from its existing secret key, the journal key; and when it makes the
/// policy key, pins it in config.toml (a new config.toml, or a pin added to
/// one that pins no signer). It refuses, changing nothing, when a public key
/// is there without its secret key, or when a key the directory's journal
/// was written with (platform, cost, journal) is missing.
///
/// With `force`, replaces every key — refused, changing nothing, while the
/// directory holds a journal or high-water marks, which only the old keys
/// can read. config.toml keeps its settings: a pin of the directory's own
/// old policy key (or no pin) becomes a pin of the new one; a pin of
/// another signer (one kept outside this directory) is left as it is, so
/// that replacing the keys never trades an outside signer for a key kept
/// beside the guard.
pub fn init(dir: &Path, force: bool) -> Result<InitReport> {
    // A config.toml that does not read is an error before anything else:
    // it may say where the journal is.
    let text = config::read_text(dir)?;
    let config = text.as_deref().map(|text| config::parse(text, &config::path(dir))).transpose()?;
    match (force, config) {
        (true, config) => replace(dir, config.as_ref().zip(text.as_deref())),
        (false, Some(config)) => fill(dir, Some((&config, text.unwrap_or_default()))),
        (false, None) => fill(dir, None),
    }
}

/// One thing [`fill`] makes.
enum Step {
    /// A new dual key pair `NAME.key`, `NAME.pub`.
    Pair(&'static str),
    /// `NAME.pub` (the COSE_KeySet given) from the existing `NAME.key`.
    Public(&'static str, Vec<u8>),
    /// A new `journal.key`.
    JournalKey,
}

/// `init` without `--force`; `config`: config.toml read and its text.
fn fill(dir: &Path, config: Option<(&Config, String)>) -> Result<InitReport> {
    let mut steps = Vec::new();
    let mut kept = Vec::new();
    let mut orphaned = Vec::new();
    for name in PAIRS {
        let (key, public) = (format!("{name}.key"), format!("{name}.pub"));
        match (present(&dir.join(&key))?, present(&dir.join(&public))?) {
            (true, true) => kept.extend([key, public]),
            // Read as every secret is (a link, another owner or a loose
            // mode is refused), so the public key comes from a safe file.
            (true, false) => {
                let secret = read_dual_key(&dir.join(&key))?;
                steps.push(Step::Public(name, cose_key_set(&secret.public())?));
                kept.push(key);
            }
            (false, true) => orphaned.push(name),
            (false, false) => steps.push(Step::Pair(name)),
        }
    }
    if present(&dir.join("journal.key"))? {
        kept.push("journal.key".into());
    } else {
        steps.push(Step::JournalKey);
    }

    let mut refusals = Vec::new();
    for name in &orphaned {
        let public = dir.join(format!("{name}.pub"));
        refusals.push(format!(
            "{} is there without its secret key {name}.key: a new {name} key would not match the public key verifiers may already pin. Restore {name}.key from a backup of {}; or, to make a new pair, first move the public key aside: `mv {} {}`",
            public.display(),
            dir.display(),
            shell_quote(&public),
            shell_quote(&free_name(&public, ".old")),
        ));
    }
    // Keys the journal was written with: new ones would not read it.
    let journal_keys: Vec<String> = steps
        .iter()
        .flat_map(|step| match step {
            Step::Pair(name) if *name != "policy" => vec![format!("{name}.key"), format!("{name}.pub")],
            Step::JournalKey => vec!["journal.key".to_string()],
            _ => vec![],
        })
        .collect();
    if !journal_keys.is_empty() {
        let journal = journal_files(dir, config.as_ref().map(|(c, _)| *c))?;
        if !journal.is_empty() {
            let away = journal.iter().map(|f| shell_quote(&f.path)).collect::<Vec<_>>().join(" ");
            let aside = free_name(dir, ".orphaned");
            refusals.push(format!(
                "{} holds a journal ({}) but {} {} missing. A journal is read and verified only with the keys that wrote it (journal.key decrypts it, platform.key signs its checkpoints and high-water marks, cost.key its cost statements), so new keys would leave it unreadable. Restore the missing files from a backup of {}; or, if they are lost for good, move the journal aside and run `vigil init` again: `mkdir {} && mv {away} {}/`",
                dir.display(),
                describe(&journal),
                list(&journal_keys),
                if journal_keys.len() == 1 { "is" } else { "are" },
                dir.display(),
                shell_quote(&aside),
                shell_quote(&aside),
            ));
        }
    }
    if !refusals.is_empty() {
        return Err(KeyError::Refused(format!("{}. Nothing was changed", refusals.join(". Also: "))));
    }

    if steps.is_empty() {
        let existing: Vec<&str> = KEY_FILES.into_iter().filter(|f| kept.iter().any(|k| k == f)).collect();
        return Ok(InitReport {
            dir: dir.display().to_string(),
            created: false,
            files: Vec::new(),
            message: format!(
                "keys already exist in {} ({}); nothing was changed. `vigil init --force` replaces them (refused while the directory holds a journal) — everything they signed can then no longer be verified with the new keys",
                dir.display(),
                existing.join(", ")
            ),
        });
    }

    private_directory(dir)?;
    let mut files = Vec::new();
    let mut added = Vec::new();
    let mut policy_signer = None;
    for step in &steps {
        match step {
            Step::Pair(name) => {
                let fingerprint = make_pair(dir, name)?;
                if *name == "policy" {
                    policy_signer = Some(fingerprint);
                }
                files.extend([format!("{name}.key"), format!("{name}.pub")]);
                added.push(format!("a {name} signing key ({name}.key, {name}.pub)"));
            }
            Step::Public(name, key_set) => {
                write_file(&dir.join(format!("{name}.pub")), key_set, false)?;
                files.push(format!("{name}.pub"));
                added.push(format!("{name}.pub (the public key of the existing {name}.key)"));
            }
            Step::JournalKey => {
                let journal = Zeroizing::new(random::<32>()?);
                write_file(&dir.join("journal.key"), &journal_key_text(&journal), true)?;
                files.push("journal.key".into());
                added.push("a journal key (journal.key)".into());
            }
        }
    }

    // The new policy key is pinned: in a new config.toml, or added to one
    // that pins no signer (one that pins another is the user's choice).
    let mut pinned = String::new();
    if let Some(signer) = policy_signer {
        let fingerprint = hex::encode(signer);
        match config.map(|(config, text)| (config.pin.signer, text)) {
            Some((Some(other), _)) => {
                pinned = format!(
                    "; config.toml already pins another policy signer ({}) and was left as is: bundles signed by the new policy key run only once it pins policy_signer = \"{fingerprint}\"",
                    hex::encode(other)
                );
            }
            Some((None, mut text)) => {
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&format!("policy_signer = \"{fingerprint}\"\n"));
                write_file(&config::path(dir), text.as_bytes(), false)?;
                files.push("config.toml".into());
                pinned = format!(" and pinned it in config.toml (policy_signer = \"{fingerprint}\")");
            }
            None => {
                write_file(&config::path(dir), config::new_text(Some(&signer)).as_bytes(), false)?;
                files.push("config.toml".into());
                pinned = format!(
                    " and created config.toml, which pins the policy key as the policy signer (policy_signer = \"{fingerprint}\")"
                );
            }
        }
    }

    let message = if kept.is_empty() && files.len() == 8 {
        format!(
            "created platform, cost, policy and journal keys in {}; config.toml pins the policy key as the policy signer",
            dir.display()
        )
    } else if kept.is_empty() {
        format!("added {} to {}{pinned}", list(&added), dir.display())
    } else {
        format!(
            "added {} to {}{pinned}; the other keys were not changed ({})",
            list(&added),
            dir.display(),
            kept.join(", ")
        )
    };
    Ok(InitReport { dir: dir.display().to_string(), created: true, files, message })
}

/// `init --force`; `config`: config.toml read and its text.
fn replace(dir: &Path, config: Option<(&Config, &str)>) -> Result<InitReport> {
    let journal = journal_files(dir, config.map(|(c, _)| c))?;
    if !journal.is_empty() {
        let old = free_name(dir, ".old");
        let outside: Vec<&JournalFile> = journal.iter().filter(|f| !f.path.starts_with(dir)).collect();
        let outside = if outside.is_empty() {
            String::new()
        } else {
            format!(
                " ({} outside {} belongs with the old keys too: keep it with {})",
                outside.iter().map(|f| f.path.display().to_string()).collect::<Vec<_>>().join(", "),
                dir.display(),
                old.display()
            )
        };
        return Err(KeyError::Refused(format!(
            "refusing to replace the keys in {}: it holds a journal written with them ({}). A journal is read and verified only with the keys that wrote it (journal.key decrypts it, platform.key signs its checkpoints and high-water marks, cost.key its cost statements), so new keys would leave it unreadable and the next `vigil eval` would refuse it. To start over and keep the old journal verifiable, move the whole key directory aside, keys and journal together, and make a new one: `mv {} {} && vigil init --dir {}`; the old journal still reads and verifies with `--dir {}`{outside}. Nothing was changed",
            dir.display(),
            describe(&journal),
            shell_quote(dir),
            shell_quote(&old),
            shell_quote(dir),
            shell_quote(&old),
        )));
    }
    let had_keys = KEY_FILES.iter().any(|f| dir.join(f).exists());
    // The directory's own policy key being replaced, as config.toml would
    // pin it: the public half of policy.key, and only when policy.pub is
    // that key (a policy.pub alone, or another one, may be an outside
    // signer's). A key that does not read (what `--force` may be run to
    // repair) is no own key: a signer config.toml pins is then kept.
    let old_policy =
        super::read_dual_key(&dir.join("policy.key")).ok().map(|key| key.public().fingerprint()).filter(|own| {
            fs::read(dir.join("policy.pub"))
                .ok()
                .and_then(|bytes| super::read_cose_key_set(&bytes).ok())
                .is_some_and(|public| public.fingerprint() == *own)
        });
    private_directory(dir)?;
    let mut policy_signer = [0u8; 32];
    for name in PAIRS {
        let fingerprint = make_pair(dir, name)?;
        if name == "policy" {
            policy_signer = fingerprint;
        }
    }
    let journal = Zeroizing::new(random::<32>()?);
    write_file(&dir.join("journal.key"), &journal_key_text(&journal), true)?;
    let mut files: Vec<String> =
        ["platform.key", "platform.pub", "cost.key", "cost.pub", "policy.key", "policy.pub", "journal.key"]
            .map(String::from)
            .to_vec();
    let new_pin = format!("policy_signer = \"{}\"", hex::encode(policy_signer));
    let config_done = match config {
        None => {
            write_file(&config::path(dir), config::new_text(Some(&policy_signer)).as_bytes(), false)?;
            files.push("config.toml".into());
            format!("wrote config.toml pinning the new policy key ({new_pin})")
        }
        Some((config, _)) if config.pin.signer.is_none() || config.pin.signer == old_policy => {
            let mut kept = config.clone();
            kept.pin.signer = Some(policy_signer);
            write_file(&config::path(dir), config::text(&kept).as_bytes(), false)?;
            files.push("config.toml".into());
            format!("pinned the new policy key in config.toml ({new_pin}), its other settings kept")
        }
        Some((config, _)) => format!(
            "left config.toml as it is: it pins another policy signer ({}), not this directory's policy key — bundles signed by the new policy key run only once it pins {new_pin}",
            hex::encode(config.pin.signer.unwrap_or_default())
        ),
    };
    let message = if had_keys {
        format!(
            "replaced the keys in {} with new platform, cost, policy and journal keys and {config_done}; what the old keys signed verifies only against the old public keys",
            dir.display(),
        )
    } else {
        format!("created platform, cost, policy and journal keys in {} and {config_done}", dir.display())
    };
    Ok(InitReport { dir: dir.display().to_string(), created: true, files, message })
}

/// Creates `dir` 0700 (no window in which it is 0755), or makes an
/// existing one 0700.
fn private_directory(dir: &Path) -> Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(format!("creating {}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(format!("chmod 700 {}", dir.display())))
}

/// Makes the dual key pair `name` (`NAME.key`, `NAME.pub`); returns the
/// public key's fingerprint.
fn make_pair(dir: &Path, name: &str) -> Result<[u8; 32]> {
    let (ed, ml) = (Zeroizing::new(random::<SEED_LEN>()?), Zeroizing::new(random::<SEED_LEN>()?));
    let key = DualSigningKey::from_seeds(&ed, &ml);
    write_file(&dir.join(format!("{name}.key")), &dual_key_text(&ed, &ml), true)?;
    write_file(&dir.join(format!("{name}.pub")), &cose_key_set(&key.public())?, false)?;
    Ok(key.public().fingerprint())
}

/// Whether something — anything, a dangling link included — has the name
/// `path`.
fn present(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(format!("checking {}", path.display()))(e)),
    }
}

/// Something in or named by the key directory that belongs to a journal.
struct JournalFile {
    /// Its path.
    path: PathBuf,
    /// What it holds, for the user.
    what: String,
}

/// What belongs to a journal written with the keys in `dir`: the
/// directory `DIR/journal` unless empty, the configured journal if it is
/// elsewhere and exists, the high-water marks `DIR/anchors` unless empty.
fn journal_files(dir: &Path, config: Option<&Config>) -> Result<Vec<JournalFile>> {
    let mut found = Vec::new();
    let journal_dir = dir.join("journal");
    if let Some(entries) = entries(&journal_dir)? {
        let what = match entries.as_slice() {
            [] => None,
            [one] => Some(format!("holding {one}")),
            [first, ..] => Some(format!("holding {} files: {first}, …", entries.len())),
        };
        if let Some(what) = what {
            found.push(JournalFile { path: journal_dir.clone(), what });
        }
    }
    let configured = dir.join(config.and_then(|c| c.journal.as_deref()).unwrap_or(Path::new(config::DEFAULT_JOURNAL)));
    if !configured.starts_with(&journal_dir) && present(&configured)? {
        found.push(JournalFile { path: configured, what: "the journal config.toml names".into() });
    }
    let anchors = dir.join("anchors");
    if let Some(entries) = entries(&anchors)?
        && !entries.is_empty()
    {
        let what = match entries.len() {
            1 => "1 high-water mark".to_string(),
            n => format!("{n} high-water marks"),
        };
        found.push(JournalFile { path: anchors, what });
    }
    Ok(found)
}

/// The names in directory `path`, sorted; `None` when there is nothing
/// there, and `Some([name])` for something there that is not a directory.
fn entries(path: &Path) -> Result<Option<Vec<String>>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("checking {}", path.display()))(e)),
    };
    if !meta.is_dir() {
        return Ok(Some(vec![path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()]));
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(path).map_err(io(format!("reading {}", path.display())))? {
        let entry = entry.map_err(io(format!("reading {}", path.display())))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(Some(names))
}

/// "A (what), B (what)".
fn describe(found: &[JournalFile]) -> String {
    found.iter().map(|f| format!("{}: {}", f.path.display(), f.what)).collect::<Vec<_>>().join("; ")
}

/// "a", "a and b", "a, b and c".
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// `path` with `suffix` appended (a trailing `/` dropped), numbered until
/// nothing has that name: where to move `path` aside.
fn free_name(path: &Path, suffix: &str) -> PathBuf {
    let base = path.components().as_path().as_os_str().to_string_lossy().into_owned();
    let mut candidate = PathBuf::from(format!("{base}{suffix}"));
    let mut n = 2;
    while fs::symlink_metadata(&candidate).is_ok() && n < 1000 {
        candidate = PathBuf::from(format!("{base}{suffix}.{n}"));
        n += 1;
    }
    candidate
}

/// `path` as one shell word (single-quoted unless plainly safe).
fn shell_quote(path: &Path) -> String {
    let s = path.to_string_lossy();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,".contains(&b)) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::keys::show;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-init-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir.join("keys")
    }

    /// Every file under `dir` with its bytes.
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push((path.clone(), fs::read(&path).unwrap_or_default()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn a_new_directory_gets_every_key_and_a_config_with_a_relative_journal() {
        let dir = scratch("new");
        let report = init(&dir, false).unwrap();
        assert!(report.created);
        assert_eq!(report.files.len(), 8, "{:?}", report.files);
        let config = config::read(&dir).unwrap().unwrap();
        assert_eq!(config.journal.as_deref(), Some(Path::new("journal/vigil.vgj")));
        let policy = crate::keys::read_cose_key_set(&fs::read(dir.join("policy.pub")).unwrap()).unwrap();
        assert_eq!(config.pin.signer, Some(policy.fingerprint()));
        assert_eq!(crate::keys::journal_path(&dir, None).unwrap(), dir.join("journal/vigil.vgj"));
        let again = init(&dir, false).unwrap();
        assert!(!again.created && again.files.is_empty() && again.message.contains("nothing was changed"));
        let _ = fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    fn a_partial_directory_gets_the_missing_keys_and_keeps_the_others() {
        let dir = scratch("partial");
        init(&dir, false).unwrap();
        for name in ["cost.key", "cost.pub", "policy.key", "policy.pub", "journal.key", "config.toml"] {
            fs::remove_file(dir.join(name)).unwrap();
        }
        fs::remove_file(dir.join("platform.pub")).unwrap();
        let platform = fs::read(dir.join("platform.key")).unwrap();
        let report = init(&dir, false).unwrap();
        assert!(report.created);
        for file in ["platform.pub", "cost.key", "cost.pub", "policy.key", "policy.pub", "journal.key", "config.toml"] {
            assert!(report.files.iter().any(|f| f == file), "{file}: {:?}", report.files);
            assert!(report.message.contains(file), "{file}: {}", report.message);
        }
        assert!(report.message.contains("the other keys were not changed (platform.key)"), "{}", report.message);
        assert_eq!(fs::read(dir.join("platform.key")).unwrap(), platform);
        assert!(show(&dir).unwrap().iter().all(|k| k.secret_matches));

        // A config that pins another signer is left as it is, and the
        // message says so.
        fs::remove_file(dir.join("policy.key")).unwrap();
        fs::remove_file(dir.join("policy.pub")).unwrap();
        let other = format!("version = 1\npolicy_signer = \"{}\"\n", "ab".repeat(32));
        fs::write(dir.join("config.toml"), &other).unwrap();
        let report = init(&dir, false).unwrap();
        assert_eq!(report.files, ["policy.key", "policy.pub"]);
        assert!(report.message.contains("already pins another policy signer"), "{}", report.message);
        assert_eq!(fs::read_to_string(dir.join("config.toml")).unwrap(), other);
        let _ = fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    fn a_public_key_without_its_secret_or_a_journal_without_its_keys_is_refused() {
        let dir = scratch("orphans");
        init(&dir, false).unwrap();
        fs::remove_file(dir.join("cost.key")).unwrap();
        let before = snapshot(&dir);
        let why = init(&dir, false).unwrap_err().to_string();
        assert!(
            why.contains("cost.pub is there without its secret key cost.key") && why.contains("Nothing was changed")
        );
        assert_eq!(snapshot(&dir), before);

        fs::remove_file(dir.join("cost.pub")).unwrap();
        fs::remove_file(dir.join("journal.key")).unwrap();
        fs::create_dir_all(dir.join("anchors")).unwrap();
        fs::write(dir.join("anchors/00.anchor"), b"mark").unwrap();
        let before = snapshot(&dir);
        let why = init(&dir, false).unwrap_err().to_string();
        assert!(why.contains("holds a journal") && why.contains("1 high-water mark"), "{why}");
        assert!(why.contains("cost.key, cost.pub and journal.key are missing"), "{why}");
        assert_eq!(snapshot(&dir), before);
        let _ = fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    fn force_is_refused_while_a_journal_is_in_the_directory_or_where_config_says() {
        let dir = scratch("force");
        init(&dir, false).unwrap();
        // No journal yet: --force replaces the keys.
        let before = fs::read(dir.join("platform.key")).unwrap();
        assert!(init(&dir, true).unwrap().message.starts_with("replaced the keys"));
        assert_ne!(fs::read(dir.join("platform.key")).unwrap(), before);

        let outside = dir.parent().unwrap().join("elsewhere.vgj");
        let config = fs::read_to_string(dir.join("config.toml")).unwrap();
        let config = config.replace("journal/vigil.vgj", outside.to_str().unwrap());
        fs::write(dir.join("config.toml"), &config).unwrap();
        fs::write(&outside, b"journal").unwrap();
        let before = snapshot(&dir);
        let why = init(&dir, true).unwrap_err().to_string();
        assert!(why.starts_with("refusing to replace the keys"), "{why}");
        assert!(why.contains(&format!("{}: the journal config.toml names", outside.display())), "{why}");
        assert!(why.contains(&format!("mv {} {}.old", dir.display(), dir.display())), "{why}");
        assert_eq!(snapshot(&dir), before);

        // A planted link at a key's name counts as there.
        fs::remove_file(&outside).unwrap();
        fs::remove_file(dir.join("cost.pub")).unwrap();
        fs::remove_file(dir.join("cost.key")).unwrap();
        symlink(&outside, dir.join("cost.key")).unwrap();
        let why = init(&dir, false).unwrap_err().to_string();
        assert!(why.contains("symbolic link"), "{why}");
        assert!(!outside.exists());
        let _ = fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    fn force_keeps_config_settings_and_never_trades_an_outside_signer_for_a_local_key() {
        let dir = scratch("force-config");
        init(&dir, false).unwrap();
        let policy_fingerprint = |dir: &Path| {
            crate::keys::read_cose_key_set(&fs::read(dir.join("policy.pub")).unwrap()).unwrap().fingerprint()
        };
        // The directory's own policy key pinned, a journal elsewhere (none
        // yet) and a bundle digest pinned: the new key is pinned, the rest
        // kept.
        let old = policy_fingerprint(&dir);
        let digest = "cd".repeat(48);
        let text = format!(
            "version = 1\njournal = \"/var/lib/vigil \\\"x\\\"/j.vgj\"\npolicy_signer = \"{}\"\npolicy_digest = \"{digest}\"\n",
            hex::encode(old)
        );
        fs::write(dir.join("config.toml"), &text).unwrap();
        let report = init(&dir, true).unwrap();
        assert!(report.message.contains("pinned the new policy key in config.toml"), "{}", report.message);
        assert!(report.files.iter().any(|f| f == "config.toml"));
        let new = policy_fingerprint(&dir);
        assert_ne!(new, old);
        let config = config::read(&dir).unwrap().unwrap();
        assert_eq!(config.pin.signer, Some(new));
        assert_eq!(config.pin.digest, Some([0xcd; 48]));
        assert_eq!(config.journal.as_deref(), Some(Path::new("/var/lib/vigil \"x\"/j.vgj")));

        // No pin at all: the new key is pinned too.
        fs::write(dir.join("config.toml"), "version = 1\njournal = \"j/elsewhere.vgj\"\n").unwrap();
        init(&dir, true).unwrap();
        let config = config::read(&dir).unwrap().unwrap();
        assert_eq!(config.pin.signer, Some(policy_fingerprint(&dir)));
        assert_eq!(config.journal.as_deref(), Some(Path::new("j/elsewhere.vgj")));

        // An outside signer's public key in place of policy.pub, without
        // policy.key, pinned: kept (it is not this directory's own key).
        fs::remove_file(dir.join("policy.key")).unwrap();
        let team = DualSigningKey::from_seeds(&[9; 32], &[8; 32]).public();
        fs::write(dir.join("policy.pub"), crate::keys::cose_key_set(&team).unwrap()).unwrap();
        let pinned = format!("version = 1\npolicy_signer = \"{}\"\n", hex::encode(team.fingerprint()));
        fs::write(dir.join("config.toml"), &pinned).unwrap();
        let report = init(&dir, true).unwrap();
        assert!(report.message.contains("it pins another policy signer"), "{}", report.message);
        assert_eq!(fs::read_to_string(dir.join("config.toml")).unwrap(), pinned);

        // An outside signer pinned: config.toml is left byte for byte, and
        // the new local key is not trusted.
        let outside = format!("# the security team's key\nversion = 1\npolicy_signer = \"{}\"\n", "ab".repeat(32));
        fs::write(dir.join("config.toml"), &outside).unwrap();
        let report = init(&dir, true).unwrap();
        assert!(report.message.contains("it pins another policy signer"), "{}", report.message);
        assert!(!report.files.iter().any(|f| f == "config.toml"), "{:?}", report.files);
        assert_eq!(fs::read_to_string(dir.join("config.toml")).unwrap(), outside);
        let _ = fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    fn names_to_move_aside_are_free_and_quoted() {
        let dir = scratch("names");
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(free_name(&dir, ".old"), PathBuf::from(format!("{}.old", dir.display())));
        fs::create_dir_all(format!("{}.old", dir.display())).unwrap();
        assert_eq!(free_name(&dir, ".old"), PathBuf::from(format!("{}.old.2", dir.display())));
        assert_eq!(free_name(Path::new("rel/"), ".old"), PathBuf::from("rel.old"));
        assert_eq!(shell_quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
        assert_eq!(shell_quote(Path::new("rel")), "rel");
        let _ = fs::remove_dir_all(dir.parent().unwrap());
    }
}
