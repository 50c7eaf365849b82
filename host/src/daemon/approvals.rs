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
    /// Agent, tool and the gist of the call (command, path or URL; cut,
    /// control characters escaped).
    pub summary: String,
    /// The whole intent, every argument in full: what an approval allows.
    pub intent: serde_json::Value,
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

#[derive(Default)]
struct State {
    pending: HashMap<String, Pending>,
    stopped: bool,
}

/// Who may allow an ESCALATE verdict. Anyone on the daemon's socket may
/// refuse one (a refusal only makes things safer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Approvers {
    /// Any uid but the one whose request is waiting: an agent cannot
    /// approve its own intents (the default).
    #[default]
    NotTheRequester,
    /// Exactly these uids (`vigil serve --approver UID`), the requester's
    /// own included when listed.
    Only(Vec<u32>),
}

/// The approvals waiting now.
pub struct Approvals {
    state: Mutex<State>,
    approvers: Approvers,
    max_waiting: usize,
}

impl Default for Approvals {
    fn default() -> Self {
        Approvals::new(Approvers::default(), MAX_WAITING)
    }
}

/// The most approvals waiting at once by default; more are DENY at once
/// (outcome `too_many_waiting`).
pub const MAX_WAITING: usize = 1024;

/// Why a decision was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecideError {
    /// No approval with that id waits (unknown, decided, or timed out).
    #[error("no pending approval {0} (unknown, already decided or timed out): `vigil approvals` lists them")]
    NotPending(String),
    /// The decider may not allow it.
    #[error("{0}")]
    NotAnApprover(String),
}

impl Approvals {
    /// No approval waiting; `approvers` may allow, at most `max_waiting`
    /// wait at once.
    pub fn new(approvers: Approvers, max_waiting: usize) -> Approvals {
        Approvals { state: Mutex::new(State::default()), approvers, max_waiting }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a pending approval (its id is made here, random); the
    /// receiver gets how it was settled. After [`Approvals::stop_all`], or
    /// with too many waiting, it is settled (DENY) at once.
    pub fn open(&self, mut info: PendingInfo) -> (String, oneshot::Receiver<Settled>) {
        let (settle, settled) = oneshot::channel();
        let id = crate::random::bytes::<8>().map(hex::encode).unwrap_or_else(|_| format!("{:016x}", info.verdict_seq));
        info.id = id.clone();
        let mut state = self.lock();
        if state.stopped {
            let _ = settle.send(Settled { outcome: outcome::STOPPED, by: None });
        } else if state.pending.len() >= self.max_waiting {
            let _ = settle.send(Settled { outcome: outcome::TOO_MANY_WAITING, by: None });
        } else {
            state.pending.insert(id.clone(), Pending { info, settle });
        }
        (id, settled)
    }

    /// A person's decision on approval `id`. Settled under the lock, so a
    /// decision and a timeout never both count.
    pub fn decide(&self, id: &str, approve: bool, by: Option<Peer>) -> Result<PendingInfo, DecideError> {
        let mut state = self.lock();
        let pending = state.pending.get(id).ok_or_else(|| DecideError::NotPending(id.to_string()))?;
        if approve {
            let uid = by.map(|b| b.uid);
            let allowed = match (&self.approvers, uid) {
                (_, None) => false,
                (Approvers::Only(uids), Some(uid)) => uids.contains(&uid),
                (Approvers::NotTheRequester, Some(uid)) => pending.info.peer_uid != Some(uid),
            };
            if !allowed {
                let who = uid.map_or("an unknown uid".to_string(), |u| format!("uid {u}"));
                let why = match &self.approvers {
                    Approvers::Only(_) => format!("{who} is not an approver of this daemon (vigil serve --approver)"),
                    Approvers::NotTheRequester => format!(
                        "{who} submitted this intent, so it cannot allow it (an agent must not approve itself); another user must, or start `vigil serve --approver UID` to name who may"
                    ),
                };
                return Err(DecideError::NotAnApprover(why));
            }
        }
        let pending = state.pending.remove(id).ok_or_else(|| DecideError::NotPending(id.to_string()))?;
        let outcome = if approve { outcome::APPROVED } else { outcome::DENIED };
        pending.settle.send(Settled { outcome, by }).map_err(|_| DecideError::NotPending(id.to_string()))?;
        Ok(pending.info)
    }

    /// Drops approval `id` (it timed out, or its waiter went away).
    pub fn expire(&self, id: &str) {
        self.lock().pending.remove(id);
    }

    /// The approvals waiting, oldest first.
    pub fn list(&self) -> Vec<PendingInfo> {
        let mut list: Vec<PendingInfo> = self.lock().pending.values().map(|p| p.info.clone()).collect();
        list.sort_by_key(|p| (p.since_ms, p.verdict_seq));
        list
    }

    /// The daemon is stopping: every pending approval is settled as
    /// stopped (DENY), and so is every later one.
    pub fn stop_all(&self) {
        let mut state = self.lock();
        state.stopped = true;
        for (_, p) in state.pending.drain() {
            let _ = p.settle.send(Settled { outcome: outcome::STOPPED, by: None });
        }
    }
}

/// Approvals a waiter opened: whatever happens to the waiter (an error, a
/// cancelled task), they stop waiting when this is dropped.
pub struct Opened<'a> {
    approvals: &'a Approvals,
    /// The ids opened.
    pub ids: Vec<String>,
}

