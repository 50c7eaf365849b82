//! Required literals of a pattern: a set of byte strings one of which
//! occurs in every input the pattern matches (docs/bundle.md, "Prefilter").
//! The class prefilter finds them all in one pass, and a gated DFA runs
//! only on inputs where one of its patterns' literals occurs — so a wrong
//! set here would lose matches: every rule below only ever answers a set
//! that is implied by the pattern, or nothing.

extern crate std;

use std::string::String;
use std::vec::Vec;

use std::collections::HashMap;
use std::string::ToString;

use aho_corasick::automaton::Automaton;
use aho_corasick::{Anchored, MatchKind, StartKind, dfa};
use regex_syntax::hir::{Class, Hir, HirKind};

use super::DfaReport;
use crate::bundle::{self, FieldClass};

/// Most literals in one set (beyond that the pattern is not gated).
const MAX_SET: usize = 64;
/// Longest literal kept.
const MAX_LEN: usize = 64;
/// Longest literal the prefilter looks for (a literal's first bytes).
pub const PREFILTER_LEN: usize = 5;
/// Longest leading string the anchored prefilter looks for: a program
/// name's first 4 bytes tell most programs apart, and its trie stays small.
pub const LEADING_LEN: usize = 4;

/// A finite set of byte strings.
type Set = Vec<Vec<u8>>;

/// The required literals of `hir`, when it has a useful set (every
/// literal at least two bytes long, at most [`MAX_SET`] of them).
pub fn required(hir: &Hir) -> Option<Set> {
    required_set(hir).filter(useful)
}

/// Every literal at least two bytes long, at most [`MAX_SET`] of them.
fn useful(set: &Set) -> bool {
    set.iter().all(|l| l.len() >= 2) && set.len() <= MAX_SET
}

/// For a pattern whose matches all start at the input's start: a set of
/// strings one of which begins every match (the exact run of parts the
/// pattern starts with — for a command pattern, its program names), when
/// useful as for [`required`]. Far fewer than the required literals of
/// the whole pattern, and as selective where a line starts.
pub fn leading(hir: &Hir) -> Option<Set> {
    leading_set(hir).filter(useful).map(|set| prefix_free_at(set, LEADING_LEN))
}

/// What the prefilter looks for instead of `set`: each literal cut to
/// [`PREFILTER_LEN`] bytes, in lower case, without those that begin with
/// another (where the longer occurs, the shorter does).
pub fn prefix_free(set: Set) -> Set {
    prefix_free_at(set, PREFILTER_LEN)
}

/// [`prefix_free`], cutting at `len` bytes.
fn prefix_free_at(set: Set, len: usize) -> Set {
    let mut cut: Set = set.iter().map(|l| l[..l.len().min(len)].to_ascii_lowercase()).collect();
    cut.sort();
    cut.dedup();
    let mut kept: Set = Set::new();
    for literal in cut {
        // Sorted: a literal's prefixes come before it.
        if !kept.iter().any(|k| literal.starts_with(k)) {
            kept.push(literal);
        }
    }
    kept
}

