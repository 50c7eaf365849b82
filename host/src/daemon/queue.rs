//! The daemon's bounded queue of judging jobs: request handlers push, guard
//! workers take everything waiting (up to a batch) at once, so concurrent
//! requests coalesce into batches under load. Full means "busy": the
//! handler answers 503, never drops silently.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use tokio::sync::oneshot;

use crate::journal::body::Peer;
use crate::judge::VerdictReport;

/// One intent as received: its CBOR (empty when the JSON could not be
/// converted), the id the caller sees, and why it could not be converted.
pub struct Encoded {
    /// CBOR intent, or empty.
    pub cbor: Vec<u8>,
    /// The caller's intent id.
    pub id: u64,
    /// Why the JSON could not become CBOR.
    pub detail: Option<String>,
}

/// A verdict as recorded: its report and its journal frame.
pub struct Answered {
    /// The verdict.
    pub report: VerdictReport,
    /// Its verdict frame.
    pub seq: u64,
    /// ESCALATE verdicts: what a person deciding reads of the intent.
    pub review: Option<Review>,
}

/// What a person deciding an approval reads of a CBOR intent.
#[derive(Clone, Debug, Default)]
pub struct Review {
    /// Agent, tool and the command, path or URL, cut to 200 characters,
    /// control characters escaped (one line for a terminal).
    pub summary: String,
    /// The whole intent as JSON (every argument in full): what is
    /// actually being approved.
    pub intent: serde_json::Value,
}

/// Escapes what a terminal would act on instead of showing (control
/// characters, including newlines and ESC) as `\u{…}` / `\n`.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The [`Review`] of a CBOR intent.
pub fn review(cbor: &[u8]) -> Review {
    let Ok(intent) = vigil_guard::intent::decode(cbor) else {
        return Review { summary: "(malformed intent)".into(), intent: serde_json::Value::Null };
    };
    let gist = ["command", "path", "url"].iter().find_map(|k| intent.args.get(k)).unwrap_or("");
    let mut summary = printable(&format!("{} {}: {gist}", intent.agent, intent.tool));
    if let Some((cut, _)) = summary.char_indices().nth(200) {
        summary.truncate(cut);
        summary.push('…');
    }
    let args: serde_json::Map<String, serde_json::Value> =
        intent.args.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
    let intent = serde_json::json!({
        "id": intent.id,
        "agent": intent.agent,
        "session": intent.session,
        "tool": intent.tool,
        "args": args,
        "cwd": intent.cwd,
        "justification": intent.justification,
    });
    Review { summary, intent }
}

/// What a job's submitter gets back: every verdict, durable in the journal,
/// or why none can be shown.
pub type Reply = Result<Vec<Answered>, String>;

/// Fresh evidence from a guard: what `GET /v1/evidence` gets back.
pub struct Evidence {
    /// The tagged COSE_Sign evidence, verified by the daemon.
    pub evidence: Vec<u8>,
    /// The journal's boot frame of the guard that gave it.
    pub boot_seq: u64,
}

/// Work for a guard worker.
pub enum Work {
    /// Judge intents.
    Judge(Job),
    /// Give fresh evidence for a nonce.
    Evidence {
        /// The caller's nonce.
        nonce: Vec<u8>,
        /// Where the evidence goes.
        reply: oneshot::Sender<Result<Evidence, String>>,
    },
}

/// What an evidence request weighs in the queue: a fresh ML-DSA-65 and
/// Ed25519 signature in the guard costs about what judging a batch of 256
/// intents does (≈ 2 ms on the development machine), so a flood of them
/// meets the same backpressure as a flood of intents.
pub const EVIDENCE_WEIGHT: usize = 256;

impl Work {
    /// How much of the queue's capacity it takes.
    fn weight(&self) -> usize {
        match self {
            Work::Judge(job) => job.intents.len(),
            Work::Evidence { .. } => EVIDENCE_WEIGHT,
        }
    }
}

/// One request's intents.
pub struct Job {
    /// The intents, judged in order.
    pub intents: Vec<Encoded>,
    /// Who sent them.
    pub peer: Option<Peer>,
    /// Where the verdicts go.
    pub reply: oneshot::Sender<Reply>,
    /// Test-hooks builds: make the guard fail (this test-hooks request
    /// kind) before judging the job's intents.
    #[cfg(feature = "test-hooks")]
    pub fault: Option<u32>,
}

struct State {
    jobs: VecDeque<Work>,
    intents: usize,
    closed: bool,
}

/// A bounded multi-producer, multi-consumer job queue.
pub struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
}

/// What [`Queue::take_within`] got.
pub enum Taken {
    /// Work to do.
    Work(Vec<Work>),
    /// Nothing came in time.
    Idle,
    /// The queue is closed and empty.
    Closed,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// As many intents wait as the queue holds.
    Busy,
    /// The daemon is shutting down.
    Closed,
}

