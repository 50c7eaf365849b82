//! Dense copies of a loaded bundle's sparse DFA tables, made in memory the
//! caller lends.
//!
//! A bundle stores most DFAs sparsely (a default and a comb per state:
//! docs/bundle.md, "6 DFA") so that the whole bundle fits in an FPGA's
//! block RAM. On a CPU a sparse step reads up to four tables and a dense one
//! reads one entry: with memory to spare, a judge gives the DFAs that run
//! most a dense copy of the very same transition function, its entries
//! premultiplied (each the offset `next state × alphabet` of the next
//! state's row, so that a step adds and reads, with no multiplication on
//! the chain from one byte to the next), and [`crate::dfa`] runs that copy
//! with a loop of its own. Nothing else
//! changes — the bundle's bytes, its digest, the match sets, every verdict
//! (tested entry by entry and verdict by verdict) — so the FPGA judge, which
//! runs the sparse tables from block RAM, still executes the same tables.
//!
//! Which DFAs get a copy depends only on the bundle and on how much memory
//! is lent: first those that run on every input of their class (the
//! prefilters and the ungated DFAs), then the gated ones, each group the
//! smallest dense table first; a table that does not fit in what is left is
//! skipped. Copies are made one DFA per [`Densifier::step`], so that a guard
//! can make them between requests.

use crate::bundle::{Bundle, Dfa, MAX_DFAS, Tables};

/// The memory a judge lends for dense copies by default: enough for the
/// tables of the default pack's prefilters, ungated DFAs and most gated ones
/// (docs/performance.md measures what it buys).
pub const DEFAULT_ARENA_LEN: usize = 1 << 20;

/// Bytes the dense copy of `dfa` takes: `states × alphabet` entries of its
/// width, each the offset of the next state's row (`state × alphabet`).
/// 0 for a DFA already dense, and for one whose offsets would not fit its
/// entries (a DFA of 2-byte entries with more than 65,536 of them: it runs
/// from its sparse tables).
pub fn dense_len(dfa: &Dfa<'_>) -> usize {
    let entries = (dfa.states as usize).saturating_mul(dfa.alphabet as usize);
    if !dfa.sparse || (dfa.width == 2 && entries > 0x1_0000) {
        return 0;
    }
    entries.saturating_mul(usize::from(dfa.width))
}

/// Makes dense copies of a bundle's sparse DFAs, one per step, in the
/// memory it was lent.
pub struct Densifier<'a> {
    arena: &'a mut [u8],
    /// DFA section indices, in the order copies are made.
    order: heapless::Vec<u8, MAX_DFAS>,
    next: usize,
    used: usize,
}

impl<'a> Densifier<'a> {
    /// Plans the copies of `bundle`'s sparse DFAs into `arena` (nothing is
    /// written yet).
    pub fn new(bundle: &Bundle<'a>, arena: &'a mut [u8]) -> Self {
        let mut order: heapless::Vec<u8, MAX_DFAS> = heapless::Vec::new();
        for index in 0..bundle.dfa_count() {
            if bundle.dfa(index).is_some_and(|dfa| dfa.sparse) {
                // Within capacity: a bundle holds at most MAX_DFAS (< 256).
                let _ = order.push(index as u8);
            }
        }
        // Those that run on every input first, then by size, then by index:
        // an insertion sort (a few dozen entries, once per load; `core`'s
        // sorts would add 30 KB of code to the guard).
        let key = |index: u8| {
            let dfa = bundle.dfa(usize::from(index));
            (dfa.is_some_and(|d| d.gated), dfa.map_or(0, dense_len), index)
        };
        for i in 1..order.len() {
            let mut j = i;
            while j > 0 && key(order[j - 1]) > key(order[j]) {
                order.swap(j - 1, j);
                j -= 1;
            }
        }
        Densifier { arena, order, next: 0, used: 0 }
    }

    /// Copies the next planned DFA that fits into the rest of the arena
    /// and has `bundle` run the copy. Returns `false` once nothing is left
    /// to copy. A DFA that is no longer sparse in `bundle` is passed over.
    pub fn step(&mut self, bundle: &mut Bundle<'a>) -> bool {
        while let Some(&index) = self.order.get(self.next) {
            self.next += 1;
            let index = usize::from(index);
            let Some(dfa) = bundle.dfa(index).copied() else { continue };
            let len = dense_len(&dfa);
            if len == 0 || len > self.arena.len() {
                continue;
            }
            let (piece, rest) = core::mem::take(&mut self.arena).split_at_mut(len);
            self.arena = rest;
            let written = if dfa.width == 2 { fill::<2>(&dfa, piece) } else { fill::<4>(&dfa, piece) };
            if written {
                self.used += len;
                let piece: &'a [u8] = piece;
                bundle.set_dfa(
                    index,
                    Dfa {
                        sparse: false,
                        premultiplied: true,
                        transitions: piece,
                        defaults: &[],
                        bases: &[],
                        template_rows: 0,
                        templates: &[],
                        checks: &[],
                        nexts: &[],
                        ..dfa
                    },
                );
            }
            return true;
        }
        false
    }

    /// Makes every copy that is left.
    pub fn finish(&mut self, bundle: &mut Bundle<'a>) {
        while self.step(bundle) {}
    }

    /// Bytes of the arena the copies made so far take.
    pub fn used(&self) -> usize {
        self.used
    }
}