/// One of these strings begins every match of `hir`.
fn leading_set(hir: &Hir) -> Option<Set> {
    match hir.kind() {
        HirKind::Capture(c) => leading_set(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => leading_set(&r.sub),
        HirKind::Alternation(subs) => union(subs, leading_set),
        HirKind::Concat(subs) => {
            // The exact parts in front, then what begins the first part
            // that is not exact. The run stops early (shorter strings still
            // begin every match) when its product would be too large, when
            // it is as long as the trie looks, or when it is useful
            // already and the next part would multiply it (`^go (build|
            // test|…)` is `go `: one string, not one per subcommand).
            let mut run = vec_of(Vec::new());
            for sub in subs {
                let shortest = score(&run);
                if shortest >= LEADING_LEN {
                    break;
                }
                let (next, last) = match exact(sub) {
                    Some(e) => (Some(e), false),
                    None => (leading_set(sub), true),
                };
                let Some(next) = next else { break };
                if shortest >= 2 && next.len() > 1 {
                    break;
                }
                match product(&run, &next) {
                    Some(p) => run = p,
                    None => break,
                }
                if last {
                    break;
                }
            }
            Some(run)
        }
        _ => exact(hir),
    }
}

/// The class prefilter: an Aho-Corasick automaton (ASCII letters in
/// either case: a prefilter may see more than it must, never less) over
/// `literals`, each naming a DFA section, exported to the flat form. Every
/// state's match set names the DFAs of every literal that ends there,
/// overlapping ones included; matches are not delayed, and the
/// end-of-input column stays in place.
pub fn export_prefilter(
    class: FieldClass,
    literals: &[(Vec<u8>, usize)],
    budget: usize,
) -> Result<(DfaReport, Vec<u8>), String> {
    let mut distinct: Vec<Vec<u8>> = literals.iter().map(|(l, _)| l.clone()).collect();
    distinct.sort();
    distinct.dedup();
    let ac = dfa::DFA::builder()
        .match_kind(MatchKind::Standard)
        .ascii_case_insensitive(true)
        .start_kind(StartKind::Unanchored)
        .build(&distinct)
        .map_err(|e| e.to_string())?;
    let start = ac.start_state(Anchored::No).map_err(|e| e.to_string())?;
    // Reachable states, breadth first, and their rows over all bytes.
    let mut index = HashMap::new();
    let mut order = std::vec![start];
    index.insert(start, 0u32);
    let mut rows: Vec<[u32; 256]> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let mut row = [0u32; 256];
        for (b, slot) in row.iter_mut().enumerate() {
            let next = ac.next_state(Anchored::No, order[i], b as u8);
            *slot = *index.entry(next).or_insert_with(|| {
                order.push(next);
                (order.len() - 1) as u32
            });
        }
        rows.push(row);
        i += 1;
        if order.len().saturating_mul(2 * 64) > budget {
            return Err("too many literals for one prefilter".into());
        }
    }
    let mut matches = Vec::with_capacity(order.len());
    for &id in &order {
        if !ac.is_match(id) {
            matches.push(None);
            continue;
        }
        let mut bits = std::vec![0u64; bundle::PREFILTER_WORDS];
        for k in 0..ac.match_len(id) {
            let literal = &distinct[ac.match_pattern(id, k).as_usize()];
            for (l, dfa) in literals {
                if l == literal {
                    // A DFA past what a prefilter can name: the compile
                    // fails on the DFA count (never a panic here).
                    let word = bits.get_mut(dfa / 64).ok_or("more DFAs than a prefilter can name")?;
                    *word |= 1 << (dfa % 64);
                }
            }
        }
        matches.push(Some(bits));
    }
    flat_prefilter(class, bundle::DFA_PREFILTER, distinct.len(), &rows, &matches, None)
}

/// The anchored prefilter of a class: a trie (ASCII letters in either
/// case) of the leading strings of its anchored gated DFAs, run from the
/// input's first byte. A state's match set names the DFAs of the string
/// that ends there; every other byte leads to the dead state, where the
/// scan stops — after as many bytes as the longest leading string, at
/// most.
pub fn export_anchored_prefilter(
    class: FieldClass,
    literals: &[(Vec<u8>, usize)],
    budget: usize,
) -> Result<(DfaReport, Vec<u8>), String> {
    // State 0 is the start, state 1 the dead state.
    const DEAD: u32 = 1;
    let mut rows: Vec<[u32; 256]> = std::vec![[DEAD; 256], [DEAD; 256]];
    let mut matches: Vec<Option<Vec<u64>>> = std::vec![None, None];
    let mut distinct = 0;
    for (literal, dfa) in literals {
        let mut state = 0usize;
        for &b in literal {
            let next = match rows[state][b.to_ascii_lowercase() as usize] {
                DEAD => {
                    rows.push([DEAD; 256]);
                    matches.push(None);
                    let new = (rows.len() - 1) as u32;
                    rows[state][b.to_ascii_lowercase() as usize] = new;
                    rows[state][b.to_ascii_uppercase() as usize] = new;
                    new
                }
                next => next,
            };
            state = next as usize;
        }
        let bits = matches[state].get_or_insert_with(|| {
            distinct += 1;
            std::vec![0u64; bundle::PREFILTER_WORDS]
        });
        *bits.get_mut(dfa / 64).ok_or("more DFAs than a prefilter can name")? |= 1 << (dfa % 64);
        if rows.len().saturating_mul(2 * 64) > budget {
            return Err("too many leading strings for one prefilter".into());
        }
    }
    flat_prefilter(class, bundle::DFA_PREFILTER | bundle::DFA_ANCHORED, distinct, &rows, &matches, Some(DEAD))
}

