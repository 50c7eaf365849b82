//! The policy bundle: what `vigil policy compile` produces and every judge
//! executes (byte-level spec: docs/bundle.md).
//!
//! [`Bundle::load`] validates everything once — header, section table,
//! string references, rule fields, every DFA table entry — so evaluation
//! can then read without failing. A corrupted bundle is an error, never
//! undefined behaviour or a panic.

use crate::Decision;

/// `b"VGPOLICY"`.
pub const MAGIC: [u8; 8] = *b"VGPOLICY";
/// Format version (2: the header carries the bundle's SHA-384; 3: the
/// posture and shell-semantics settings, home roots, public files, the
/// `code` field class; 4: anchored DFAs, 16-bit tables, dead states;
/// 7: the header's integrity digest is a SHA-256; 8: combs end after
/// their last used slot).
pub const VERSION: u16 = 8;
/// Header size.
pub const HEADER_LEN: usize = 80;
/// Where the header's SHA-256 of the bundle lies.
pub const DIGEST_RANGE: core::ops::Range<usize> = 32..64;
/// Length of the digest.
pub const DIGEST_LEN: usize = 32;
/// Reserved header bytes after the digest (zero).
const RESERVED_RANGE: core::ops::Range<usize> = DIGEST_RANGE.end..HEADER_LEN;
/// Section table entry size.
pub const SECTION_ENTRY_LEN: usize = 16;
/// Most sections in a bundle.
pub const MAX_SECTIONS: usize = 128;
/// Most rules in a bundle.
pub const MAX_RULES: usize = 4096;
/// Words of a rule bitset.
pub const RULE_WORDS: usize = MAX_RULES / 64;
/// Most DFAs in a bundle (every section but the five others).
pub const MAX_DFAS: usize = MAX_SECTIONS - 5;
/// Words of a prefilter's match sets: bit `i` names DFA section `i`.
pub const PREFILTER_WORDS: usize = MAX_DFAS.div_ceil(64);
/// Largest bundle accepted.
pub const MAX_BUNDLE_LEN: usize = 64 * 1024 * 1024;
/// The size a bundle should stay under for its tables to sit in on-chip
/// memory: the block RAM of an ECP5-85K (≈ 468 KB) less room for the rest
/// of an FPGA judge. A larger bundle is valid: the in-process judge runs
/// it, and so does the guard up to its 8 MiB policy region (docs/bundle.md).
pub const ON_CHIP_BUDGET: usize = 384 * 1024;

/// Section kinds.
pub mod section {
    /// UTF-8 string pool.
    pub const STRINGS: u32 = 1;
    /// Fixed-layout settings.
    pub const SETTINGS: u32 = 2;
    /// String lists.
    pub const LISTS: u32 = 3;
    /// Path prefix rules.
    pub const PATH_RULES: u32 = 4;
    /// The rule table.
    pub const RULES: u32 = 5;
    /// One flat DFA (may repeat).
    pub const DFA: u32 = 6;
}

/// String list kinds in the LISTS section.
pub mod list {
    /// Tools that are allowed (entries ending in `*` match a prefix).
    pub const TOOLS_ALLOW: u32 = 1;
    /// Tools that are denied.
    pub const TOOLS_DENY: u32 = 2;
    /// Tools that need a human.
    pub const TOOLS_ESCALATE: u32 = 3;
    /// Workspace roots (`$CWD` = the intent's cwd).
    pub const WORKSPACE_ROOTS: u32 = 4;
    /// Allowed HTTP domains (and their subdomains).
    pub const ALLOWED_DOMAINS: u32 = 5;
    /// IP literal hosts that are allowed anyway.
    pub const ALLOWED_IPS: u32 = 6;
    /// Banned program names.
    pub const BANNED_PROGRAMS: u32 = 7;
    /// Home directory spellings: an absolute directory (`/root`) or a
    /// directory pattern ending in `/*` (`/home/*`): a path below one is
    /// judged as below `~`.
    pub const HOME_ROOTS: u32 = 8;
    /// File-name patterns (`*.pub`) that path rules never treat as secret.
    pub const PUBLIC_FILES: u32 = 9;
    /// Number of list kinds (highest + 1).
    pub const COUNT: usize = 10;
}

/// Field classes the DFA rules match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FieldClass {
    /// Shell commands: the raw command and each canonical sub-command.
    Command = 0,
    /// Normalised paths (file tools, path-like shell arguments).
    Path = 1,
    /// URLs (http tool, URLs in shell arguments).
    Url = 2,
    /// Free text: the justification.
    Text = 3,
    /// Every argument value, raw.
    Arg = 4,
    /// Code given to an interpreter on its command line (`python -c`,
    /// `perl -e`, an `awk` program, a here-document fed to `node`, …).
    Code = 5,
}

impl FieldClass {
    /// Number of classes.
    pub const COUNT: usize = 6;

    /// Every class, in encoding order.
    pub const ALL: [FieldClass; FieldClass::COUNT] =
        [FieldClass::Command, FieldClass::Path, FieldClass::Url, FieldClass::Text, FieldClass::Arg, FieldClass::Code];

    /// Decodes the bundle encoding.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0 => FieldClass::Command,
            1 => FieldClass::Path,
            2 => FieldClass::Url,
            3 => FieldClass::Text,
            4 => FieldClass::Arg,
            5 => FieldClass::Code,
            _ => return None,
        })
    }

    /// Name as written in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldClass::Command => "command",
            FieldClass::Path => "path",
            FieldClass::Url => "url",
            FieldClass::Text => "text",
            FieldClass::Arg => "arg",
            FieldClass::Code => "code",
        }
    }
}

