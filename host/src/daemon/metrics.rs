//! The daemon's counters, rendered as Prometheus text (`GET /metrics`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters shared by the API and the guard workers.
#[derive(Default)]
pub struct Metrics {
    /// HTTP requests answered, by outcome.
    pub requests_ok: AtomicU64,
    /// Requests refused as malformed (4xx).
    pub requests_bad: AtomicU64,
    /// Requests refused because the queue was full (503).
    pub requests_busy: AtomicU64,
    /// Requests whose verdicts could not be made durable (500).
    pub requests_failed: AtomicU64,
    /// Verdicts returned, by decision.
    pub allow: AtomicU64,
    /// See [`Metrics::allow`].
    pub escalate: AtomicU64,
    /// See [`Metrics::allow`].
    pub deny: AtomicU64,
    /// Of the DENY verdicts: the judge failed (fail-closed).
    pub judge_failed: AtomicU64,
    /// Batches sent to guards.
    pub batches: AtomicU64,
    /// Guards booted and attested.
    pub guard_starts: AtomicU64,
    /// Guards that failed (faulted, hung, a bad checkpoint) or could not start.
    pub guard_failures: AtomicU64,
    /// Guards running now.
    pub guards_ready: AtomicU64,
    /// Running guards attested again (on the interval) and verified.
    pub reattestations: AtomicU64,
}

impl Metrics {
    /// Counts returned verdicts by decision.
    pub fn count_verdicts(&self, reports: &[crate::judge::VerdictReport]) {
        for r in reports {
            match r.decision {
                "ALLOW" => &self.allow,
                "ESCALATE" => &self.escalate,
                _ => &self.deny,
            }
            .fetch_add(1, Relaxed);
            if r.reason == "judge_failed" {
                self.judge_failed.fetch_add(1, Relaxed);
            }
        }
    }

    /// The Prometheus text exposition, with the queue depth now.
    pub fn render(&self, queue_depth: usize, guards: usize) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let get = |c: &AtomicU64| c.load(Relaxed);
        metric(
            "vigil_requests_total",
            "counter",
            "API requests by outcome.",
            &[
                ("{outcome=\"ok\"}", get(&self.requests_ok)),
                ("{outcome=\"bad_request\"}", get(&self.requests_bad)),
                ("{outcome=\"busy\"}", get(&self.requests_busy)),
                ("{outcome=\"failed\"}", get(&self.requests_failed)),
            ],
        );
        metric(
            "vigil_verdicts_total",
            "counter",
            "Verdicts returned (each durable in the journal first).",
            &[
                ("{decision=\"ALLOW\"}", get(&self.allow)),
                ("{decision=\"ESCALATE\"}", get(&self.escalate)),
                ("{decision=\"DENY\"}", get(&self.deny)),
            ],
        );
        metric(
            "vigil_judge_failed_total",
            "counter",
            "DENY verdicts because the judge failed.",
            &[("", get(&self.judge_failed))],
        );
        metric("vigil_batches_total", "counter", "Batches sent to guards.", &[("", get(&self.batches))]);
        metric("vigil_guard_starts_total", "counter", "Guards booted and attested.", &[("", get(&self.guard_starts))]);
        metric(
            "vigil_guard_failures_total",
            "counter",
            "Guards that failed or could not start.",
            &[("", get(&self.guard_failures))],
        );
        metric("vigil_guards_ready", "gauge", "Guards running now.", &[("", get(&self.guards_ready))]);
        metric(
            "vigil_reattestations_total",
            "counter",
            "Running guards attested again and verified.",
            &[("", get(&self.reattestations))],
        );
        metric("vigil_guards_configured", "gauge", "Size of the guard pool.", &[("", guards as u64)]);
        metric("vigil_queue_intents", "gauge", "Intents waiting for a guard.", &[("", queue_depth as u64)]);
        out
    }
}
