//! The labelled corpus of the source tree this `vigil` was built from
//! (`tests/corpus/*.jsonl`): the default cases of `vigil policy test` and
//! the intents of the benchmarks. Read at run time from the build's source
//! directory; absent on a machine without the source, where those commands
//! say so or take `--cases`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// tests/corpus/*.jsonl of the source tree vigil was built from.
pub fn source_corpus_files() -> Result<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("no --cases given and {} is not readable", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    Ok(files)
}

/// The intents of the source tree's corpus, CBOR-encoded (JSON that cannot
/// be encoded is skipped); empty when the corpus is not there.
pub fn source_corpus_intents() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for file in source_corpus_files().unwrap_or_default() {
        for case in vigil::policy::read_cases(&file).unwrap_or_default() {
            if let Ok(cbor) = case.cbor() {
                out.push(cbor);
            }
        }
    }
    out
}

/// The intents of the source tree's corpus as JSON values; empty when the
/// corpus is not there.
pub fn source_corpus_values() -> Vec<serde_json::Value> {
    source_corpus_files()
        .unwrap_or_default()
        .iter()
        .flat_map(|file| vigil::policy::read_cases(file).unwrap_or_default())
        .map(|case| case.intent)
        .collect()
}