/// SETTINGS section layout (offsets), all decisions are u8 (0 allow,
/// 1 escalate, 2 deny).
pub mod settings {
    /// strref: policy name.
    pub const NAME: usize = 0;
    /// Decision when no stage decides.
    pub const DEFAULT: usize = 8;
    /// Tool in no list.
    pub const UNKNOWN_TOOL: usize = 9;
    /// File access outside the workspace roots.
    pub const OUTSIDE_WORKSPACE: usize = 10;
    /// u8 bool: URLs must use https.
    pub const HTTPS_REQUIRED: usize = 11;
    /// Plain http when https is required.
    pub const PLAIN_HTTP: usize = 12;
    /// IP literal hosts not in the allowed list.
    pub const IP_LITERAL: usize = 13;
    /// GET/HEAD to a domain not allowed.
    pub const UNLISTED_DOMAIN: usize = 14;
    /// Other methods to a domain not allowed.
    pub const UNLISTED_DOMAIN_UPLOAD: usize = 15;
    /// URLs with userinfo.
    pub const USERINFO: usize = 16;
    /// Shell chains, pipes, substitutions.
    pub const SHELL_METACHARACTERS: usize = 17;
    /// Non-ASCII bytes in a program name.
    pub const NON_ASCII_PROGRAM: usize = 18;
    /// Banned programs.
    pub const BANNED_PROGRAM: usize = 19;
    /// A shell command that cannot be parsed.
    pub const SHELL_UNPARSEABLE: usize = 20;
    /// Justification shorter than the minimum.
    pub const SHORT_JUSTIFICATION: usize = 21;
    /// u16: minimum justification length in bytes (0 = off).
    pub const MIN_JUSTIFICATION: usize = 22;
    /// i32: score at which the scorer escalates (0 = off).
    pub const SCORE_ESCALATE: usize = 24;
    /// i32: score at which the scorer denies (0 = off).
    pub const SCORE_DENY: usize = 28;
    /// Decision for a shell command no `allow` command rule knows (the
    /// posture: known good is ALLOW, anything else this).
    pub const UNKNOWN_COMMAND: usize = 32;
    /// Decision for code the judge cannot see that a shell or interpreter
    /// runs: decoded or downloaded data, process substitution.
    pub const OPAQUE_CODE: usize = 33;
    /// Decision when the judge cannot compute what runs: a script file, an
    /// unknown variable or a pattern as the program, a shell function,
    /// positional parameters, code read from another program's output.
    pub const UNRESOLVED: usize = 34;
    /// Decision for `http://` and IP literals to a loopback host
    /// (`localhost`, `127.0.0.0/8`, `[::1]`), instead of `plain_http` and
    /// `ip_literals`.
    pub const LOOPBACK_HTTP: usize = 35;
    /// Section length.
    pub const LEN: usize = 40;
}

/// One RULES entry: id strref (8), reason strref (8), decision u8,
/// severity u8, class u8, access u8 (path rules: [`access`] bits, 0 for
/// every other class), weight i32.
pub const RULE_ENTRY_LEN: usize = 24;
/// One PATH_RULES entry: prefix strref (8), decision u8, access u8,
/// reserved u16, rule index u32 (into RULES, for reporting).
pub const PATH_RULE_ENTRY_LEN: usize = 16;
/// DFA section header length (before the byte-class map).
pub const DFA_HEADER_LEN: usize = 40;
/// DFA flag: every match starts at the first input byte (the patterns are
/// anchored at the start): once in the dead state, nothing more can match.
pub const DFA_ANCHORED: u8 = 1;
/// DFA flag: this DFA is one of its field class's prefilters: it matches
/// the required literals of the class's gated DFAs (with
/// [`DFA_ANCHORED`]: the leading strings of its anchored gated DFAs, at the
/// input's start), and its match sets name DFAs (bit `i` = DFA section
/// `i`), not rules.
pub const DFA_PREFILTER: u8 = 2;
/// DFA flag: this DFA runs on an input only when its class's prefilter of
/// the same kind (anchored or not) named it for that input (one of its
/// patterns' required literals occurs; anchored: the input starts with one
/// of its patterns' leading strings).
pub const DFA_GATED: u8 = 4;
/// DFA flag: the transitions are stored sparsely: per state a default
/// (a next state, or one of its template rows) and, comb-packed, the columns
/// that differ from it.
pub const DFA_SPARSE: u8 = 8;
/// DFA header value for "no dead state".
pub const NO_DEAD_STATE: u32 = u32::MAX;

/// `RULES` decision byte for score-only rules.
pub const SCORE_ONLY: u8 = 3;

/// Path rule access kinds.
pub mod access {
    /// Reads only.
    pub const READ: u8 = 1;
    /// Writes only.
    pub const WRITE: u8 = 2;
    /// Both.
    pub const ANY: u8 = 3;
}

/// Why a bundle was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleError {
    /// Shorter than its header or table, or `total_len` disagrees.
    Truncated,
    /// Not a bundle.
    BadMagic,
    /// A version this guard does not know.
    UnsupportedVersion(u16),
    /// Too large.
    TooLarge,
    /// A section lies outside the bundle or is misaligned.
    BadSection,
    /// A required section is missing or one appears twice.
    MissingOrDuplicateSection,
    /// A string reference is out of range or not UTF-8.
    BadString,
    /// A settings or rule field has an invalid value.
    BadField,
    /// A DFA table is inconsistent.
    BadDfa,
    /// Too many rules or DFAs.
    TooMany,
    /// The SHA-256 in the header is not the bundle's: altered or damaged.
    Digest,
}

impl BundleError {
    /// Human-readable description.
    pub fn as_str(self) -> &'static str {
        match self {
            BundleError::Truncated => "bundle is truncated",
            BundleError::BadMagic => "not a policy bundle (bad magic)",
            BundleError::UnsupportedVersion(_) => "unsupported bundle version",
            BundleError::TooLarge => "bundle is too large",
            BundleError::BadSection => "a bundle section is out of bounds or misaligned",
            BundleError::MissingOrDuplicateSection => "a bundle section is missing or duplicated",
            BundleError::BadString => "a bundle string reference is invalid",
            BundleError::BadField => "a bundle field has an invalid value",
            BundleError::BadDfa => "a bundle DFA table is inconsistent",
            BundleError::TooMany => "the bundle has too many rules or DFAs",
            BundleError::Digest => {
                "the bundle's SHA-256 does not match its header: the bundle was altered or damaged; compile it again"
            }
        }
    }
}

/// The bundle's integrity digest: SHA-256 of the whole bundle with the
/// header's digest field read as zeros. `bytes` must be at least
/// [`HEADER_LEN`] long.
///
/// SHA-256, not the SHA-384 of the bundle's measurement and signature:
/// the digest only detects damage (anyone can recompute it), and a guard
/// computes it on every boot, where SHA-256 runs on the CPU's SHA
/// extensions (measured here: 3 times the speed of SHA-384 on the host,
/// 5 times in the guard).
pub fn digest(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(&bytes[..DIGEST_RANGE.start]);
    h.update([0u8; DIGEST_LEN]);
    h.update(&bytes[DIGEST_RANGE.end..]);
    h.finalize().into()
}

/// [`digest`] in bounded steps, for a guard that answers requests between
/// them: feed the same bytes to [`Digester::advance`] until it says done,
/// then [`Bundle::load_digested`] with [`Digester::finish`].
#[derive(Clone)]
pub struct Digester {
    hasher: sha2::Sha256,
    /// Bytes of the bundle hashed so far.
    done: usize,
}

impl Default for Digester {
    fn default() -> Self {
        Digester { hasher: sha2::Digest::new(), done: 0 }
    }
}

