//! Criterion benchmarks of the policy engine on the default pack: a whole
//! evaluation per corpus intent, and one class scan (prefilter + DFAs) per
//! command line. `cargo bench -p vigil-guard --features compile`.

// criterion's macros define undocumented functions.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vigil_guard::bundle::{Bundle, FieldClass};
use vigil_guard::dfa::{self, RuleSet};
use vigil_guard::eval;

/// The default pack, compiled.
fn default_pack() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/default.toml");
    let source = std::fs::read_to_string(&path).expect("policies/default.toml");
    vigil_guard::compile::compile(&source, "policies/default.toml").expect("the default pack compiles").bundle
}

/// tests/corpus/*.jsonl intents as CBOR.
fn corpus() -> Vec<(Vec<u8>, Option<String>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        for line in std::fs::read_to_string(&file).unwrap().lines().filter(|l| !l.trim().is_empty()) {
            let case: serde_json::Value = serde_json::from_str(line).unwrap();
            let intent = &case["intent"];
            if let Ok(cbor) = vigil_guard::intent::json::to_cbor(intent) {
                out.push((cbor, intent["args"]["command"].as_str().map(str::to_string)));
            }
        }
    }
    out
}

fn benches(c: &mut Criterion) {
    let bytes = default_pack();
    let stored = Bundle::load(&bytes).expect("the default pack loads");
    // As every judge runs it: dense copies of the sparse tables.
    let mut arena = vec![0u8; vigil_guard::dense::DEFAULT_ARENA_LEN];
    let mut dense = Bundle::load(&bytes).expect("the default pack loads");
    dense.densify(&mut arena);
    let cases = corpus();
    let commands: Vec<&str> = cases.iter().filter_map(|(_, c)| c.as_deref()).collect();
    let mut group = c.benchmark_group("default pack");
    for (tables, bundle) in [("dense copies", &dense), ("tables as stored", &stored)] {
        group.throughput(Throughput::Elements(cases.len() as u64));
        group.bench_function(format!("evaluate every corpus intent ({tables})"), |b| {
            b.iter(|| {
                for (cbor, _) in &cases {
                    std::hint::black_box(eval::evaluate(bundle, cbor));
                }
            })
        });
        group.throughput(Throughput::Elements(commands.len() as u64));
        group.bench_function(format!("scan the command class over every corpus command line ({tables})"), |b| {
            b.iter_batched(
                RuleSet::default,
                |mut out| {
                    for command in &commands {
                        dfa::scan_class(bundle, FieldClass::Command, command.as_bytes(), &mut out);
                    }
                    out
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