/// A prefilter's rows over all bytes and match sets, exported to the flat
/// form: byte classes, an end-of-input column that stays in place.
fn flat_prefilter(
    class: FieldClass,
    flags: u8,
    patterns: usize,
    rows: &[[u32; 256]],
    matches: &[Option<Vec<u64>>],
    dead: Option<u32>,
) -> Result<(DfaReport, Vec<u8>), String> {
    // Byte classes: bytes whose columns are equal.
    let mut columns: Vec<Vec<u32>> = Vec::new();
    let mut byte_class = [0u8; 256];
    for b in 0..256 {
        let column: Vec<u32> = rows.iter().map(|r| r[b]).collect();
        let c = match columns.iter().position(|c| *c == column) {
            Some(c) => c,
            None => {
                columns.push(column);
                columns.len() - 1
            }
        };
        byte_class[b] = u8::try_from(c).map_err(|_| "too many byte classes".to_string())?;
    }
    let alphabet = columns.len() + 1;
    let mut transitions = Vec::with_capacity(rows.len() * alphabet);
    for s in 0..rows.len() {
        for column in &columns {
            transitions.push(column[s]);
        }
        transitions.push(s as u32); // end of input: stay
    }
    // Equal match sets are stored once.
    let mut sets: Vec<Vec<u64>> = Vec::new();
    let mut index_of: HashMap<&Vec<u64>, u32> = HashMap::new();
    let mut indices = Vec::with_capacity(matches.len());
    for m in matches {
        indices.push(m.as_ref().map(|bits| {
            *index_of.entry(bits).or_insert_with(|| {
                sets.push(bits.clone());
                (sets.len() - 1) as u32
            })
        }));
    }
    Ok(super::flat_dfa(&super::DenseDfa {
        class,
        flags,
        patterns,
        byte_class: &byte_class,
        alphabet,
        transitions: &transitions,
        matches: &indices,
        sets: &sets,
        start: 0,
        dead,
    }))
}

