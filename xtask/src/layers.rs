//! `cargo xtask check-layers`: keeps the house in the shape
//! `docs/design.md` ("Layers") describes.
//!
//! 1. **Crates point one way.** Each workspace crate may depend (normal
//!    dependencies) only on the Vigil crates [`CRATE_LAYERS`] allows it.
//! 2. **No module cycles.** Inside every crate, no module imports one that
//!    (directly or through others) imports it back — counting `crate::`
//!    and `super::` paths in non-test code, per file and per top-level
//!    module.
//!    The host's libraries are crates of their own: `vigil-os` at the
//!    bottom, then `vigil-journal` and `vigil-vmm`, which do not depend on
//!    each other (the journal must build without KVM on an auditor's
//!    laptop).
//! 3. **Host modules point down.** In the host crate, a module imports only
//!    modules of its own layer or below ([`HOST_LAYERS`]).
//!
//! The analysis reads source text: a path written in a string or a macro
//! that builds paths is not seen. It is a guard rail, not a compiler.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Each crate, its source directory, and the Vigil crates it may depend on.
pub const CRATE_LAYERS: &[(&str, &str, &[&str])] = &[
    ("vigil-abi", "unikernel/abi", &[]),
    ("vigil-guard", "unikernel/guard", &[]),
    ("vigil-attest", "attest", &["vigil-abi"]),
    ("vigil-os", "host/os", &[]),
    ("vigil-journal", "host/journal", &["vigil-attest", "vigil-guard", "vigil-os"]),
    ("vigil-vmm", "host/vmm", &["vigil-abi", "vigil-attest"]),
    ("vigil-fpga", "fpga", &[]),
    ("vigil-unikernel", "unikernel/kernel", &["vigil-abi", "vigil-attest", "vigil-guard"]),
    (
        "vigil",
        "host",
        &["vigil-abi", "vigil-attest", "vigil-guard", "vigil-fpga", "vigil-os", "vigil-journal", "vigil-vmm"],
    ),
    ("xtask", "xtask", &[]),
];

/// Host library top-level modules by layer (0 lowest). A module may import
/// its own layer or lower. The libraries under them are crates of their own
/// (`vigil-os`, `vigil-journal`, `vigil-vmm`, kept apart by
/// [`CRATE_LAYERS`] and re-exported at the host's root). The front ends are
/// the binary: `main.rs` and [`HOST_BIN_DIR`].
pub const HOST_LAYERS: &[(&str, u8)] = &[
    ("stats", 0),
    ("progress", 0),
    ("keys", 1),
    ("policy", 1),
    ("policy_signature", 1),
    ("judge", 1),
    ("verify", 1),
    ("guard_image", 1),
    ("vm_judge", 1),
    ("cost", 1),
    ("cost_audit", 1),
    ("recording", 1),
    ("eval", 1),
    ("audit", 1),
    ("suggest", 1),
    ("claude_code", 1),
    ("verdict_records", 1),
    // The daemon: a front end over the core (tokio lives here only).
    ("daemon", 2),
];

/// The host binary's own modules (front ends over the library), under
/// `host/src/cli/`; checked for cycles as a crate of their own.
pub const HOST_BIN_DIR: &str = "cli";

/// A module path inside a crate (`[]` is the crate root).
type Module = Vec<String>;

/// Every problem found; empty when the house is in order.
pub fn check(workspace: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for (name, dir, allowed) in CRATE_LAYERS {
        let root = workspace.join(dir);
        problems.extend(check_dependencies(&root, name, allowed)?);
        let src = root.join("src");
        // The library's tree: the binary's `main.rs` (and, in the host, its
        // `cli/` modules) belong to another crate root.
        let all = modules(&src)?;
        let in_binary = |m: &Module, p: &PathBuf| {
            p.ends_with("main.rs") || (*name == "vigil" && m.first().is_some_and(|t| t == HOST_BIN_DIR))
        };
        let library: BTreeMap<Module, PathBuf> =
            all.iter().filter(|(m, p)| !in_binary(m, p)).map(|(m, p)| (m.clone(), p.clone())).collect();
        let library_imports = imports(&library)?;
        problems.extend(cycle_problems(name, &library_imports));
        if *name == "vigil" {
            problems.extend(check_host_layers(&library_imports));
            let binary: BTreeMap<Module, PathBuf> =
                all.iter().filter(|(m, p)| in_binary(m, p)).map(|(m, p)| (m.clone(), p.clone())).collect();
            problems.extend(cycle_problems("vigil (binary)", &imports(&binary)?));
        }
    }
    Ok(problems)
}