impl Digester {
    /// A digester at the start of a bundle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hashes up to `step` more bytes of `bytes` (the digest field as
    /// zeros); returns whether all of `bytes` is hashed.
    pub fn advance(&mut self, bytes: &[u8], step: usize) -> bool {
        use sha2::Digest;
        let end = self.done.saturating_add(step.max(1)).min(bytes.len());
        while self.done < end {
            let (from, to) = (self.done, end);
            if from < DIGEST_RANGE.start {
                let to = to.min(DIGEST_RANGE.start);
                self.hasher.update(&bytes[from..to]);
                self.done = to;
            } else if from < DIGEST_RANGE.end {
                let to = to.min(DIGEST_RANGE.end);
                self.hasher.update(&[0u8; DIGEST_LEN][..to - from]);
                self.done = to;
            } else {
                self.hasher.update(&bytes[from..to]);
                self.done = to;
            }
        }
        self.done >= bytes.len()
    }

    /// The digest of what was fed.
    pub fn finish(self) -> [u8; DIGEST_LEN] {
        use sha2::Digest;
        self.hasher.finalize().into()
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}
fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}
pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// A validated flat DFA (see [`crate::dfa`]).
#[derive(Clone, Copy, Debug)]
pub struct Dfa<'a> {
    /// Field class it matches.
    pub class: FieldClass,
    /// Its patterns are anchored at the start of the input.
    pub anchored: bool,
    /// It is its class's prefilter (its match sets name DFAs).
    pub prefilter: bool,
    /// It runs only when its class's prefilter names it.
    pub gated: bool,
    /// Bytes per table entry (state ids, defaults, bases, comb slots,
    /// match indices): 2 or 4.
    pub width: u8,
    /// Number of states.
    pub states: u32,
    /// Columns per state: byte classes + 1 (the last is end-of-input).
    pub alphabet: u32,
    /// Start state.
    pub start: u32,
    /// The dead state (no match from it, every transition back to it), if
    /// the DFA has one: a scan stops there.
    pub dead: Option<u32>,
    /// States `0..match_states` are the matching ones.
    pub match_states: u32,
    /// u64 words per match set.
    pub rule_words: u32,
    /// Number of match sets.
    pub match_sets: u32,
    /// Byte → class.
    pub byte_classes: &'a [u8],
    /// Dense: `states × alphabet` next-state ids, `width` bytes each.
    /// Sparse: empty.
    pub transitions: &'a [u8],
    /// Sparse: the transitions are stored sparsely.
    pub sparse: bool,
    /// A dense copy ([`crate::dense`], never a bundle's own table) whose
    /// entries hold `next state × alphabet`: the offset of the next
    /// state's row, so that a step needs no multiplication.
    pub premultiplied: bool,
    /// Sparse: per state its default: a next state, or `states + k` =
    /// "template row `k`'s entry for the column".
    pub defaults: &'a [u8],
    /// Sparse: per state where its row starts in the comb.
    pub bases: &'a [u8],
    /// Sparse: number of template rows.
    pub template_rows: u32,
    /// Sparse: `template_rows × alphabet` next states.
    pub templates: &'a [u8],
    /// Sparse: per comb slot the state owning it (`states` = nobody's).
    pub checks: &'a [u8],
    /// Sparse: per comb slot its next state.
    pub nexts: &'a [u8],
    /// `match_states` entries: the match set of each matching state.
    pub match_index: &'a [u8],
    /// `match_sets × rule_words` u64 rule bitsets.
    pub sets: &'a [u8],
}

impl Dfa<'_> {
    /// The next state from `state` on column `class` (either encoding).
    pub fn next(&self, state: usize, class: usize) -> u32 {
        fn next<const W: usize>(dfa: &Dfa<'_>, state: usize, class: usize) -> u32 {
            let Some(tables) = Tables::<W>::of(dfa) else { return 0 };
            if dfa.premultiplied {
                let row = state.saturating_mul(tables.alphabet);
                return (Tables::<W>::at(tables.transitions, row.saturating_add(class)) / tables.alphabet.max(1))
                    as u32;
            }
            let next = if dfa.sparse { tables.step::<true>(state, class) } else { tables.step::<false>(state, class) };
            next as u32
        }
        if self.width == 2 { next::<2>(self, state, class) } else { next::<4>(self, state, class) }
    }

    /// Entry `index` of a `width`-wide table (0 past its end; validated
    /// tables are never read past their end).
    pub fn entry(&self, table: &[u8], index: usize) -> u32 {
        if self.width == 2 { entry::<2>(table, index) as u32 } else { entry::<4>(table, index) as u32 }
    }
}

/// Entry `index` of a table of `W`-byte little-endian entries (0 past its
/// end).
fn entry<const W: usize>(table: &[u8], index: usize) -> usize {
    Tables::<W>::at(table.as_chunks().0, index)
}

/// The tables of one DFA as arrays of `W`-byte entries (a validated DFA's
/// tables are whole entries; each read is one bounds check).
pub(crate) struct Tables<'a, const W: usize> {
    pub(crate) byte_classes: &'a [u8; 256],
    pub(crate) transitions: &'a [[u8; W]],
    defaults: &'a [[u8; W]],
    bases: &'a [[u8; W]],
    templates: &'a [[u8; W]],
    checks: &'a [[u8; W]],
    nexts: &'a [[u8; W]],
    match_index: &'a [[u8; W]],
    sets: &'a [[u8; 8]],
    /// Columns per state.
    pub(crate) alphabet: usize,
    /// States (ids from here up in a default name template rows).
    states: usize,
    /// u64 words per match set.
    rule_words: usize,
}

/// Entry value: `W` bytes, little-endian.
#[inline(always)]
fn value<const W: usize>(entry: &[u8; W]) -> usize {
    if W == 2 {
        usize::from(u16::from_le_bytes([entry[0], entry[1]]))
    } else {
        u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]) as usize
    }
}

impl<'a, const W: usize> Tables<'a, W> {
    /// `None` when the byte-class table is not 256 bytes (a validated DFA's
    /// always is).
    pub(crate) fn of(dfa: &Dfa<'a>) -> Option<Self> {
        // Tables read at the same index are cut to the same length (a
        // validated DFA's already are): one bounds check then covers both.
        let (defaults, bases) = (dfa.defaults.as_chunks().0, dfa.bases.as_chunks().0);
        let per_state = defaults.len().min(bases.len());
        let (checks, nexts) = (dfa.checks.as_chunks().0, dfa.nexts.as_chunks().0);
        let comb = checks.len().min(nexts.len());
        Some(Tables {
            byte_classes: dfa.byte_classes.try_into().ok()?,
            transitions: dfa.transitions.as_chunks().0,
            defaults: &defaults[..per_state],
            bases: &bases[..per_state],
            templates: dfa.templates.as_chunks().0,
            checks: &checks[..comb],
            nexts: &nexts[..comb],
            match_index: dfa.match_index.as_chunks().0,
            sets: dfa.sets.as_chunks().0,
            alphabet: dfa.alphabet as usize,
            states: dfa.states as usize,
            rule_words: dfa.rule_words as usize,
        })
    }