/// One of these strings occurs in every match of `hir`.
fn required_set(hir: &Hir) -> Option<Set> {
    if let Some(set) = exact(hir) {
        return Some(set);
    }
    match hir.kind() {
        HirKind::Capture(c) => required_set(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => required_set(&r.sub),
        // Every branch must require something; the union is required.
        HirKind::Alternation(subs) => union(subs, required_set),
        HirKind::Concat(subs) => {
            // Any part's requirement holds for the whole; so does the
            // product of a run of adjacent exact parts. Keep the best.
            let mut best: Option<Set> = None;
            let mut consider = |candidate: Option<Set>| {
                if let Some(c) = candidate
                    && score(&c) > best.as_ref().map_or(0, score)
                {
                    best = Some(c);
                }
            };
            let mut run: Option<Set> = None;
            for sub in subs {
                // `x+` is one `x` and then maybe more: the run takes one
                // copy and ends.
                if let HirKind::Repetition(r) = sub.kind()
                    && r.min >= 1
                    && let Some(e) = exact(&r.sub)
                {
                    let extended = match run.take() {
                        Some(r) => product(&r, &e).unwrap_or(e),
                        None => e,
                    };
                    consider(Some(extended));
                    continue;
                }
                match exact(sub) {
                    Some(e) => {
                        run = Some(match run.take() {
                            Some(r) => product(&r, &e).unwrap_or(e),
                            None => e,
                        });
                        consider(run.clone());
                    }
                    None => {
                        run = None;
                        consider(required_set(sub));
                    }
                }
            }
            best
        }
        _ => None,
    }
}

/// Every string `hir` can match, when that set is small and finite.
/// Assertions (`^`, `\b`) match the empty string.
fn exact(hir: &Hir) -> Option<Set> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Some(vec_of(Vec::new())),
        HirKind::Literal(l) => (l.0.len() <= MAX_LEN).then(|| vec_of(l.0.to_vec())),
        // A class of at most 4 members: each member.
        HirKind::Class(Class::Bytes(c)) => {
            small_class(c.iter().flat_map(|r| (r.start()..=r.end()).map(|b| std::vec![b])))
        }
        HirKind::Class(Class::Unicode(c)) => {
            let members = c.iter().flat_map(|r| (r.start()..=r.end()).map(utf8));
            if c.iter().all(|r| !r.start().is_ascii()) {
                // Multi-byte characters only (written as an alternation:
                // the pattern syntax has no non-ASCII brackets): each
                // encoding is a literal of 2–4 bytes, useful as it stands,
                // so the set may be as large as any other.
                let set: Set = members.take(MAX_SET + 1).collect();
                (set.len() <= MAX_SET).then_some(set)
            } else {
                small_class(members)
            }
        }
        HirKind::Capture(c) => exact(&c.sub),
        HirKind::Repetition(r) if r.min == 1 && r.max == Some(1) => exact(&r.sub),
        HirKind::Concat(subs) => {
            let mut acc = vec_of(Vec::new());
            for sub in subs {
                acc = product(&acc, &exact(sub)?)?;
            }
            Some(acc)
        }
        HirKind::Alternation(subs) => union(subs, exact),
        _ => None,
    }
}

/// The union of what `f` gives for every branch; `None` if one gives
/// nothing or the union is too large.
fn union(subs: &[Hir], f: fn(&Hir) -> Option<Set>) -> Option<Set> {
    let mut all = Set::new();
    for sub in subs {
        all.extend(f(sub)?);
        if all.len() > MAX_SET {
            return None;
        }
    }
    dedup(all)
}

/// The UTF-8 encoding of `ch`.
fn utf8(ch: char) -> Vec<u8> {
    ch.encode_utf8(&mut [0u8; 4]).as_bytes().to_vec()
}

/// The members of a class, when there are at most 4.
fn small_class(members: impl Iterator<Item = Vec<u8>>) -> Option<Set> {
    let set: Set = members.take(5).collect();
    (set.len() <= 4).then_some(set)
}

fn vec_of(literal: Vec<u8>) -> Set {
    std::vec![literal]
}

/// Every `a` followed by every `b`, when small enough.
fn product(a: &Set, b: &Set) -> Option<Set> {
    if a.len().saturating_mul(b.len()) > MAX_SET {
        return None;
    }
    let mut out = Set::new();
    for x in a {
        for y in b {
            if x.len() + y.len() > MAX_LEN {
                return None;
            }
            let mut s = x.clone();
            s.extend_from_slice(y);
            out.push(s);
        }
    }
    dedup(out)
}

fn dedup(mut set: Set) -> Option<Set> {
    set.sort();
    set.dedup();
    (set.len() <= MAX_SET).then_some(set)
}

