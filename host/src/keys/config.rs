//! `DIR/config.toml`, the key directory's settings (docs/keys.md). Read
//! strictly: a setting this version does not know, a version it does not
//! read, or a value of the wrong kind is an error naming the file — never
//! ignored, so that a misspelt pin cannot silently switch a check off.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Result, invalid, io};

/// The config.toml version this vigil reads and writes.
pub const VERSION: i64 = 1;

/// Every setting of version 1.
pub const SETTINGS: [&str; 4] = ["version", "journal", "policy_signer", "policy_digest"];

/// The journal `vigil init` configures, and the one used without a
/// `journal` setting: relative to the key directory.
pub const DEFAULT_JOURNAL: &str = "journal/vigil.vgj";

/// What config.toml pins about the policies that may run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyPin {
    /// `policy_signer`: the fingerprint of the only key whose signed
    /// bundles may run.
    pub signer: Option<[u8; 32]>,
    /// `policy_digest`: the SHA-384 of the only bundle that may run.
    pub digest: Option<[u8; 48]>,
}

/// The settings of a config.toml.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `journal`, as written: relative to the key directory unless
    /// absolute.
    pub journal: Option<PathBuf>,
    /// `policy_signer` and `policy_digest`.
    pub pin: PolicyPin,
}

/// `DIR/config.toml`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("config.toml")
}

/// The text of `DIR/config.toml`, or `None` when there is none.
pub fn read_text(dir: &Path) -> Result<Option<String>> {
    let path = path(dir);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("reading {}", path.display()))(e)),
    }
}

/// Reads and checks `DIR/config.toml` ([`parse`]); `None` when there is
/// none.
pub fn read(dir: &Path) -> Result<Option<Config>> {
    match read_text(dir)? {
        Some(text) => parse(&text, &path(dir)).map(Some),
        None => Ok(None),
    }
}

/// Parses the text of a config.toml (`path` names it in errors). Refused:
/// not TOML; a `version` other than 1 (omitted means 1); a setting that is
/// not one of [`SETTINGS`]; a value of the wrong kind.
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let table: toml::Table = text.parse().map_err(|e| invalid(format!("{} is not valid TOML: {e}", path.display())))?;
    // The version first: a file of another version may well hold settings
    // this one does not know.
    if let Some(version) = table.get("version") {
        match version.as_integer() {
            Some(VERSION) => {}
            Some(other) => {
                return Err(invalid(format!(
                    "{}: config.toml version {other} is not supported: this vigil reads version {VERSION} only (docs/keys.md). Use the vigil that wrote the file, or write it as version {VERSION} with the settings {}",
                    path.display(),
                    SETTINGS.join(", ")
                )));
            }
            None => {
                return Err(invalid(format!(
                    "{}: `version` must be the integer {VERSION} (`version = {VERSION}`), the only config.toml version this vigil reads",
                    path.display()
                )));
            }
        }
    }
    let unknown: Vec<String> = table
        .keys()
        .filter(|k| !SETTINGS.contains(&k.as_str()))
        .map(|k| match closest(k) {
            Some(known) => format!("`{k}` (did you mean `{known}`?)"),
            None => format!("`{k}`"),
        })
        .collect();
    if !unknown.is_empty() {
        return Err(invalid(format!(
            "{}: unknown setting{} {}. config.toml version {VERSION} has only {} (docs/keys.md); an unknown setting is refused rather than ignored, so that a misspelt pin cannot switch a check off. Correct or remove {}",
            path.display(),
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            SETTINGS.map(|s| format!("`{s}`")).join(", "),
            if unknown.len() == 1 { "it" } else { "them" },
        )));
    }
    let journal = match table.get("journal") {
        None => None,
        Some(value) => match value.as_str() {
            Some(text) if !text.trim().is_empty() => Some(PathBuf::from(text)),
            _ => {
                return Err(invalid(format!(
                    "{}: `journal` must be the path of a file, as a string (relative to the key directory unless absolute), e.g. `journal = \"{DEFAULT_JOURNAL}\"`",
                    path.display()
                )));
            }
        },
    };
    let pin =
        PolicyPin { signer: hex_pin(&table, "policy_signer", path)?, digest: hex_pin(&table, "policy_digest", path)? };
    Ok(Config { journal, pin })
}

/// The `N`-byte hex value of setting `key`, if set.
fn hex_pin<const N: usize>(table: &toml::Table, key: &str, path: &Path) -> Result<Option<[u8; N]>> {
    let Some(value) = table.get(key) else { return Ok(None) };
    let text = value.as_str().ok_or_else(|| invalid(format!("{}: `{key}` must be a hex string", path.display())))?;
    let bytes = hex::decode(text.trim()).map_err(|_| invalid(format!("{}: `{key}` is not hex", path.display())))?;
    let pin = bytes.try_into().map_err(|_| invalid(format!("{}: `{key}` must be {N} bytes of hex", path.display())))?;
    Ok(Some(pin))
}