fn cycle_problems(name: &str, imports: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    let mut problems = Vec::new();
    for level in [Level::File, Level::TopLevel] {
        for cycle in cycles(&graph(imports, level)) {
            let names: Vec<String> = cycle.iter().map(|m| display(m)).collect();
            problems.push(format!("{name}: module cycle ({}): {}", level.name(), names.join(" -> ")));
        }
    }
    problems
}

fn display(module: &[String]) -> String {
    if module.is_empty() { "crate".into() } else { module.join("::") }
}

/// Normal dependencies on Vigil crates that the layer table does not allow.
fn check_dependencies(root: &Path, name: &str, allowed: &[&str]) -> Result<Vec<String>> {
    let manifest = root.join("Cargo.toml");
    let text = fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let table: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", manifest.display()))?;
    let mut problems = Vec::new();
    let deps = table.get("dependencies").and_then(|d| d.as_table());
    for dep in deps.into_iter().flat_map(|d| d.keys()) {
        let vigil_crate = dep.starts_with("vigil") || dep == "xtask";
        if vigil_crate && !allowed.contains(&dep.as_str()) {
            problems.push(format!(
                "{name} depends on {dep}, which is not below it (allowed: {})",
                if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
            ));
        }
    }
    Ok(problems)
}

/// Every `.rs` file under `src`, by module path (`lib.rs` and `main.rs`
/// are both the root `[]`: callers split them).
fn modules(src: &Path) -> Result<BTreeMap<Module, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("below src").with_extension("");
            let mut module: Module = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if matches!(module.last().map(String::as_str), Some("lib" | "main" | "mod")) {
                module.pop();
            }
            // Keep lib.rs over main.rs for the root; main.rs is looked up
            // by path.
            if module.is_empty() && path.ends_with("main.rs") {
                out.entry(vec!["#main".to_string()]).or_insert(path);
            } else {
                out.insert(module, path);
            }
        }
    }
    Ok(out)
}

/// The modules each module refers to (the longest known prefix of each
/// `crate::`/`super::` path), in code before its first `#[cfg(test)]`.
fn imports(modules: &BTreeMap<Module, PathBuf>) -> Result<BTreeMap<Module, BTreeSet<Module>>> {
    let mut out = BTreeMap::new();
    for (module, path) in modules {
        let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .map(|l| l.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let mut found = BTreeSet::new();
        for (anchor, base) in [("crate::", Vec::new()), ("super::", module[..module.len().saturating_sub(1)].to_vec())]
        {
            for path in paths_after(&code, anchor) {
                let mut full = base.clone();
                full.extend(path);
                if let Some(target) = longest_known(&full, modules) {
                    found.insert(target);
                }
            }
        }
        out.insert(module.clone(), found);
    }
    Ok(out)
}

/// The `::`-separated identifier paths following each `anchor`, with the
/// members of a `{a, b::c}` group expanded.
fn paths_after(code: &str, anchor: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(anchor) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + anchor.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let (prefix, tail) = ident_path(rest);
        if let Some(group) = tail.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for member in group[..end].split(',') {
                let (member, _) = ident_path(member.trim());
                let mut path = prefix.clone();
                path.extend(member);
                out.push(path);
            }
        } else {
            out.push(prefix);
        }
    }
    out
}

/// Splits `a::b::c rest` into `[a, b, c]` and what follows (after a final
/// `::`, if any).
fn ident_path(text: &str) -> (Vec<String>, &str) {
    let mut path = Vec::new();
    let mut rest = text;
    loop {
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if end == 0 {
            return (path, rest);
        }
        path.push(rest[..end].to_string());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(next) => rest = next,
            None => return (path, rest),
        }
    }
}

fn longest_known(path: &[String], modules: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|m| modules.contains_key(m))
}