/// How selective a set is: its shortest literal's length (a set holding
/// the empty string requires nothing).
fn score(set: &Set) -> usize {
    set.iter().map(Vec::len).min().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::util::syntax;

    /// What `find` gives for pattern `p`, as strings.
    fn strings(p: &str, find: fn(&Hir) -> Option<Set>) -> Option<Vec<String>> {
        let hir = syntax::parse_with(p, &syntax::Config::new().unicode(false).utf8(false)).unwrap();
        find(&hir).map(|s| s.into_iter().map(|l| String::from_utf8(l).unwrap()).collect())
    }

    fn req(p: &str) -> Option<Vec<String>> {
        strings(p, required)
    }

    #[test]
    fn literals_are_implied_by_the_pattern() {
        assert_eq!(req(r"curl[^|]*\|[ ]*(ba)?sh"), Some(std::vec!["curl".into()]));
        assert_eq!(req(r"(env|printenv)( [^|]*)? *\| *nc"), Some(std::vec!["env".into(), "printenv".into()]));
        // `drop ` in every case (16), as selective as `table` (32) and smaller.
        assert_eq!(req(r"(?i)drop[ ]+table").map(|s| s.len()), Some(16));
        assert_eq!(req(r"ab+c"), Some(std::vec!["ab".into()]));
        assert_eq!(req(r"(foo|bar).*baz"), Some(std::vec!["bar".into(), "foo".into()]));
        // Nothing required, or nothing useful.
        assert_eq!(req(r"[0-9]{3}-[0-9]{2}"), None);
        assert_eq!(req(r"(foo|[a-z]+)x"), None);
        assert_eq!(req(r"a*"), None);
        assert_eq!(req(r"(x|yz)"), None);
    }

    /// The UTF-8 encodings of `chars`, as strings.
    fn encoded(chars: &[char]) -> Vec<String> {
        let mut v: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn multi_byte_classes_require_their_encodings() {
        // Zero-width and bidi characters: each one's encoding.
        let hidden = ['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{202E}', '\u{2066}'];
        assert_eq!(req(r"(\x{200B}|\x{200C}|\x{200D}|\x{2060}|\x{202E}|\x{2066})"), Some(encoded(&hidden)));
        assert_eq!(req(r"x(\x{2066}|\x{2067})"), Some(std::vec!["x\u{2066}".into(), "x\u{2067}".into()]));
        // Not when a member is ASCII (one byte: not useful).
        assert_eq!(req(r"(a|\x{2066})"), None);
    }

    fn lead(p: &str) -> Option<Vec<String>> {
        strings(p, leading)
    }

    #[test]
    fn leading_strings_begin_every_match() {
        assert_eq!(lead(r"^git( [^ ]+)* push( |$)"), Some(std::vec!["git".into()]));
        assert_eq!(
            lead(r"^(rm|unlink|truncate)( [^ ]+)* /(etc|usr)"),
            Some(std::vec!["rm".into(), "trun".into(), "unli".into()])
        );
        assert_eq!(lead(r"^crontab$"), Some(std::vec!["cron".into()]));
        // Cut to the trie's length: `helm` begins every branch.
        assert_eq!(lead(r"^(helm (list|ls|repo (list|update))|helmfile)( |$)"), Some(std::vec!["helm".into()]));
        // A string that begins another stands for both.
        assert_eq!(lead(r"^(ab|abc)[a-z]+"), Some(std::vec!["ab".into()]));
        assert_eq!(lead(r"^mkfs(\.[a-z0-9]+)?( |$)"), Some(std::vec!["mkfs".into()]));
        // Useful already: not multiplied by what follows.
        assert_eq!(lead(r"^go (build|test)"), Some(std::vec!["go ".into()]));
        // Too short alone: the product.
        assert_eq!(lead(r"^(a|b)(x|y)"), Some(std::vec!["ax".into(), "ay".into(), "bx".into(), "by".into()]));
        // Nothing useful begins every match.
        assert_eq!(lead(r"^\$\{?[A-Za-z_]"), None);
        assert_eq!(lead(r"^[a-z]+ --flag"), None);
        assert_eq!(lead(r"^(ab|[0-9]x)"), None);
    }
}