/// The setting `unknown` was most likely meant to be: the nearest by edit
/// distance (ignoring case, `-` for `_`), if near enough.
fn closest(unknown: &str) -> Option<&'static str> {
    let unknown = unknown.to_ascii_lowercase().replace('-', "_");
    SETTINGS
        .iter()
        .map(|known| (edit_distance(&unknown, known), *known))
        .filter(|&(distance, known)| distance <= 3 && distance * 3 <= known.len())
        .min()
        .map(|(_, known)| known)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The text of a new config.toml: version, the default journal and, if
/// given, the policy signer pin.
pub fn new_text(policy_signer: Option<&[u8; 32]>) -> String {
    text(&Config {
        journal: Some(PathBuf::from(DEFAULT_JOURNAL)),
        pin: PolicyPin { signer: policy_signer.copied(), digest: None },
    })
}

/// The text of a config.toml holding `config`'s settings (a journal not
/// set is written as the default one, which is what it means).
pub fn text(config: &Config) -> String {
    let mut text = format!("# Vigil configuration (docs/keys.md)\nversion = {VERSION}\n");
    text.push_str("# The journal, relative to this directory unless absolute.\n");
    let journal = config.journal.as_deref().unwrap_or(Path::new(DEFAULT_JOURNAL));
    let journal = toml::Value::String(journal.to_string_lossy().into_owned());
    text.push_str(&format!("journal = {journal}\n"));
    if let Some(signer) = config.pin.signer {
        text.push_str("# Only policy bundles signed by this key run (the pack built into vigil aside).\n");
        text.push_str(&format!("policy_signer = \"{}\"\n", hex::encode(signer)));
    }
    if let Some(digest) = config.pin.digest {
        text.push_str("# Only the policy bundle with this SHA-384 runs.\n");
        text.push_str(&format!("policy_digest = \"{}\"\n", hex::encode(digest)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> PathBuf {
        PathBuf::from("/keys/config.toml")
    }

    fn refusal(text: &str) -> String {
        parse(text, &path()).unwrap_err().to_string()
    }

    #[test]
    fn what_vigil_writes_and_older_configs_still_read() {
        let signer = [7u8; 32];
        let config = parse(&new_text(Some(&signer)), &path()).unwrap();
        assert_eq!(config.journal.as_deref(), Some(Path::new(DEFAULT_JOURNAL)));
        assert_eq!(config.pin, PolicyPin { signer: Some(signer), digest: None });
        // Earlier versions of `vigil init` wrote an absolute journal path;
        // pins were added by hand or by `init` to an older directory.
        let old = format!(
            "# Vigil configuration (docs/keys.md)\nversion = 1\njournal = \"/var/lib/vigil/journal/vigil.vgj\"\npolicy_signer = \"{}\"\npolicy_digest = \"{}\"\n",
            "ab".repeat(32),
            "cd".repeat(48)
        );
        let config = parse(&old, &path()).unwrap();
        assert_eq!(config.journal.as_deref(), Some(Path::new("/var/lib/vigil/journal/vigil.vgj")));
        assert_eq!(config.pin.digest, Some([0xcd; 48]));
        assert_eq!(parse("version = 1\n", &path()).unwrap(), Config::default());
        assert_eq!(parse("", &path()).unwrap(), Config::default(), "no version means version 1");
    }

    #[test]
    fn an_unknown_setting_is_refused_naming_it_and_the_nearest_known_one() {
        let why = refusal("version = 1\npolicy_signr = \"abc\"\n");
        assert!(
            why.starts_with("/keys/config.toml: unknown setting `policy_signr` (did you mean `policy_signer`?)"),
            "{why}"
        );
        assert!(why.contains("version 1 has only `version`, `journal`, `policy_signer`, `policy_digest`"), "{why}");
        let why = refusal("journl = \"j.vgj\"\npolicy-digest = \"ab\"\n[extra]\nx = 1\n");
        assert!(why.contains("unknown settings"), "{why}");
        assert!(why.contains("`journl` (did you mean `journal`?)"), "{why}");
        assert!(why.contains("`policy-digest` (did you mean `policy_digest`?)"), "{why}");
        assert!(why.contains("`extra`,") || why.contains("`extra`."), "no guess for a name far from any: {why}");
        assert!(!why.contains("`extra` (did you mean"), "{why}");
    }

    #[test]
    fn another_version_or_a_value_of_the_wrong_kind_is_refused() {
        for text in ["version = 2\n", "version = 0\npolicy_signr = \"x\"\n"] {
            let why = refusal(text);
            assert!(why.contains("is not supported: this vigil reads version 1 only"), "{why}");
        }
        assert!(refusal("version = \"1\"\n").contains("`version` must be the integer 1"));
        assert!(refusal("journal = 3\n").contains("`journal` must be the path of a file"));
        assert!(refusal("journal = \"\"\n").contains("`journal` must be the path of a file"));
        assert!(refusal("policy_signer = \"abcd\"\n").contains("must be 32 bytes of hex"));
        assert!(refusal("policy_digest = 1\n").contains("must be a hex string"));
        assert!(refusal("version = \n").contains("is not valid TOML"));
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("policy_signr", "policy_signer"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(closest("VERSION"), Some("version"));
        assert_eq!(closest("signer"), None);
    }
}
