//! `vigil-guard`: the guard's judgement — intent decoding, the policy bundle
//! format and evaluation. `no_std`, allocation-free and deterministic; the
//! guard VM, the in-process judge and the FPGA judge all execute it.
//!
//! - [`intent`]: the CBOR intent an agent proposes (docs/intent.md);
//! - [`bundle`]: the compiled policy (docs/bundle.md), validated on load;
//! - [`dfa`]: execution of the bundle's flat DFA tables; [`dense`]: dense
//!   copies of its sparse ones, in memory a judge lends;
//! - [`shell`], [`path`], [`url`]: tripwire parsers (no file system, no
//!   network); [`glob`]: what a shell pattern could match;
//!   [`interpreter`]: which programs run code given on their command line;
//! - [`eval`]: the fixed evaluation order and the verdict;
//! - [`verdict_codec`]: the verdict's fixed binary form (channel, chain);
//! - `compile` (feature `compile`, std): TOML policy → bundle.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

pub mod bundle;
#[cfg(feature = "compile")]
pub mod compile;
pub mod dense;
pub mod dfa;
pub mod eval;
pub mod glob;
pub mod intent;
pub mod interpreter;
pub mod path;
pub mod shell;
pub mod url;
pub mod verdict_codec;

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

    /// Decodes the bundle encoding (0, 1, 2).
    pub fn from_u8(value: u8) -> Option<Decision> {
        match value {
            0 => Some(Decision::Allow),
            1 => Some(Decision::Escalate),
            2 => Some(Decision::Deny),
            _ => None,
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
