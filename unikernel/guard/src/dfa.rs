//! Execution of the bundle's flat DFA tables: one table lookup per input
//! byte, plus one end-of-input step; every match state ORs its rule bitset
//! into the result. This is the same loop the FPGA judge runs in hardware.

use crate::bundle::{Bundle, Dfa, FieldClass, RULE_WORDS, Tables};

/// A set of rule indices (bit i = rule i matched).
///
/// Only the words up to the highest one ever set are stored: a rule set
/// starts empty and costs nothing to make, however many rules a bundle may
/// hold ([`crate::bundle::MAX_RULES`]). Two sets are equal when they hold
/// the same rules, whatever words they store.
#[derive(Clone, Debug)]
pub struct RuleSet {
    words: heapless::Vec<u64, RULE_WORDS>,
}

impl Default for RuleSet {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl PartialEq for RuleSet {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.words.as_slice(), other.words.as_slice());
        let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
        long[..short.len()] == *short && long[short.len()..].iter().all(|&w| w == 0)
    }
}

impl Eq for RuleSet {}

impl RuleSet {
    /// No rules.
    pub const EMPTY: RuleSet = RuleSet { words: heapless::Vec::new() };

    /// Its first `count` words (at most [`RULE_WORDS`]), stored from now on.
    fn words_mut(&mut self, count: usize) -> &mut [u64] {
        let count = count.min(RULE_WORDS);
        if self.words.len() < count {
            // Within capacity: `count` is at most RULE_WORDS.
            let _ = self.words.resize(count, 0);
        }
        &mut self.words[..count]
    }

    /// Adds rule `index`.
    pub fn insert(&mut self, index: usize) {
        if index / 64 < RULE_WORDS {
            self.words_mut(index / 64 + 1)[index / 64] |= 1 << (index % 64);
        }
    }

    /// Whether rule `index` is in the set.
    pub fn contains(&self, index: usize) -> bool {
        self.words.get(index / 64).is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    /// Adds every rule of `other`.
    pub fn union_with(&mut self, other: &RuleSet) {
        for (a, b) in self.words_mut(other.words.len()).iter_mut().zip(other.words.iter()) {
            *a |= b;
        }
    }

    /// Removes every rule (keeps nothing stored).
    pub fn clear(&mut self) {
        self.words.clear();
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The rule indices, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut bits = w;
            core::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(i * 64 + bit)
            })
        })
    }

    /// Bitset word `i` (bit `k` of word `i` = rule `64 i + k`).
    pub fn word(&self, i: usize) -> u64 {
        self.words.get(i).copied().unwrap_or(0)
    }

    /// A set from its words (at most [`RULE_WORDS`]; more are ignored).
    pub fn from_words(words: &[u64]) -> Self {
        let mut set = RuleSet::EMPTY;
        let used = words.iter().rposition(|&w| w != 0).map_or(0, |last| last + 1);
        set.words_mut(used).copy_from_slice(&words[..used.min(RULE_WORDS)]);
        set
    }
}

/// Runs the DFAs of `class` over `input` and adds every matched rule to
/// `out`: the class's prefilters first, then every DFA that is not gated
/// and every gated DFA a prefilter named.
pub fn scan_class(bundle: &Bundle<'_>, class: FieldClass, input: &[u8], out: &mut RuleSet) {
    // DFA bits, as a prefilter's match sets hold them: the loaded bundle
    // guarantees a prefilter names only gated DFAs of its own class.
    let mut run = bundle.ungated_dfas(class);
    for prefilter in bundle.prefilters(class) {
        run_words(prefilter, input, &mut run);
    }
    for (w, &word) in run.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let index = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(dfa) = bundle.dfa(index) {
                scan(dfa, input, out);
            }
        }
    }
}

/// Runs `dfa` over `input` and adds every matched rule to `out`: a rule
/// matches if its pattern matches anywhere in the input (or, for an
/// anchored DFA, at its start). The scan stops in the dead state.
pub fn scan(dfa: &Dfa<'_>, input: &[u8], out: &mut RuleSet) {
    run_words(dfa, input, out.words_mut(dfa.rule_words as usize));
}

