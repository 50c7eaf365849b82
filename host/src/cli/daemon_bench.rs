//! `vigil bench --daemon`: the daemon measured as its clients see it. A
//! real `vigil serve` (this executable, a scratch key directory, 2 guards)
//! driven over its socket: single durable intents (one client), sustained
//! load from concurrent clients (single intents and batches), the
//! `vigil hook claude-code` process against it, and its resident memory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use vigil::daemon::client;
use vigil::stats::{micros, quantile};

/// What to run.
#[derive(Debug, Clone)]
pub struct DaemonBenchOptions {
    /// Concurrent clients for the sustained figures.
    pub clients: usize,
    /// Seconds per sustained run.
    pub seconds: f64,
}

/// One load run, summarised.
#[derive(Debug, Serialize)]
pub struct LoadFigure {
    /// Clients.
    pub clients: usize,
    /// Intents per request.
    pub batch: usize,
    /// Verdicts per second, durable.
    pub verdicts_per_s: f64,
    /// Request latency p50, microseconds.
    pub p50_us: f64,
    /// Request latency p99, microseconds.
    pub p99_us: f64,
    /// Requests refused (503).
    pub refused: u64,
}

/// The daemon figures.
#[derive(Debug, Serialize)]
pub struct DaemonBenchReport {
    /// Guards in the pool.
    pub guards: usize,
    /// One client, one intent per request.
    pub single: LoadFigure,
    /// Concurrent clients, one intent per request.
    pub concurrent_single: LoadFigure,
    /// Concurrent clients, 64 intents per request.
    pub concurrent_batch: LoadFigure,
    /// `vigil hook claude-code` as a whole process, daemon running: p50, p99 ms.
    pub hook_p50_ms: f64,
    /// See [`DaemonBenchReport::hook_p50_ms`].
    pub hook_p99_ms: f64,
    /// Daemon resident set after the load, MiB.
    pub rss_mib: f64,
}

struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn summarise(r: client::LoadReport) -> LoadFigure {
    let mut lat: Vec<Duration> = r.latencies_ns.iter().map(|&n| Duration::from_nanos(n)).collect();
    LoadFigure {
        clients: r.clients,
        batch: r.batch,
        verdicts_per_s: r.verdicts as f64 / r.seconds.max(1e-9),
        p50_us: micros(quantile(&mut lat, 0.5)),
        p99_us: micros(quantile(&mut lat, 0.99)),
        refused: r.refused,
    }
}

fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading the daemon's /proc status")?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc status")?;
    Ok(kb / 1024.0)
}

/// Runs the daemon figures.
pub fn run(options: &DaemonBenchOptions) -> Result<DaemonBenchReport> {
    let exe = std::env::current_exe().context("finding the vigil executable")?;
    let dir = std::env::temp_dir().join(format!("vigil-daemon-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let init = Command::new(&exe).args(["init", "--dir"]).arg(&dir).output()?;
    if !init.status.success() {
        bail!("vigil init failed: {}", String::from_utf8_lossy(&init.stderr));
    }
    let guards = 2;
    let child = Command::new(&exe)
        .args(["serve", "--guards", "2", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting vigil serve")?;
    let daemon = Daemon { child, dir: dir.clone() };
    let socket = dir.join("vigil.sock");
    wait_ready(&socket, guards)?;

    let intents = crate::cli::corpus::source_corpus_values();
    if intents.is_empty() {
        bail!("the daemon bench needs the source tree's tests/corpus");
    }
    let singles: Vec<Vec<u8>> = intents.iter().map(|v| v.to_string().into_bytes()).collect();
    let batches: Vec<Vec<u8>> = intents
        .chunks(64)
        .filter(|c| c.len() == 64)
        .map(|c| serde_json::json!({ "intents": c }).to_string().into_bytes())
        .collect();
    let seconds = Duration::from_secs_f64(options.seconds);
    let load = |clients, batch, bodies: &[Vec<u8>]| -> Result<LoadFigure> {
        Ok(summarise(client::load(&socket, clients, batch, bodies, seconds)?))
    };
    // Warm up every guard and the journal.
    load(options.clients, 1, &singles)?;
    let single = load(1, 1, &singles)?;
    let concurrent_single = load(options.clients, 1, &singles)?;
    let concurrent_batch = load(options.clients, 64, &batches)?;
    let (hook_p50_ms, hook_p99_ms) = hook_process(&exe, &dir)?;
    let rss_mib = rss_mib(daemon.child.id())?;
    drop(daemon);
    Ok(DaemonBenchReport {
        guards: guards as usize,
        single,
        concurrent_single,
        concurrent_batch,
        hook_p50_ms,
        hook_p99_ms,
        rss_mib,
    })
}

fn wait_ready(socket: &Path, guards: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(a) = client::call(socket, "GET", "/v1/health", b"", Duration::from_secs(5))
            && a.json()["guards_ready"] == guards
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("the daemon did not get its guards ready within 30 s")
}

/// `vigil hook claude-code` as Claude Code runs it: a whole process per
/// call, a Bash payload on stdin.
fn hook_process(exe: &Path, dir: &Path) -> Result<(f64, f64)> {
    use std::io::Write;
    let payload = serde_json::json!({"session_id": "bench", "cwd": "/home/dev/p", "hook_event_name": "PreToolUse",
        "tool_name": "Bash", "tool_input": {"command": "cargo test --workspace"}})
    .to_string();
    let mut times = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let mut child = Command::new(exe)
            .args(["hook", "claude-code", "--dir"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        child.stdin.take().context("hook stdin")?.write_all(payload.as_bytes())?;
        let out = child.wait_with_output()?;
        times.push(started.elapsed());
        if !String::from_utf8_lossy(&out.stdout).contains("\"allow\"") {
            bail!("the hook did not allow `cargo test`: {}", String::from_utf8_lossy(&out.stdout));
        }
    }
    Ok((micros(quantile(&mut times, 0.5)) / 1e3, micros(quantile(&mut times, 0.99)) / 1e3))
}

/// Prints the figures.
pub fn print(r: &DaemonBenchReport) {
    let line = |name: &str, f: &LoadFigure| {
        println!(
            "{name:<18} {:>9.0} verdicts/s  p50 {:>8.1} µs  p99 {:>8.1} µs per request  ({} client(s), {} intent(s) per request, durable{})",
            f.verdicts_per_s,
            f.p50_us,
            f.p99_us,
            f.clients,
            f.batch,
            if f.refused > 0 { format!(", {} refused", f.refused) } else { String::new() }
        );
    };
    println!("daemon             vigil serve with {} guards, over its Unix socket", r.guards);
    line("daemon single", &r.single);
    line("daemon concurrent", &r.concurrent_single);
    line("daemon batched", &r.concurrent_batch);
    println!(
        "hook process       p50 {:>8.2} ms  p99 {:>8.2} ms  (vigil hook claude-code, daemon running)",
        r.hook_p50_ms, r.hook_p99_ms
    );
    println!("daemon RSS         {:.1} MiB with {} guards", r.rss_mib, r.guards);
}