impl<'a> Bundle<'a> {
    /// Gives this bundle's sparse DFAs dense copies in `arena`, as many as
    /// fit ([`Densifier`]); returns the bytes used. Every verdict stays
    /// the same.
    pub fn densify(&mut self, arena: &'a mut [u8]) -> usize {
        let mut densifier = Densifier::new(self, arena);
        densifier.finish(self);
        densifier.used()
    }
}

/// Writes the dense table of sparse `dfa` into `out` (`states × alphabet`
/// entries of `W` bytes): each entry is what the sparse step gives for that
/// state and column. `false` (nothing to use) when the tables cannot be read.
fn fill<const W: usize>(dfa: &Dfa<'_>, out: &mut [u8]) -> bool {
    let Some(tables) = Tables::<W>::of(dfa) else { return false };
    let rows = out.as_chunks_mut::<W>().0;
    tables.densify(rows);
    true
}

#[cfg(all(test, feature = "compile"))]
mod tests {
    use super::*;

    fn default_bundle() -> Vec<u8> {
        let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/default.toml"))
            .expect("the default pack");
        crate::compile::compile(&source, "default.toml").expect("compiles").bundle
    }

    #[test]
    fn every_dense_entry_is_the_sparse_step() {
        let bytes = default_bundle();
        let sparse = Bundle::load(&bytes).expect("loads");
        let total: usize = (0..sparse.dfa_count()).filter_map(|i| sparse.dfa(i)).map(dense_len).sum();
        let mut arena = vec![0u8; total];
        let mut dense = Bundle::load(&bytes).expect("loads");
        assert_eq!(dense.densify(&mut arena), total, "every sparse DFA fits an arena of their total");
        let mut compared = 0usize;
        for index in 0..sparse.dfa_count() {
            let (Some(before), Some(after)) = (sparse.dfa(index), dense.dfa(index)) else { continue };
            assert!(!after.sparse || dense_len(before) == 0, "DFA {index} is still sparse");
            if !before.sparse {
                assert_eq!(before.transitions, after.transitions, "DFA {index} was dense already");
                continue;
            }
            for state in 0..before.states as usize {
                for column in 0..before.alphabet as usize {
                    assert_eq!(after.next(state, column), before.next(state, column), "DFA {index} {state} {column}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 100_000, "only {compared} entries compared");
    }

    #[test]
    fn a_small_arena_takes_what_runs_always_first_and_skips_what_does_not_fit() {
        let bytes = default_bundle();
        let loaded = Bundle::load(&bytes).expect("loads");
        let ungated: Vec<usize> =
            (0..loaded.dfa_count()).filter(|&i| loaded.dfa(i).is_some_and(|d| d.sparse && !d.gated)).collect();
        let room: usize = ungated.iter().map(|&i| dense_len(loaded.dfa(i).unwrap())).sum();
        assert!(room > 0, "the default pack has sparse prefilters or ungated DFAs");
        let mut arena = vec![0u8; room];
        let mut bundle = Bundle::load(&bytes).expect("loads");
        assert_eq!(bundle.densify(&mut arena), room);
        for i in 0..bundle.dfa_count() {
            let dfa = bundle.dfa(i).unwrap();
            let was = loaded.dfa(i).unwrap();
            assert_eq!(dfa.sparse, was.sparse && was.gated, "DFA {i}");
        }
        // No room at all: nothing changes.
        let mut bundle = Bundle::load(&bytes).expect("loads");
        assert_eq!(bundle.densify(&mut []), 0);
        assert!((0..bundle.dfa_count()).all(|i| bundle.dfa(i).unwrap().sparse == loaded.dfa(i).unwrap().sparse));
    }

    #[test]
    fn copies_are_planned_always_run_first_then_smallest_first() {
        let bytes = default_bundle();
        let bundle = Bundle::load(&bytes).expect("loads");
        let mut arena = [];
        let densifier = Densifier::new(&bundle, &mut arena);
        let keys: Vec<(bool, usize, u8)> = densifier
            .order
            .iter()
            .map(|&i| {
                let dfa = bundle.dfa(usize::from(i)).unwrap();
                (dfa.gated, dense_len(dfa), i)
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert_eq!(keys.len(), bundle.dfas().filter(|d| d.sparse).count());
    }

    #[test]
    fn one_dfa_per_step_until_done() {
        let bytes = default_bundle();
        let mut bundle = Bundle::load(&bytes).expect("loads");
        let sparse = (0..bundle.dfa_count()).filter(|&i| bundle.dfa(i).unwrap().sparse).count();
        let mut arena = vec![0u8; DEFAULT_ARENA_LEN];
        let mut densifier = Densifier::new(&bundle, &mut arena);
        let mut steps = 0;
        while densifier.step(&mut bundle) {
            steps += 1;
        }
        let copied = sparse - (0..bundle.dfa_count()).filter(|&i| bundle.dfa(i).unwrap().sparse).count();
        assert!(
            copied > 0 && copied < sparse,
            "the default arena holds some of the tables, not all ({copied} of {sparse})"
        );
        assert_eq!(steps, copied, "one copy per step");
        assert!(densifier.used() <= DEFAULT_ARENA_LEN);
        assert!(!densifier.step(&mut bundle), "done stays done");
    }
}