/// [`scan`] into bitset words (rules, or for a prefilter DFAs).
fn run_words(dfa: &Dfa<'_>, input: &[u8], out: &mut [u64]) {
    if dfa.premultiplied {
        return match (dfa.width, dfa.dead.is_some()) {
            (2, false) => run_premultiplied::<2, false>(dfa, input, out),
            (2, true) => run_premultiplied::<2, true>(dfa, input, out),
            (_, false) => run_premultiplied::<4, false>(dfa, input, out),
            (_, true) => run_premultiplied::<4, true>(dfa, input, out),
        };
    }
    match (dfa.width, dfa.sparse, dfa.dead.is_some()) {
        (2, false, false) => run::<2, false, false>(dfa, input, out),
        (2, false, true) => run::<2, false, true>(dfa, input, out),
        (2, true, false) => run::<2, true, false>(dfa, input, out),
        (2, true, true) => run::<2, true, true>(dfa, input, out),
        (_, false, false) => run::<4, false, false>(dfa, input, out),
        (_, false, true) => run::<4, false, true>(dfa, input, out),
        (_, true, false) => run::<4, true, false>(dfa, input, out),
        (_, true, true) => run::<4, true, true>(dfa, input, out),
    }
}

/// One DFA over `input`: `W`-byte entries, sparse or dense, with a dead
/// state to stop in or without one (a floating DFA: every byte is read,
/// and the loop does not test for it).
#[inline(never)]
fn run<const W: usize, const SPARSE: bool, const DEAD: bool>(dfa: &Dfa<'_>, input: &[u8], out: &mut [u64]) {
    let Some(tables) = Tables::<W>::of(dfa) else { return };
    let dead = dfa.dead.map_or(usize::MAX, |d| d as usize);
    let match_states = dfa.match_states as usize;
    // The states below `special` are the matching ones and (right after
    // them, where the compiler puts it) the dead state: one comparison per
    // byte finds both. A dead state elsewhere widens the range, which
    // only slows the scan down.
    let special = if DEAD { match_states.max(dead.saturating_add(1)) } else { match_states };
    let mut state = dfa.start as usize;
    if state < match_states {
        tables.or_set(state, out);
    } else if DEAD && state == dead {
        return;
    }
    for &byte in input {
        state = tables.step::<SPARSE>(state, usize::from(tables.byte_classes[usize::from(byte)]));
        if state < special {
            if state < match_states {
                tables.or_set(state, out);
            } else if DEAD && state == dead {
                // Nothing is matched from here on.
                return;
            }
        }
    }
    state = tables.step::<SPARSE>(state, tables.alphabet - 1);
    if state < match_states {
        tables.or_set(state, out);
    }
}