impl<'a> Opened<'a> {
    /// None opened yet.
    pub fn new(approvals: &'a Approvals) -> Opened<'a> {
        Opened { approvals, ids: Vec::new() }
    }
}

impl Drop for Opened<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            self.approvals.expire(id);
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
            intent: serde_json::Value::Null,
            why: "w".into(),
            peer_uid: Some(7),
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
        let by = Some(Peer { uid: 8, pid: 8 });
        assert!(a.decide(&id, true, by).is_ok());
        assert_eq!(rx.try_recv().unwrap(), Settled { outcome: outcome::APPROVED, by });
        assert_eq!(a.decide(&id, false, by).err(), Some(DecideError::NotPending(id.clone())));
        a.stop_all();
        assert_eq!(rx2.try_recv().unwrap().outcome, outcome::STOPPED);
        let (_, mut rx3) = a.open(info(3));
        assert_eq!(rx3.try_recv().unwrap().outcome, outcome::STOPPED);
        assert!(a.list().is_empty());
    }

    #[test]
    fn an_agent_cannot_approve_itself_unless_named_and_anyone_may_refuse() {
        let a = Approvals::default();
        let (id, mut rx) = a.open(info(1));
        let me = Some(Peer { uid: 7, pid: 99 });
        assert!(matches!(a.decide(&id, true, me), Err(DecideError::NotAnApprover(_))));
        assert!(matches!(a.decide(&id, true, None), Err(DecideError::NotAnApprover(_))));
        assert!(rx.try_recv().is_err(), "still waiting");
        assert!(a.decide(&id, false, me).is_ok(), "refusing is always allowed");
        assert_eq!(rx.try_recv().unwrap().outcome, outcome::DENIED);
        let named = Approvals::new(Approvers::Only(vec![7]), 4);
        let (id, mut rx) = named.open(info(2));
        assert!(matches!(named.decide(&id, true, Some(Peer { uid: 8, pid: 1 })), Err(DecideError::NotAnApprover(_))));
        assert!(named.decide(&id, true, me).is_ok());
        assert_eq!(rx.try_recv().unwrap().outcome, outcome::APPROVED);
    }

    #[test]
    fn too_many_waiting_are_denied_at_once_and_dropped_waiters_leave_nothing() {
        let a = Approvals::new(Approvers::default(), 2);
        let mut opened = Opened::new(&a);
        let mut receivers = Vec::new();
        for seq in 0..3 {
            let (id, rx) = a.open(info(seq));
            opened.ids.push(id);
            receivers.push(rx);
        }
        assert_eq!(receivers[2].try_recv().unwrap().outcome, outcome::TOO_MANY_WAITING);
        assert_eq!(a.list().len(), 2);
        drop(opened);
        assert!(a.list().is_empty());
        // A decision whose waiter is gone is refused, not reported as taken.
        let (id, rx) = a.open(info(9));
        drop(rx);
        assert_eq!(
            a.decide(&id, false, Some(Peer { uid: 1, pid: 1 })).err(),
            Some(DecideError::NotPending(id.clone()))
        );
    }
}