#[derive(Clone, Copy)]
enum Level {
    File,
    TopLevel,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::File => "files",
            Level::TopLevel => "top-level modules",
        }
    }
}

/// The import graph at `level`; a module importing its parent or child is
/// not an edge (a parent declares its children).
fn graph(imports: &BTreeMap<Module, BTreeSet<Module>>, level: Level) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut g: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, targets) in imports {
        for to in targets {
            let (a, b) = match level {
                Level::File => (from.clone(), to.clone()),
                Level::TopLevel => (from.iter().take(1).cloned().collect(), to.iter().take(1).cloned().collect()),
            };
            if a.is_empty() || b.is_empty() || a == b || a.starts_with(&b) || b.starts_with(&a) {
                continue;
            }
            g.entry(a).or_default().insert(b);
        }
    }
    g
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Tarjan<'g> {
        graph: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        on_stack: BTreeSet<&'g Module>,
        next: usize,
        found: Vec<Vec<Module>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g Module) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.found
}

/// Host imports that point up a layer.
fn check_host_layers(imports: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    let layer = |m: &Module| m.first().and_then(|top| HOST_LAYERS.iter().find(|(n, _)| n == top).map(|(_, l)| *l));
    let mut problems = Vec::new();
    for (from, targets) in imports {
        let Some(top) = from.first() else { continue };
        let Some(from_layer) = layer(from) else {
            problems.push(format!("vigil: module `{top}` has no layer in xtask's HOST_LAYERS: give it one"));
            continue;
        };
        for to in targets {
            let Some(to_layer) = layer(to) else { continue };
            if to.first() == Some(top) {
                continue;
            }
            if to_layer > from_layer {
                problems.push(format!(
                    "vigil: {} (layer {from_layer}) imports {} (layer {to_layer}), which is not below it",
                    display(from),
                    display(to)
                ));
            }
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(path: &str) -> Module {
        path.split("::").map(String::from).collect()
    }

    #[test]
    fn paths_and_groups_are_read() {
        let code = "use crate::a::{b, c::d};\nlet x = crate::e::f(); my_crate::z; super::g::h";
        let got = paths_after(code, "crate::");
        assert_eq!(got, vec![m("a::b"), m("a::c::d"), m("e::f")]);
        assert_eq!(paths_after(code, "super::"), vec![m("g::h")]);
    }

    #[test]
    fn cycles_are_found_and_acyclic_graphs_pass() {
        let mut g: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        g.entry(m("a")).or_default().insert(m("b"));
        g.entry(m("b")).or_default().insert(m("c"));
        assert!(cycles(&g).is_empty());
        g.entry(m("c")).or_default().insert(m("a"));
        assert_eq!(cycles(&g), vec![vec![m("a"), m("b"), m("c")]]);
    }

    #[test]
    fn an_upward_host_import_is_reported() {
        let mut imports = BTreeMap::new();
        imports.insert(m("stats"), BTreeSet::from([m("keys")]));
        imports.insert(m("keys"), BTreeSet::from([m("stats"), m("policy")]));
        let problems = check_host_layers(&imports);
        assert_eq!(problems, vec!["vigil: stats (layer 0) imports keys (layer 1), which is not below it".to_string()]);
    }

    #[test]
    fn a_journal_that_depends_on_the_vmm_is_reported() {
        let root = std::env::temp_dir().join(format!("vigil-layers-{}", std::process::id()));
        fs::create_dir_all(&root).expect("temp dir");
        fs::write(
            root.join("Cargo.toml"),
            "[package]\nname = \"vigil-journal\"\n[dependencies]\nvigil-vmm = { path = \"../vmm\" }\nvigil-os = { path = \"../os\" }\n",
        )
        .expect("manifest");
        let allowed = CRATE_LAYERS.iter().find(|(n, _, _)| *n == "vigil-journal").expect("journal layer").2;
        let problems = check_dependencies(&root, "vigil-journal", allowed).expect("the check runs");
        fs::remove_dir_all(&root).ok();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("vigil-journal depends on vigil-vmm"), "{problems:?}");
    }

    #[test]
    fn this_workspace_is_in_order() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
        let problems = check(workspace).expect("the check runs");
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
