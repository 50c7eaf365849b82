//! ESCALATE verdicts waiting for a person: each gets an approval id; the
//! request that carried it waits until someone allows or denies it
//! (`vigil approve ID`, `vigil deny ID`, `POST /v1/approvals/ID`), the
//! timeout passes (DENY) or the daemon stops (DENY). The decision, who
//! made it and when are journaled (docs/journal.md, "approval") before the
//! request is answered.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::oneshot;

use crate::journal::body::{Peer, outcome};

/// What people see of a pending approval.
#[derive(Clone, Debug, Serialize)]
pub struct PendingInfo {
    /// The approval id.
    pub id: String,
    /// The journal frame of the ESCALATE verdict.
    pub verdict_seq: u64,
    /// The intent id.
    pub intent_id: u64,
    /// Agent, tool and the gist of the call (command, path or URL).
    pub summary: String,
    /// The rule or tripwire that escalated, and why.
    pub why: String,
    /// Who submitted the intent.
    pub peer_uid: Option<u32>,
    /// When it started waiting (Unix ms).
    pub since_ms: u64,
}

/// How a pending approval was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settled {
    /// [`outcome`] code.
    pub outcome: u8,
    /// Who decided (a person's decision).
    pub by: Option<Peer>,
}

struct Pending {
    info: PendingInfo,
    settle: oneshot::Sender<Settled>,
}

/// The approvals waiting now.
#[derive(Default)]
pub struct Approvals {
    pending: Mutex<HashMap<String, Pending>>,
    stopped: std::sync::atomic::AtomicBool,
}

/// Why a decision was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecideError {
    /// No approval with that id waits (unknown, decided, or timed out).
    #[error("no pending approval {0} (unknown, already decided or timed out): `vigil approvals` lists them")]
    NotPending(String),
}

impl Approvals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a pending approval (its id is made here, random); the
    /// receiver gets how it was settled. After [`Approvals::stop_all`] it
    /// is settled as stopped at once.
    pub fn open(&self, mut info: PendingInfo) -> (String, oneshot::Receiver<Settled>) {
        let (settle, settled) = oneshot::channel();
        let id = crate::random::bytes::<8>().map(hex::encode).unwrap_or_else(|_| format!("{:016x}", info.verdict_seq));
        info.id = id.clone();
        if self.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = settle.send(Settled { outcome: outcome::STOPPED, by: None });
        } else {
            self.lock().insert(id.clone(), Pending { info, settle });
        }
        (id, settled)
    }

    /// A person's decision on approval `id`.
    pub fn decide(&self, id: &str, approve: bool, by: Option<Peer>) -> Result<PendingInfo, DecideError> {
        let pending = self.lock().remove(id).ok_or_else(|| DecideError::NotPending(id.to_string()))?;
        let outcome = if approve { outcome::APPROVED } else { outcome::DENIED };
        let _ = pending.settle.send(Settled { outcome, by });
        Ok(pending.info)
    }

    /// Drops approval `id` (it timed out; the waiter records that).
    pub fn expire(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The approvals waiting, oldest first.
    pub fn list(&self) -> Vec<PendingInfo> {
        let mut list: Vec<PendingInfo> = self.lock().values().map(|p| p.info.clone()).collect();
        list.sort_by_key(|p| (p.since_ms, p.verdict_seq));
        list
    }

    /// The daemon is stopping: every pending approval is settled as
    /// stopped (DENY), and so is every later one.
    pub fn stop_all(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        for (_, p) in self.lock().drain() {
            let _ = p.settle.send(Settled { outcome: outcome::STOPPED, by: None });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(seq: u64) -> PendingInfo {
        PendingInfo {
            id: String::new(),
            verdict_seq: seq,
            intent_id: seq,
            summary: "s".into(),
            why: "w".into(),
            peer_uid: None,
            since_ms: 0,
        }
    }

    #[test]
    fn a_decision_settles_once_and_stopping_settles_the_rest() {
        let a = Approvals::default();
        let (id, mut rx) = a.open(info(1));
        let (other, mut rx2) = a.open(info(2));
        assert_ne!(id, other);
        assert_eq!(a.list().len(), 2);
        let by = Some(Peer { uid: 7, pid: 8 });
        assert!(a.decide(&id, true, by).is_ok());
        assert_eq!(rx.try_recv().unwrap(), Settled { outcome: outcome::APPROVED, by });
        assert_eq!(a.decide(&id, false, by).err(), Some(DecideError::NotPending(id.clone())));
        a.stop_all();
        assert_eq!(rx2.try_recv().unwrap().outcome, outcome::STOPPED);
        let (_, mut rx3) = a.open(info(3));
        assert_eq!(rx3.try_recv().unwrap().outcome, outcome::STOPPED);
        assert!(a.list().is_empty());
    }
}