impl Queue {
    /// A queue holding at most `capacity` waiting intents.
    pub fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(State { jobs: VecDeque::new(), intents: 0, closed: false }),
            ready: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A worker that panicked while holding the lock left consistent
        // state (every update is a single push or pop).
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `job`, or gives it back with why not. A job larger than the
    /// whole queue is taken when the queue is empty.
    pub fn push(&self, job: Work) -> Result<(), (Work, Refused)> {
        let mut state = self.lock();
        if state.closed {
            return Err((job, Refused::Closed));
        }
        let n = job.weight();
        if state.intents > 0 && state.intents + n > self.capacity {
            return Err((job, Refused::Busy));
        }
        state.intents += n;
        state.jobs.push_back(job);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// Waits for work; takes the first item and, if it is a judging job,
    /// every following judging job while the total stays within `max`
    /// intents. `None` once the queue is closed and empty.
    pub fn take(&self, max: usize) -> Option<Vec<Work>> {
        loop {
            match self.take_within(max, std::time::Duration::from_secs(3600)) {
                Taken::Work(work) => return Some(work),
                Taken::Closed => return None,
                Taken::Idle => {}
            }
        }
    }

    /// [`Queue::take`], waiting at most `wait`.
    pub fn take_within(&self, max: usize, wait: std::time::Duration) -> Taken {
        let deadline = std::time::Instant::now() + wait;
        let mut state = self.lock();
        while state.jobs.is_empty() {
            if state.closed {
                return Taken::Closed;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Taken::Idle;
            }
            state = self.ready.wait_timeout(state, deadline - now).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
        let mut taken = Vec::new();
        let mut count = 0;
        while let Some(work) = state.jobs.front() {
            let n = work.weight();
            let judge = matches!(work, Work::Judge(_));
            if !taken.is_empty() && (!judge || count + n > max) {
                break;
            }
            count += n;
            taken.extend(state.jobs.pop_front());
            if !judge {
                break;
            }
        }
        state.intents -= count;
        Taken::Work(taken)
    }

    /// Intents waiting.
    pub fn depth(&self) -> usize {
        self.lock().intents
    }

    /// Refuses new jobs; workers finish what is queued, then stop.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: usize) -> (Work, oneshot::Receiver<Reply>) {
        let (reply, rx) = oneshot::channel();
        let intents = (0..n).map(|i| Encoded { cbor: vec![], id: i as u64, detail: None }).collect();
        let job = Job {
            intents,
            peer: None,
            reply,
            #[cfg(feature = "test-hooks")]
            fault: None,
        };
        (Work::Judge(job), rx)
    }

    fn evidence() -> Work {
        Work::Evidence { nonce: vec![0; 16], reply: oneshot::channel().0 }
    }

    fn sizes(taken: &[Work]) -> Vec<usize> {
        taken.iter().map(Work::weight).collect()
    }

    #[test]
    fn jobs_coalesce_up_to_a_batch_and_a_full_queue_is_busy() {
        let q = Queue::new(10);
        for n in [3, 4, 2] {
            assert!(q.push(job(n).0).is_ok());
        }
        assert_eq!(q.push(job(2).0).err().map(|(_, why)| why), Some(Refused::Busy));
        assert_eq!(q.depth(), 9);
        let taken = q.take(7).unwrap();
        assert_eq!(sizes(&taken), [3, 4]);
        assert_eq!(q.depth(), 2);
        // Evidence requests weigh what they cost a guard.
        let q = Queue::new(2 * EVIDENCE_WEIGHT + 10);
        assert!(q.push(evidence()).is_ok() && q.push(evidence()).is_ok());
        assert_eq!(q.push(evidence()).err().map(|(_, why)| why), Some(Refused::Busy));
        // An evidence request goes alone.
        let q = Queue::new(1000);
        for work in [job(2).0, evidence(), job(1).0] {
            assert!(q.push(work).is_ok());
        }
        assert_eq!(sizes(&q.take(16).unwrap()), [2]);
        assert!(matches!(q.take(16).unwrap()[..], [Work::Evidence { .. }]));
        assert_eq!(sizes(&q.take(16).unwrap()), [1]);
        // A job larger than a batch is still taken (alone).
        let q = Queue::new(100);
        q.push(job(50).0).ok().unwrap();
        assert_eq!(q.take(16).unwrap().len(), 1);
        // Closed: nothing new; what is queued is still handed out.
        q.push(job(1).0).ok().unwrap();
        q.close();
        assert_eq!(q.push(job(1).0).err().map(|(_, why)| why), Some(Refused::Closed));
        assert_eq!(q.take(16).unwrap().len(), 1);
        assert!(q.take(16).is_none());
        assert!(matches!(Queue::new(4).take_within(4, std::time::Duration::from_millis(5)), Taken::Idle));
    }
}