    /// Entry `index` of `table` (0 past its end).
    #[inline(always)]
    pub(crate) fn at(table: &[[u8; W]], index: usize) -> usize {
        table.get(index).map_or(0, value::<W>)
    }

    /// The next state from `state` on column `column`: one lookup in a
    /// dense table; in a sparse one the state's comb slot for the column if
    /// the state owns it (a slot past the comb's end is nobody's), else its
    /// default (a state, or its template row's entry for the column).
    #[inline(always)]
    pub(crate) fn step<const SPARSE: bool>(&self, state: usize, column: usize) -> usize {
        if SPARSE {
            let Some((base, default)) = self.bases.get(state).zip(self.defaults.get(state)) else { return 0 };
            let slot = value::<W>(base) + column;
            if let Some((owner, next)) = self.checks.get(slot).zip(self.nexts.get(slot))
                && value::<W>(owner) == state
            {
                return value::<W>(next);
            }
            let default = value::<W>(default);
            match default.checked_sub(self.states) {
                Some(k) => Self::at(self.templates, k * self.alphabet + column),
                None => default,
            }
        } else {
            Self::at(self.transitions, state * self.alphabet + column)
        }
    }

    /// Writes the premultiplied dense form of these (sparse) tables into
    /// `rows`, row after row: entry `state × alphabet + column` is
    /// `step::<true>(state, column) × alphabet`. Each row starts as the
    /// state's default (a state, or its template row), then takes the comb
    /// slots the state owns; entries past `rows`' end are not written. The
    /// caller makes sure every value fits `W` bytes (`states × alphabet`
    /// does).
    pub(crate) fn densify(&self, rows: &mut [[u8; W]]) {
        let alphabet = self.alphabet;
        let encode = |value: usize| -> [u8; W] {
            let mut entry = [0u8; W];
            entry.copy_from_slice(&(value.saturating_mul(alphabet) as u32).to_le_bytes()[..W]);
            entry
        };
        for (state, row) in rows.chunks_mut(alphabet.max(1)).enumerate() {
            let Some((&default, _)) = self.defaults.get(state).zip(self.bases.get(state)) else {
                // No default or base: the sparse step gives 0.
                row.fill([0; W]);
                continue;
            };
            let default = value::<W>(&default);
            match default.checked_sub(self.states) {
                Some(k) => {
                    for (column, entry) in row.iter_mut().enumerate() {
                        *entry = encode(Self::at(self.templates, k * self.alphabet + column));
                    }
                }
                None => row.fill(encode(default)),
            }
        }
        // A slot is read for its owner's column `slot - base`: a slot
        // outside its owner's row is never read.
        for (slot, (owner, next)) in self.checks.iter().zip(self.nexts).enumerate() {
            let owner = value::<W>(owner);
            let Some(base) = self.bases.get(owner) else { continue };
            let Some(column) = slot.checked_sub(value::<W>(base)).filter(|&c| c < self.alphabet) else { continue };
            if let Some(entry) = rows.get_mut(owner * self.alphabet + column) {
                *entry = encode(value::<W>(next));
            }
        }
    }

    /// ORs the match set of matching state `state` into `words`.
    #[inline(always)]
    pub(crate) fn or_set(&self, state: usize, words: &mut [u64]) {
        let base = Self::at(self.match_index, state) * self.rule_words;
        if let Some(set) = self.sets.get(base..base + self.rule_words) {
            for (word, bits) in words.iter_mut().zip(set) {
                *word |= u64::from_le_bytes(*bits);
            }
        }
    }
}

/// A rule as the evaluator sees it.
#[derive(Clone, Copy, Debug)]
pub struct Rule<'a> {
    /// Rule id.
    pub id: &'a str,
    /// Why it exists.
    pub reason: &'a str,
    /// Its decision, or `None` for a score-only rule.
    pub decision: Option<Decision>,
    /// Severity 0..=4 (info, low, medium, high, critical).
    pub severity: u8,
    /// Field class.
    pub class: FieldClass,
    /// Path rules: the accesses it applies to ([`access`] bits); 0 for
    /// other classes.
    pub access: u8,
    /// Scorer weight.
    pub weight: i32,
}

/// What a rule does when it matches: [`Rule`] without its texts (what the
/// evaluator reads, without slicing the string pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleEffect {
    /// Its decision, or `None` for a score-only rule.
    pub decision: Option<Decision>,
    /// Field class.
    pub class: FieldClass,
    /// Path rules: the accesses it applies to ([`access`] bits).
    pub access: u8,
    /// Scorer weight.
    pub weight: i32,
}

/// A path rule.
#[derive(Clone, Copy, Debug)]
pub struct PathRule<'a> {
    /// Normalised path prefix (`~/.ssh`, `/etc/shadow`).
    pub prefix: &'a str,
    /// Decision.
    pub decision: Decision,
    /// [`access`] kind.
    pub access: u8,
    /// Index of the rule that reports it.
    pub rule: u32,
}

/// The key path rules are sorted and searched by: the prefix without
/// trailing slashes (which `path::is_within` ignores).
pub fn path_key(prefix: &str) -> &str {
    prefix.trim_end_matches('/')
}

/// A loaded, validated bundle borrowing the bundle bytes.
#[derive(Clone, Copy, Debug)]
pub struct Bundle<'a> {
    bytes: &'a [u8],
    /// The string pool, validated as UTF-8 once at load: a string is a
    /// slice of it (a reference that splits a character is refused).
    strings: &'a str,
    settings: &'a [u8],
    lists: [(usize, usize); list::COUNT],
    lists_bytes: &'a [u8],
    path_rules: &'a [u8],
    rules: &'a [u8],
    rule_count: usize,
    dfas: [Option<Dfa<'a>>; MAX_DFAS],
    dfa_count: usize,
    /// Per field class, the index of its prefilter DFAs: `[floating,
    /// anchored]`.
    prefilters: [[Option<u8>; 2]; FieldClass::COUNT],
    /// Per field class, the section indices `first..end` its DFAs lie in
    /// (a class's DFAs need not be contiguous; those of other classes in
    /// the range are skipped).
    class_ranges: [(usize, usize); FieldClass::COUNT],
    /// Per field class, its DFAs that always run (neither prefilters nor
    /// gated), as bits of section indices.
    ungated: [[u64; PREFILTER_WORDS]; FieldClass::COUNT],
}

impl<'a> Bundle<'a> {
    /// Validates `bytes` completely and returns a view of them.
    pub fn load(bytes: &'a [u8]) -> Result<Self, BundleError> {
        Self::load_checked(bytes, None)
    }

    /// [`Bundle::load`] with the digest of `bytes` computed beforehand by a
    /// [`Digester`] over these same bytes (it is compared with the header's
    /// as `load` compares its own).
    pub fn load_digested(bytes: &'a [u8], digest: [u8; DIGEST_LEN]) -> Result<Self, BundleError> {
        Self::load_checked(bytes, Some(digest))
    }

