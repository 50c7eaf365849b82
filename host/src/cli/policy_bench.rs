//! `vigil policy bench`: in-process evaluation speed on a corpus, its
//! flatness as rules are added, and the default pack's compile time and
//! bundle size. Medians of one run; nothing here asserts a speed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use vigil_guard::bundle::Bundle;
use vigil_guard::compile::compile;
use vigil_guard::eval::evaluate;

use vigil::policy::{DEFAULT_SOURCE, read_cases};

/// One measured configuration.
#[derive(Debug, Serialize)]
pub struct EvalFigures {
    /// Extra synthetic rules on top of the default pack.
    pub extra_rules: usize,
    /// Total rules.
    pub rules: usize,
    /// DFAs in the bundle.
    pub dfas: usize,
    /// Bundle size, bytes.
    pub bundle_bytes: usize,
    /// Compile time, ms.
    pub compile_ms: f64,
    /// Bytes of dense copies of the bundle's sparse DFAs the judge ran
    /// (`vigil_guard::dense`; 0: the tables as stored).
    pub dense_bytes: usize,
    /// Median ns per intent over the corpus.
    pub p50_ns: f64,
    /// 99th percentile ns per intent.
    pub p99_ns: f64,
    /// Intents per second (one core, back to back).
    pub per_second: f64,
    /// Mean ns per intent when every intent is judged once in turn (the
    /// median of several rounds): no intent finds its own work still in
    /// the caches and branch predictors, as in a batch or a replay.
    pub round_robin_ns: f64,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct PolicyBenchReport {
    /// Intents in the corpus.
    pub intents: usize,
    /// Evaluations per intent per measurement of the p50.
    pub repeat: usize,
    /// Default pack without dense copies, then with them (as every judge
    /// runs it), then with 10, 100, 1000 extra rules.
    pub configurations: Vec<EvalFigures>,
}

fn synthetic_rules(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "\n[[rules]]\nid = \"bench.r{i}\"\nclass = \"command\"\npattern = '^tool{i}( [^ ]+)* --flag-{i}( |$)'\ndecision = \"escalate\"\nreason = \"benchmark rule {i}\"\n"
        ));
    }
    s
}

/// Rounds of the round-robin figure.
const ROUNDS: usize = 9;

/// Runs the benchmark over the cases in `files`.
pub fn run(files: &[PathBuf], repeat: usize) -> Result<PolicyBenchReport> {
    let mut intents = Vec::new();
    for file in files {
        for case in read_cases(file)? {
            intents.push(case.cbor().with_context(|| format!("case {}", case.name))?);
        }
    }
    anyhow::ensure!(!intents.is_empty(), "no intents found in the case files");
    let mut configurations = Vec::new();
    for extra in [0usize, 10, 100, 1000] {
        let source = format!("{DEFAULT_SOURCE}{}", synthetic_rules(extra));
        let started = Instant::now();
        let compiled = compile(&source, "default+synthetic").context("compiling the benchmark policy")?;
        let compile_ms = started.elapsed().as_secs_f64() * 1e3;
        // The default pack is measured as stored too: what the dense
        // copies buy, in the same run.
        for dense in if extra == 0 { &[false, true][..] } else { &[true][..] } {
            let mut arena = if *dense { vigil::judge::dense_arena() } else { Vec::new() };
            let mut bundle = Bundle::load(&compiled.bundle).map_err(|e| anyhow::anyhow!(e.as_str()))?;
            let dense_bytes = bundle.densify(&mut arena);
            configurations.push(measure(&bundle, &intents, repeat, extra, &compiled, compile_ms, dense_bytes));
        }
    }
    Ok(PolicyBenchReport { intents: intents.len(), repeat, configurations })
}

/// Times every intent under `bundle`.
fn measure(
    bundle: &Bundle<'_>,
    intents: &[Vec<u8>],
    repeat: usize,
    extra: usize,
    compiled: &vigil_guard::compile::Compiled,
    compile_ms: f64,
    dense_bytes: usize,
) -> EvalFigures {
    let mut per_intent = Vec::with_capacity(intents.len());
    let mut total = 0f64;
    for cbor in intents {
        // Warm, then time `repeat` evaluations of the same intent.
        std::hint::black_box(evaluate(bundle, cbor));
        let t = Instant::now();
        for _ in 0..repeat {
            std::hint::black_box(evaluate(bundle, std::hint::black_box(cbor)));
        }
        let ns = t.elapsed().as_nanos() as f64 / repeat as f64;
        total += ns;
        per_intent.push(ns);
    }
    // Each intent once in turn, several rounds: the median round.
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for cbor in intents {
                std::hint::black_box(evaluate(bundle, std::hint::black_box(cbor)));
            }
            t.elapsed().as_nanos() as f64 / intents.len() as f64
        })
        .collect();
    rounds.sort_by(|a, b| a.total_cmp(b));
    per_intent.sort_by(|a, b| a.total_cmp(b));
    let q = |q: f64| per_intent[((per_intent.len() as f64 * q).ceil() as usize).clamp(1, per_intent.len()) - 1];
    EvalFigures {
        extra_rules: extra,
        rules: compiled.rules,
        dfas: compiled.dfas.len(),
        bundle_bytes: compiled.bundle.len(),
        compile_ms,
        dense_bytes,
        p50_ns: q(0.5),
        p99_ns: q(0.99),
        per_second: 1e9 * intents.len() as f64 / total,
        round_robin_ns: rounds[ROUNDS / 2],
    }
}

/// Prints the report as text.
pub fn print(r: &PolicyBenchReport) {
    println!("{} intents, in-process evaluation (vigil-guard), one core", r.intents);
    println!(
        "{:>12} {:>6} {:>5} {:>12} {:>11} {:>10} {:>10} {:>10} {:>12} {:>15}",
        "extra rules",
        "rules",
        "DFAs",
        "bundle B",
        "compile ms",
        "dense KiB",
        "p50 ns",
        "p99 ns",
        "intents/s",
        "round-robin ns"
    );
    for c in &r.configurations {
        println!(
            "{:>12} {:>6} {:>5} {:>12} {:>11.1} {:>10} {:>10.0} {:>10.0} {:>12.0} {:>15.0}",
            c.extra_rules,
            c.rules,
            c.dfas,
            c.bundle_bytes,
            c.compile_ms,
            c.dense_bytes.div_ceil(1024),
            c.p50_ns,
            c.p99_ns,
            c.per_second,
            c.round_robin_ns
        );
    }
    println!(
        "p50: the median intent, each judged {} times in a row (warm); round-robin: every intent once in turn",
        r.repeat
    );
    println!(
        "dense KiB: dense copies of the bundle's sparse DFAs the judge ran (0: the tables as stored; the guard and \
         every in-process judge make them, as many as {} KiB hold)",
        vigil_guard::dense::DEFAULT_ARENA_LEN / 1024
    );
}
