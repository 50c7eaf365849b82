//! `vigil-guard`: the guard's judgement — intent decoding, the policy bundle
//! format and evaluation. `no_std`, allocation-free and deterministic; the
//! guard VM, the in-process judge and the FPGA judge all execute it.
//!
//! The policy engine itself is the subject of the *policy-engine* issue;
//! today this crate defines only the decision vocabulary every judge shares.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

/// What a judge decided about one intent. `Deny` outranks `Escalate`
/// outranks `Allow`: combining decisions keeps the strictest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Decision {
    /// The tool call may run.
    Allow = 0,
    /// A human must approve the tool call.
    Escalate = 1,
    /// The tool call must not run.
    Deny = 2,
}

impl Decision {
    /// The stricter of two decisions.
    pub fn strictest(self, other: Decision) -> Decision {
        self.max(other)
    }

    /// Upper-case name as printed and journaled.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "ALLOW",
            Decision::Escalate => "ESCALATE",
            Decision::Deny => "DENY",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Decision::*;

    #[test]
    fn deny_outranks_escalate_outranks_allow() {
        assert_eq!(Allow.strictest(Escalate), Escalate);
        assert_eq!(Escalate.strictest(Deny), Deny);
        assert_eq!(Deny.strictest(Allow), Deny);
        assert_eq!(Allow.strictest(Allow), Allow);
    }
}