/// [`run`] over a dense copy whose entries are row offsets (`state ×
/// alphabet`, [`crate::dense`]): a step is one addition and one read, with
/// no multiplication on the chain from one byte's state to the next. The
/// matching and dead states are compared as offsets; a match set is found
/// from the state, the offset divided back.
#[inline(never)]
fn run_premultiplied<const W: usize, const DEAD: bool>(dfa: &Dfa<'_>, input: &[u8], out: &mut [u64]) {
    let Some(tables) = Tables::<W>::of(dfa) else { return };
    let alphabet = tables.alphabet.max(1);
    let match_states = dfa.match_states as usize;
    let dead = dfa.dead.map_or(0, |d| d as usize);
    let special = if DEAD { match_states.max(dead.saturating_add(1)) } else { match_states };
    let (match_end, dead_row, special_end) = (match_states * alphabet, dead * alphabet, special * alphabet);
    let mut row = dfa.start as usize * alphabet;
    if row < match_end {
        tables.or_set(row / alphabet, out);
    } else if DEAD && row == dead_row {
        return;
    }
    for &byte in input {
        row = Tables::<W>::at(tables.transitions, row + usize::from(tables.byte_classes[usize::from(byte)]));
        if row < special_end {
            if row < match_end {
                tables.or_set(row / alphabet, out);
            } else if DEAD && row == dead_row {
                return;
            }
        }
    }
    row = Tables::<W>::at(tables.transitions, row + alphabet - 1);
    if row < match_end {
        tables.or_set(row / alphabet, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dense anchored DFA for `^ab` over classes a, b, other (+ end of
    /// input), its states numbered by hand: 0 matched "ab", then the dead
    /// state at `dead`, start and "a" elsewhere.
    fn ab_dfa(dead: u16, start: u16, after_a: u16) -> (Vec<u8>, Vec<u8>) {
        let mut byte_classes = vec![2u8; 256];
        byte_classes[usize::from(b'a')] = 0;
        byte_classes[usize::from(b'b')] = 1;
        let mut rows = [[dead; 4]; 4];
        rows[usize::from(start)] = [after_a, dead, dead, dead];
        rows[usize::from(after_a)] = [dead, 0, dead, dead];
        // The matching state stays matched: the pattern is unanchored at its end.
        rows[0] = [0; 4];
        let transitions = rows.iter().flatten().flat_map(|s| s.to_le_bytes()).collect();
        (byte_classes, transitions)
    }

    #[test]
    fn the_dead_state_stops_a_scan_wherever_it_is_numbered_premultiplied_or_not() {
        // Right after the matching state (as the compiler numbers it), or
        // last: the same matches.
        // Each table also as a premultiplied copy (entries = state × 4).
        let cases = [(1u16, 2u16, 3u16), (3, 1, 2), (2, 3, 1)].into_iter().flat_map(|c| [(c, false), (c, true)]);
        for ((dead, start, after_a), premultiplied) in cases {
            let (byte_classes, mut transitions) = ab_dfa(dead, start, after_a);
            if premultiplied {
                for entry in transitions.chunks_mut(2) {
                    let row = u16::from_le_bytes([entry[0], entry[1]]) * 4;
                    entry.copy_from_slice(&row.to_le_bytes());
                }
            }
            let sets = 1u64.to_le_bytes();
            let match_index = 0u16.to_le_bytes();
            let dfa = Dfa {
                class: FieldClass::Command,
                anchored: true,
                prefilter: false,
                gated: false,
                width: 2,
                states: 4,
                alphabet: 4,
                start: u32::from(start),
                dead: Some(u32::from(dead)),
                match_states: 1,
                rule_words: 1,
                match_sets: 1,
                byte_classes: &byte_classes,
                transitions: &transitions,
                sparse: false,
                premultiplied,
                defaults: &[],
                bases: &[],
                template_rows: 0,
                templates: &[],
                checks: &[],
                nexts: &[],
                match_index: &match_index,
                sets: &sets,
            };
            for (input, matched) in
                [(&b"ab"[..], true), (b"abx", true), (b"xab", false), (b"a", false), (b"aab", false), (b"", false)]
            {
                let mut out = RuleSet::default();
                scan(&dfa, input, &mut out);
                assert_eq!(out.contains(0), matched, "{:?} with the dead state {dead} ({premultiplied})", input);
                if premultiplied {
                    // `next` reads a premultiplied copy as states.
                    assert_eq!(dfa.next(usize::from(start), 0), u32::from(after_a));
                }
            }
        }
    }

    #[test]
    fn rule_set_iterates_in_order() {
        let mut set = RuleSet::default();
        for i in [0, 63, 64, 700, 4095] {
            set.insert(i);
        }
        set.insert(5000); // out of range: ignored
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 63, 64, 700, 4095]);
        assert!(set.contains(700) && !set.contains(701));
    }

    #[test]
    fn rule_sets_are_equal_by_their_rules_not_their_stored_words() {
        let mut small = RuleSet::default();
        small.insert(3);
        // Stores 11 words, the last ten zero.
        let mut wide = RuleSet::from_words(&[1 << 3]);
        wide.union_with(&RuleSet::from_words(&[0; 11]));
        let grown = RuleSet::from_words(&[1 << 3, 0, 0]);
        assert_eq!(small, wide);
        assert_eq!(wide, small);
        assert_eq!(small, grown);
        assert_ne!(small, RuleSet::EMPTY);
        assert_eq!(RuleSet::from_words(&[0; 64]), RuleSet::EMPTY);
        assert!(RuleSet::from_words(&[0; 64]).is_empty());
        // Words past the largest set are ignored, never a panic.
        let over = RuleSet::from_words(&[1; 70]);
        assert_eq!(over.iter().count(), RULE_WORDS);
        assert_eq!(over.word(RULE_WORDS), 0);
    }
}