    fn load_checked(bytes: &'a [u8], digested: Option<[u8; DIGEST_LEN]>) -> Result<Self, BundleError> {
        use BundleError as E;
        if bytes.len() > MAX_BUNDLE_LEN {
            return Err(E::TooLarge);
        }
        if bytes.len() < HEADER_LEN {
            return Err(E::Truncated);
        }
        if bytes[..8] != MAGIC {
            return Err(E::BadMagic);
        }
        let version = u16_at(bytes, 8).ok_or(E::Truncated)?;
        if version != VERSION {
            return Err(E::UnsupportedVersion(version));
        }
        // Integrity first: nothing else is read from a bundle whose digest
        // does not match.
        if digested.unwrap_or_else(|| digest(bytes)) != bytes[DIGEST_RANGE] {
            return Err(E::Digest);
        }
        if u16_at(bytes, 10) != Some(0)
            || bytes[20..DIGEST_RANGE.start].iter().chain(&bytes[RESERVED_RANGE]).any(|&b| b != 0)
        {
            return Err(E::BadField);
        }
        if u32_at(bytes, 12).map(|n| n as usize) != Some(bytes.len()) {
            return Err(E::Truncated);
        }
        let count = u32_at(bytes, 16).ok_or(E::Truncated)? as usize;
        if count > MAX_SECTIONS {
            return Err(E::TooMany);
        }
        let table_end = HEADER_LEN + count * SECTION_ENTRY_LEN;
        if table_end > bytes.len() {
            return Err(E::Truncated);
        }
        let mut found: [Option<&[u8]>; 6] = [None; 6];
        let mut dfa_sections: [&[u8]; MAX_DFAS] = [&[]; MAX_DFAS];
        let mut dfa_count = 0;
        let mut previous_end = table_end;
        for i in 0..count {
            let entry = HEADER_LEN + i * SECTION_ENTRY_LEN;
            let kind = u32_at(bytes, entry).ok_or(E::Truncated)?;
            let offset = u32_at(bytes, entry + 4).ok_or(E::Truncated)? as usize;
            let len = u32_at(bytes, entry + 8).ok_or(E::Truncated)? as usize;
            if u32_at(bytes, entry + 12) != Some(0) {
                return Err(E::BadField);
            }
            // Sections are 8-aligned, in order, and do not overlap.
            let end = offset.checked_add(len).ok_or(E::BadSection)?;
            if !offset.is_multiple_of(8) || offset < previous_end || end > bytes.len() {
                return Err(E::BadSection);
            }
            previous_end = end;
            let body = &bytes[offset..end];
            match kind {
                section::DFA => {
                    if dfa_count == MAX_DFAS {
                        return Err(E::TooMany);
                    }
                    dfa_sections[dfa_count] = body;
                    dfa_count += 1;
                }
                section::STRINGS..=section::RULES => {
                    let slot = &mut found[kind as usize];
                    if slot.is_some() {
                        return Err(E::MissingOrDuplicateSection);
                    }
                    *slot = Some(body);
                }
                _ => return Err(E::BadSection),
            }
        }
        let need = |k: u32| found[k as usize].ok_or(E::MissingOrDuplicateSection);
        let strings = need(section::STRINGS)?;
        let Ok(strings) = core::str::from_utf8(strings) else {
            return Err(E::BadString);
        };
        let settings = need(section::SETTINGS)?;
        let lists_bytes = need(section::LISTS)?;
        let path_rules = need(section::PATH_RULES)?;
        let rules = need(section::RULES)?;

        let mut bundle = Bundle {
            bytes,
            strings,
            settings,
            lists: [(0, 0); list::COUNT],
            lists_bytes,
            path_rules,
            rules,
            rule_count: 0,
            dfas: [None; MAX_DFAS],
            dfa_count: 0,
            prefilters: [[None; 2]; FieldClass::COUNT],
            class_ranges: [(0, 0); FieldClass::COUNT],
            ungated: [[0; PREFILTER_WORDS]; FieldClass::COUNT],
        };
        bundle.check_settings()?;
        bundle.check_lists()?;
        bundle.check_rules()?;
        bundle.check_path_rules()?;
        for body in &dfa_sections[..dfa_count] {
            let dfa = check_dfa(body, bundle.rule_count)?;
            let i = bundle.dfa_count;
            let range = &mut bundle.class_ranges[dfa.class as usize];
            *range = if range.0 == range.1 { (i, i + 1) } else { (range.0, i + 1) };
            if !dfa.prefilter && !dfa.gated {
                bundle.ungated[dfa.class as usize][i / 64] |= 1 << (i % 64);
            }
            bundle.dfas[i] = Some(dfa);
            bundle.dfa_count += 1;
        }
        bundle.check_prefilters()?;
        Ok(bundle)
    }

