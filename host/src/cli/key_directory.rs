//! Where the key directory is: the one place `vigil` reads the environment
//! for it (the library takes the directory as an argument).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The key directory: `--dir`, else `$VIGIL_DIR`, else
/// `$XDG_DATA_HOME/vigil`, else `~/.local/share/vigil`.
pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("VIGIL_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(data).join("vigil"));
    }
    let home = std::env::var_os("HOME").context("no --dir, VIGIL_DIR or HOME: say where the keys live with --dir")?;
    Ok(PathBuf::from(home).join(".local/share/vigil"))
}
