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

/// What a job's submitter gets back: every verdict, durable in the journal,
/// or why none can be shown.
pub type Reply = Result<Vec<VerdictReport>, String>;

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
    jobs: VecDeque<Job>,
    intents: usize,
    closed: bool,
}

/// A bounded multi-producer, multi-consumer job queue.
pub struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
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
    pub fn push(&self, job: Job) -> Result<(), (Job, Refused)> {
        let mut state = self.lock();
        if state.closed {
            return Err((job, Refused::Closed));
        }
        let n = job.intents.len();
        if state.intents > 0 && state.intents + n > self.capacity {
            return Err((job, Refused::Busy));
        }
        state.intents += n;
        state.jobs.push_back(job);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// Waits for work; takes the first job and every following one while
    /// the total stays within `max` intents. `None` once the queue is
    /// closed and empty.
    pub fn take(&self, max: usize) -> Option<Vec<Job>> {
        let mut state = self.lock();
        while state.jobs.is_empty() {
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let mut taken = Vec::new();
        let mut count = 0;
        while let Some(job) = state.jobs.front() {
            let n = job.intents.len();
            if !taken.is_empty() && count + n > max {
                break;
            }
            count += n;
            taken.extend(state.jobs.pop_front());
        }
        state.intents -= count;
        Some(taken)
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

    fn job(n: usize) -> (Job, oneshot::Receiver<Reply>) {
        let (reply, rx) = oneshot::channel();
        let intents = (0..n).map(|i| Encoded { cbor: vec![], id: i as u64, detail: None }).collect();
        (
            Job {
                intents,
                peer: None,
                reply,
                #[cfg(feature = "test-hooks")]
                fault: None,
            },
            rx,
        )
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
        assert_eq!(taken.iter().map(|j| j.intents.len()).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(q.depth(), 2);
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
    }
}