    /// At most one floating and one anchored prefilter per class; each
    /// names only gated DFAs of its class, anchored as it is, that exist;
    /// every gated DFA has its class's prefilter of its kind.
    fn check_prefilters(&mut self) -> Result<(), BundleError> {
        use BundleError::BadDfa;
        for (i, dfa) in self.dfas[..self.dfa_count].iter().flatten().enumerate() {
            if !dfa.prefilter {
                continue;
            }
            let slot = &mut self.prefilters[dfa.class as usize][usize::from(dfa.anchored)];
            if slot.is_some() {
                return Err(BadDfa);
            }
            *slot = Some(i as u8);
        }
        for dfa in self.dfas[..self.dfa_count].iter().flatten() {
            if dfa.gated && self.prefilters[dfa.class as usize][usize::from(dfa.anchored)].is_none() {
                return Err(BadDfa);
            }
            if !dfa.prefilter {
                continue;
            }
            for set in dfa.sets.chunks_exact(PREFILTER_WORDS * 8) {
                for (w, word) in set.chunks_exact(8).enumerate() {
                    let mut bits = u64_at(word, 0).ok_or(BadDfa)?;
                    while bits != 0 {
                        let named = w * 64 + bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        let ok = self.dfas[..self.dfa_count]
                            .get(named)
                            .and_then(|d| d.as_ref())
                            .is_some_and(|d| d.gated && d.class == dfa.class && d.anchored == dfa.anchored);
                        if !ok {
                            return Err(BadDfa);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The whole bundle.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// A string reference (offset u32, len u32) at `at` in `section`.
    fn strref(&self, section: &[u8], at: usize) -> Option<&'a str> {
        let offset = u32_at(section, at)? as usize;
        let len = u32_at(section, at + 4)? as usize;
        self.strings.get(offset..offset.checked_add(len)?)
    }

    fn check_settings(&self) -> Result<(), BundleError> {
        let s = self.settings;
        if s.len() != settings::LEN {
            return Err(BundleError::BadField);
        }
        self.strref(s, settings::NAME).ok_or(BundleError::BadString)?;
        for at in [
            settings::DEFAULT,
            settings::UNKNOWN_TOOL,
            settings::OUTSIDE_WORKSPACE,
            settings::PLAIN_HTTP,
            settings::IP_LITERAL,
            settings::UNLISTED_DOMAIN,
            settings::UNLISTED_DOMAIN_UPLOAD,
            settings::USERINFO,
            settings::SHELL_METACHARACTERS,
            settings::NON_ASCII_PROGRAM,
            settings::BANNED_PROGRAM,
            settings::SHELL_UNPARSEABLE,
            settings::SHORT_JUSTIFICATION,
            settings::UNKNOWN_COMMAND,
            settings::OPAQUE_CODE,
            settings::UNRESOLVED,
            settings::LOOPBACK_HTTP,
        ] {
            if Decision::from_u8(s[at]).is_none() {
                return Err(BundleError::BadField);
            }
        }
        if s[settings::HTTPS_REQUIRED] > 1 || s[36..].iter().any(|&b| b != 0) {
            return Err(BundleError::BadField);
        }
        Ok(())
    }

    fn check_lists(&mut self) -> Result<(), BundleError> {
        // count u32, then per list: kind u32, entries u32, entries × strref.
        let b = self.lists_bytes;
        let count = u32_at(b, 0).ok_or(BundleError::Truncated)? as usize;
        let mut at = 4;
        let mut seen = [false; list::COUNT];
        for _ in 0..count {
            let kind = u32_at(b, at).ok_or(BundleError::Truncated)? as usize;
            let entries = u32_at(b, at + 4).ok_or(BundleError::Truncated)? as usize;
            if kind == 0 || kind >= list::COUNT || core::mem::replace(&mut seen[kind], true) {
                return Err(BundleError::BadField);
            }
            let start = at + 8;
            let end = entries.checked_mul(8).and_then(|n| n.checked_add(start)).ok_or(BundleError::Truncated)?;
            if end > b.len() {
                return Err(BundleError::Truncated);
            }
            for i in 0..entries {
                self.strref(b, start + i * 8).ok_or(BundleError::BadString)?;
            }
            self.lists[kind] = (start, entries);
            at = end;
        }
        if at != b.len() {
            return Err(BundleError::BadField);
        }
        Ok(())
    }

    fn check_rules(&mut self) -> Result<(), BundleError> {
        let b = self.rules;
        let count = u32_at(b, 0).ok_or(BundleError::Truncated)? as usize;
        if count > MAX_RULES {
            return Err(BundleError::TooMany);
        }
        if b.len() != 4 + count * RULE_ENTRY_LEN {
            return Err(BundleError::Truncated);
        }
        for i in 0..count {
            let at = 4 + i * RULE_ENTRY_LEN;
            self.strref(b, at).ok_or(BundleError::BadString)?;
            self.strref(b, at + 8).ok_or(BundleError::BadString)?;
            let (decision, severity, class, rule_access) = (b[at + 16], b[at + 17], b[at + 18], b[at + 19]);
            let access_ok = match FieldClass::from_u8(class) {
                Some(FieldClass::Path) => (1..=access::ANY).contains(&rule_access),
                _ => rule_access == 0,
            };
            if (decision != SCORE_ONLY && Decision::from_u8(decision).is_none())
                || severity > 4
                || FieldClass::from_u8(class).is_none()
                || !access_ok
            {
                return Err(BundleError::BadField);
            }
        }
        self.rule_count = count;
        Ok(())
    }

    fn check_path_rules(&self) -> Result<(), BundleError> {
        let b = self.path_rules;
        let count = u32_at(b, 0).ok_or(BundleError::Truncated)? as usize;
        if b.len()
            != count.checked_mul(PATH_RULE_ENTRY_LEN).and_then(|n| n.checked_add(4)).ok_or(BundleError::TooMany)?
        {
            return Err(BundleError::Truncated);
        }
        let mut previous: Option<(&str, usize)> = None;
        for i in 0..count {
            let at = 4 + i * PATH_RULE_ENTRY_LEN;
            let prefix = self.strref(b, at).ok_or(BundleError::BadString)?;
            let rule = u32_at(b, at + 12).ok_or(BundleError::Truncated)? as usize;
            // Sorted by search key, then rule: what the judge's binary
            // search needs.
            let key = (path_key(prefix), rule);
            if previous.is_some_and(|p| p > key) {
                return Err(BundleError::BadField);
            }
            previous = Some(key);
            if Decision::from_u8(b[at + 8]).is_none()
                || !(access::READ..=access::ANY).contains(&b[at + 9])
                || u16_at(b, at + 10) != Some(0)
                || rule >= self.rule_count
            {
                return Err(BundleError::BadField);
            }
        }
        Ok(())
    }

    /// Policy name.
    pub fn name(&self) -> &'a str {
        self.strref(self.settings, settings::NAME).unwrap_or("")
    }

    /// A decision setting (an offset of [`settings`]); validated on load.
    pub fn decision(&self, at: usize) -> Decision {
        self.settings.get(at).and_then(|&b| Decision::from_u8(b)).unwrap_or(Decision::Deny)
    }

    /// Whether URLs must use https.
    pub fn https_required(&self) -> bool {
        self.settings.get(settings::HTTPS_REQUIRED) != Some(&0)
    }

    /// Minimum justification length (0 = off).
    pub fn min_justification(&self) -> usize {
        u16_at(self.settings, settings::MIN_JUSTIFICATION).unwrap_or(0) as usize
    }

    /// Scorer thresholds (escalate, deny); 0 = off.
    pub fn score_thresholds(&self) -> (i32, i32) {
        (
            i32_at(self.settings, settings::SCORE_ESCALATE).unwrap_or(0),
            i32_at(self.settings, settings::SCORE_DENY).unwrap_or(0),
        )
    }

    /// The entries of a string list ([`list`] kind).
    pub fn list(&self, kind: u32) -> impl Iterator<Item = &'a str> + '_ {
        let (start, entries) = self.lists.get(kind as usize).copied().unwrap_or((0, 0));
        (0..entries).filter_map(move |i| self.strref(self.lists_bytes, start + i * 8))
    }

    /// Number of rules.
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// Rule `index`.
    pub fn rule(&self, index: usize) -> Option<Rule<'a>> {
        let RuleEffect { decision, class, access, weight } = self.rule_effect(index)?;
        let at = 4 + index * RULE_ENTRY_LEN;
        let b = self.rules;
        Some(Rule {
            id: self.strref(b, at)?,
            reason: self.strref(b, at + 8)?,
            decision,
            severity: *b.get(at + 17)?,
            class,
            access,
            weight,
        })
    }

    /// What rule `index` does (its fields as in [`Bundle::rule`]).
    pub fn rule_effect(&self, index: usize) -> Option<RuleEffect> {
        if index >= self.rule_count {
            return None;
        }
        let at = 4 + index * RULE_ENTRY_LEN;
        let b = self.rules;
        Some(RuleEffect {
            decision: Decision::from_u8(*b.get(at + 16)?),
            class: FieldClass::from_u8(*b.get(at + 18)?)?,
            access: *b.get(at + 19)?,
            weight: i32_at(b, at + 20)?,
        })
    }

    /// The path rules.
    pub fn path_rules(&self) -> impl Iterator<Item = PathRule<'a>> + '_ {
        (0..self.path_rule_count()).filter_map(move |i| self.path_rule(i))
    }

    /// Number of path rules.
    pub fn path_rule_count(&self) -> usize {
        u32_at(self.path_rules, 0).unwrap_or(0) as usize
    }

    /// Path rule `i` (in section order: sorted by [`path_key`], then rule).
    pub fn path_rule(&self, i: usize) -> Option<PathRule<'a>> {
        let at = 4 + i * PATH_RULE_ENTRY_LEN;
        Some(PathRule {
            prefix: self.strref(self.path_rules, at)?,
            decision: Decision::from_u8(*self.path_rules.get(at + 8)?)?,
            access: *self.path_rules.get(at + 9)?,
            rule: u32_at(self.path_rules, at + 12)?,
        })
    }

    /// The [`path_key`] of path rule `i`, read alone (what a search
    /// compares).
    fn path_rule_key(&self, i: usize) -> Option<&'a str> {
        self.strref(self.path_rules, 4 + i * PATH_RULE_ENTRY_LEN).map(path_key)
    }

    /// Calls `each` with every path rule `normalized` (no wildcards) is within
    /// — and, for a `tree`, every rule within it (`rm -r ~` reaches `~/.ssh`),
    /// unless it is `/`. Path rules are sorted by key: the rules it is within
    /// are those keyed by one of its ancestors (or itself), found by binary
    /// search, and those within it one range.
    pub fn path_rules_hit(&self, normalized: &str, tree: bool, each: &mut dyn FnMut(PathRule<'a>)) {
        let count = self.path_rule_count();
        // Keys that are empty (prefix `/`, or empty) sort first.
        for rule in (0..count).map_while(|i| self.path_rule(i).filter(|r| path_key(r.prefix).is_empty())) {
            if crate::path::is_within(normalized, rule.prefix) {
                each(rule);
            }
        }
        // The rules keyed `key`; then whether a longer key starts with it
        // (keys that start with `key` sort right after it: where the next
        // one does not, no longer ancestor of the path is a key).
        let equal_to = |key: &str, each: &mut dyn FnMut(PathRule<'a>)| {
            let first = self.path_rule_partition(|k| k < key);
            for i in first..count {
                let Some(k) = self.path_rule_key(i) else { break };
                if k != key {
                    return k.starts_with(key);
                }
                let Some(rule) = self.path_rule(i) else { break };
                each(rule);
            }
            false
        };
        let deeper = normalized
            .bytes()
            .enumerate()
            .filter(|&(i, byte)| byte == b'/' && i > 0)
            .all(|(i, _)| equal_to(&normalized[..i], each));
        if deeper {
            equal_to(normalized, each);
        }
        let root = path_key(normalized);
        if tree && root.is_empty() && !normalized.is_empty() && normalized != "/" {
            // `//`: within it is every prefix `/` or `~` starts (as
            // `path::is_within` says); not a normalised path, but exact.
            for rule in (0..count).filter_map(|i| self.path_rule(i)) {
                if crate::path::is_within(rule.prefix, normalized) {
                    each(rule);
                }
            }
        } else if tree && !root.is_empty() && normalized != "/" {
            // Keys below `root`: those starting with `root/`, one range
            // from the first key not less than `root/`.
            let below_root = |k: &str| k.bytes().lt(root.bytes().chain(core::iter::once(b'/')));
            let inside = |k: &str| k.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'));
            let rules = (self.path_rule_partition(below_root)..count).map_while(|i| self.path_rule(i));
            for rule in rules.take_while(|r| inside(path_key(r.prefix))) {
                each(rule);
            }
        }
    }

    /// The first path rule whose key `before` says no to (the rule count if
    /// none): `before` must hold for a prefix of the sorted rules only.
    fn path_rule_partition(&self, before: impl Fn(&str) -> bool) -> usize {
        let (mut low, mut high) = (0, self.path_rule_count());
        while low < high {
            let mid = low + (high - low) / 2;
            let less = self.path_rule_key(mid).is_some_and(&before);
            if less {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }

    /// The DFAs, in section order (prefilters included).
    pub fn dfas(&self) -> impl Iterator<Item = &Dfa<'a>> + '_ {
        self.dfas[..self.dfa_count].iter().flatten()
    }

    /// The DFAs of `class` with their section indices, in section order
    /// (prefilters included).
    pub fn class_dfas(&self, class: FieldClass) -> impl Iterator<Item = (usize, &Dfa<'a>)> + '_ {
        let (first, end) = self.class_ranges[class as usize];
        let dfas = self.dfas.get(first..end).unwrap_or(&[]);
        dfas.iter()
            .enumerate()
            .filter_map(move |(k, d)| d.as_ref().filter(|d| d.class == class).map(|d| (first + k, d)))
    }

    /// DFA `index` (a section index), if there is one.
    pub fn dfa(&self, index: usize) -> Option<&Dfa<'a>> {
        self.dfas[..self.dfa_count].get(index)?.as_ref()
    }

    /// How many DFA section indices there are (`dfa(i)` for `i` below it).
    pub fn dfa_count(&self) -> usize {
        self.dfa_count
    }

    /// Has DFA `index` run from `dfa`, a dense copy of its tables made by
    /// [`crate::dense`] (the same transition function: its class, flags,
    /// states and match sets are those of the DFA it replaces).
    pub(crate) fn set_dfa(&mut self, index: usize, dfa: Dfa<'a>) {
        if let Some(slot) = self.dfas[..self.dfa_count].get_mut(index)
            && slot.is_some()
        {
            *slot = Some(dfa);
        }
    }

    /// The DFAs of `class` that run on every input (neither prefilters nor
    /// gated), as bits of their section indices — the bits a prefilter's
    /// match sets hold for the gated ones.
    pub fn ungated_dfas(&self, class: FieldClass) -> [u64; PREFILTER_WORDS] {
        self.ungated[class as usize]
    }

    /// The prefilters of `class` (floating, then anchored): those it has.
    pub fn prefilters(&self, class: FieldClass) -> impl Iterator<Item = &Dfa<'a>> {
        self.prefilters[class as usize].iter().flatten().filter_map(|&i| self.dfas.get(i as usize)?.as_ref())
    }
}

/// Validates one DFA section against the rule count.
fn check_dfa(b: &[u8], rule_count: usize) -> Result<Dfa<'_>, BundleError> {
    use BundleError::BadDfa;
    let class = FieldClass::from_u8(*b.first().ok_or(BadDfa)?).ok_or(BadDfa)?;
    let flags = *b.get(1).ok_or(BadDfa)?;
    let width = *b.get(2).ok_or(BadDfa)?;
    if flags & !(DFA_ANCHORED | DFA_PREFILTER | DFA_GATED | DFA_SPARSE) != 0
        || !matches!(width, 2 | 4)
        || b.get(3) != Some(&0)
    {
        return Err(BadDfa);
    }
    let prefilter = flags & DFA_PREFILTER != 0;
    // A prefilter finds literals anywhere (or, anchored, at the start)
    // and is never gated itself.
    let sparse = flags & DFA_SPARSE != 0;
    if prefilter && flags & !(DFA_SPARSE | DFA_ANCHORED) != DFA_PREFILTER {
        return Err(BadDfa);
    }
    // A prefilter's bits name DFAs (checked against them by the caller).
    let rule_count = if prefilter { MAX_DFAS } else { rule_count };
    let states = u32_at(b, 4).ok_or(BadDfa)?;
    let alphabet = u32_at(b, 8).ok_or(BadDfa)?;
    let start = u32_at(b, 12).ok_or(BadDfa)?;
    let rule_words = u32_at(b, 16).ok_or(BadDfa)?;
    let match_sets = u32_at(b, 20).ok_or(BadDfa)?;
    let dead = u32_at(b, 24).ok_or(BadDfa)?;
    let comb = u32_at(b, 28).ok_or(BadDfa)?;
    let match_states = u32_at(b, 32).ok_or(BadDfa)?;
    let template_rows = u32_at(b, 36).ok_or(BadDfa)?;
    if !sparse && (comb != 0 || template_rows != 0) || sparse && comb == 0 || template_rows > states {
        return Err(BadDfa);
    }
    if states == 0 || start >= states || !(2..=257).contains(&alphabet) || match_states > states {
        return Err(BadDfa);
    }
    // The dead state matches nothing.
    if dead != NO_DEAD_STATE && (dead >= states || dead < match_states) {
        return Err(BadDfa);
    }
    // A 16-bit table holds every value below 2^16: state ids and the
    // marks from `states` up, match set indices, comb bases.
    if width == 2 && (states + template_rows > 0xFFFE || match_sets > 0x1_0000 || comb > 0xFFFF) {
        return Err(BadDfa);
    }
    if rule_words as usize != rule_count.div_ceil(64).max(1) || rule_words as usize > RULE_WORDS {
        return Err(BadDfa);
    }
    let (s, a, w, p, m) = (states as usize, alphabet as usize, width as usize, comb as usize, match_states as usize);
    let k = template_rows as usize;
    let classes_end = DFA_HEADER_LEN + 256;
    // Consecutive tables of `width`-wide entries, by entry count.
    let counts: [usize; 5] = if sparse {
        [s, s, k.checked_mul(a).ok_or(BadDfa)?, p, p]
    } else {
        [s.checked_mul(a).ok_or(BadDfa)?, 0, 0, 0, 0]
    };
    let mut ends = [0usize; 5];
    let mut at = classes_end;
    for (end, count) in ends.iter_mut().zip(counts) {
        at = count.checked_mul(w).and_then(|n| n.checked_add(at)).ok_or(BadDfa)?;
        *end = at;
    }
    let trans_end = at;
    let index_end = trans_end.checked_add(m * w).ok_or(BadDfa)?;
    // The match sets start 8-aligned within the section.
    let sets_start = index_end.next_multiple_of(8);
    let sets_end = (match_sets as usize)
        .checked_mul(rule_words as usize * 8)
        .and_then(|n| n.checked_add(sets_start))
        .ok_or(BadDfa)?;
    if sets_end != b.len() || b.get(index_end..sets_start).is_none_or(|pad| pad.iter().any(|&p| p != 0)) {
        return Err(BadDfa);
    }
    let [defaults_end, bases_end, templates_end, checks_end, _] = ends;
    let dfa = Dfa {
        class,
        anchored: flags & DFA_ANCHORED != 0,
        prefilter,
        gated: flags & DFA_GATED != 0,
        width,
        states,
        alphabet,
        start,
        dead: (dead != NO_DEAD_STATE).then_some(dead),
        match_states,
        rule_words,
        match_sets,
        byte_classes: &b[DFA_HEADER_LEN..classes_end],
        transitions: if sparse { &[] } else { &b[classes_end..trans_end] },
        sparse,
        premultiplied: false,
        defaults: if sparse { &b[classes_end..defaults_end] } else { &[] },
        bases: if sparse { &b[defaults_end..bases_end] } else { &[] },
        template_rows,
        templates: if sparse { &b[bases_end..templates_end] } else { &[] },
        checks: if sparse { &b[templates_end..checks_end] } else { &[] },
        nexts: if sparse { &b[checks_end..trans_end] } else { &[] },
        match_index: &b[trans_end..index_end],
        sets: &b[sets_start..sets_end],
    };
    // Byte classes address real columns (the last column is end-of-input).
    if dfa.byte_classes.iter().any(|&c| u32::from(c) >= alphabet - 1) {
        return Err(BadDfa);
    }
    if sparse {
        // Every row starts inside the comb (slots past its end are
        // nobody's); every default is a state or names a template; every
        // template entry, owner and next state exists (`states` as owner =
        // nobody's slot).
        if (0..s).any(|i| dfa.entry(dfa.bases, i) >= comb)
            || (0..s).any(|i| dfa.entry(dfa.defaults, i) >= states + template_rows)
            || (0..k * a).any(|i| dfa.entry(dfa.templates, i) >= states)
            || (0..p).any(|i| dfa.entry(dfa.checks, i) > states || dfa.entry(dfa.nexts, i) >= states)
        {
            return Err(BadDfa);
        }
    } else if (0..s * a).any(|i| dfa.entry(dfa.transitions, i) >= states) {
        return Err(BadDfa);
    }
    if (0..m).any(|i| dfa.entry(dfa.match_index, i) >= match_sets) {
        return Err(BadDfa);
    }
    // The dead state never leaves: stopping there loses no match.
    if let Some(d) = dfa.dead
        && (0..a).any(|c| dfa.next(d as usize, c) != d)
    {
        return Err(BadDfa);
    }
    // Match sets name existing rules only.
    let tail_bits = rule_count % 64;
    if tail_bits != 0 {
        for set in dfa.sets.chunks_exact(rule_words as usize * 8) {
            let last = u64_at(set, (rule_words as usize - 1) * 8).ok_or(BadDfa)?;
            if last >> tail_bits != 0 {
                return Err(BadDfa);
            }
        }
    } else if rule_count == 0 && dfa.sets.chunks_exact(8).any(|w| w.iter().any(|&b| b != 0)) {
        return Err(BadDfa);
    }
    Ok(dfa)
}
