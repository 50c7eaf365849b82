//! Shell patterns judged by what they could match, without a file system:
//! brace expansion (`{a,b}`), and whether a glob (`*`, `?`, `[…]`) could
//! name a path at, below or above a protected prefix.
//!
//! A glob is a regular language over paths; a protected prefix `P` stands
//! for the language `P` ∪ `P/…`. Matching the two component by component is
//! their intersection: non-empty exactly when every component the two have
//! in common matches. A glob that stops early names an ancestor of `P` (a
//! recursive operation on it reaches `P`); one that goes deeper names
//! something below `P`. As in the shell, a component pattern starting with
//! a wildcard does not match a name starting with `.`.
//!
//! Fixed capacity, no allocation, never panics.

/// Most alternatives one word's braces expand to; beyond, the word is
/// judged as written (and the caller is told).
pub const MAX_EXPANSIONS: usize = 64;

/// Whether `word` contains glob characters (`*`, `?`, or a `[` … `]`).
pub fn has_glob(word: &str) -> bool {
    let b = word.as_bytes();
    b.iter().any(|&c| c == b'*' || c == b'?')
        || b.iter().position(|&c| c == b'[').is_some_and(|at| b[at + 1..].contains(&b']'))
}

/// Whether `word` contains a brace group with a comma (`{a,b}`).
pub fn has_braces(word: &str) -> bool {
    find_group(word.as_bytes()).is_some()
}

/// The first `{…,…}` group: (open, close) byte offsets.
fn find_group(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' {
            let mut depth = 0usize;
            let mut comma = false;
            for (j, &c) in b.iter().enumerate().skip(i) {
                match c {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            if comma {
                                return Some((i, j));
                            }
                            break;
                        }
                    }
                    b',' if depth == 1 => comma = true,
                    _ => {}
                }
            }
        }
        i += 1;
    }
    None
}

/// Longest brace expansion.
const EXPANSION_BYTES: usize = 1024;

/// Whether [`expand_braces`] gives `word` itself, once (no group, not too
/// long to expand).
pub fn expands_to_itself(word: &str) -> bool {
    word.len() <= EXPANSION_BYTES && find_group(word.as_bytes()).is_none()
}

/// Calls `each` with every brace expansion of `word` (the word itself when
/// it has none), left to right, at most [`MAX_EXPANSIONS`] times. Returns
/// `false` when expansions were cut (too many, or longer than the buffer).
pub fn expand_braces(word: &str, each: &mut dyn FnMut(&str)) -> bool {
    if expands_to_itself(word) {
        // No group: the word itself, as below, without the copy.
        each(word);
        return true;
    }
    let mut count = 0;
    let mut buf = [0u8; EXPANSION_BYTES];
    expand_into(word.as_bytes(), &mut buf, 0, 0, &mut count, each)
}

fn expand_into(
    rest: &[u8],
    buf: &mut [u8; EXPANSION_BYTES],
    len: usize,
    depth: usize,
    count: &mut usize,
    each: &mut dyn FnMut(&str),
) -> bool {
    // The first cut (too many, too deep, too long) ends the whole walk: a
    // word of nested or repeated groups has exponentially many
    // expansions, and what is cut is unresolved anyway.
    let cut = |count: &mut usize| {
        *count = usize::MAX;
        false
    };
    if *count >= MAX_EXPANSIONS || depth > 8 {
        return cut(count);
    }
    let Some((open, close)) = find_group(rest) else {
        let Some(slot) = buf.get_mut(len..len + rest.len()) else { return cut(count) };
        slot.copy_from_slice(rest);
        *count += 1;
        if let Ok(text) = core::str::from_utf8(&buf[..len + rest.len()]) {
            each(text);
        }
        return true;
    };
    let Some(slot) = buf.get_mut(len..len + open) else { return cut(count) };
    slot.copy_from_slice(&rest[..open]);
    let base = len + open;
    let inner = &rest[open + 1..close];
    let after = &rest[close + 1..];
    let mut start = 0;
    let mut nest = 0usize;
    for i in 0..=inner.len() {
        let end = i == inner.len();
        let c = inner.get(i).copied().unwrap_or(b',');
        match c {
            b'{' => nest += 1,
            b'}' => nest = nest.saturating_sub(1),
            b',' if nest == 0 || end => {
                // alternative + the rest after the group, expanded again.
                let alt = &inner[start..i];
                // Nested groups inside the alternative are expanded with it.
                let mut joined = [0u8; EXPANSION_BYTES];
                let total = alt.len() + after.len();
                let Some(j) = joined.get_mut(..total) else { return cut(count) };
                j[..alt.len()].copy_from_slice(alt);
                j[alt.len()..].copy_from_slice(after);
                if !expand_into(&joined[..total], buf, base, depth + 1, count, each) {
                    return false;
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    true
}

/// Whether the glob `pattern` (a normalised path, possibly with wildcards)
/// could name `prefix` (a normalised path without wildcards), something
/// below it, or one of its ancestors.
pub fn could_reach(pattern: &str, prefix: &str) -> bool {
    // The whole components before the first wildcard character are
    // compared literally: where the two differ within them, no component
    // walk can agree (a quick refusal of most pairs).
    let wild = pattern.bytes().position(|c| matches!(c, b'*' | b'?' | b'[')).unwrap_or(pattern.len());
    let head = pattern[..wild].rfind('/').map_or("", |at| &pattern[..at]);
    let common = head.len().min(prefix.len());
    if head.as_bytes()[..common] != prefix.as_bytes()[..common] {
        return false;
    }
    let mut p = pattern.split('/');
    let mut q = prefix.split('/');
    loop {
        match (p.next(), q.next()) {
            (Some(pc), Some(qc)) => {
                if !component_matches(pc.as_bytes(), qc.as_bytes()) {
                    return false;
                }
            }
            // One ended: an ancestor or a descendant, or the same path.
            _ => return true,
        }
    }
}

/// Whether the whole name `name` matches the component pattern `pattern`.
pub fn component_matches(pattern: &[u8], name: &[u8]) -> bool {
    // A leading wildcard does not match a leading dot (the shell's rule).
    if name.first() == Some(&b'.') && matches!(pattern.first(), Some(b'*' | b'?' | b'[')) {
        return false;
    }
    wildcard(pattern, name, 0)
}

fn wildcard(p: &[u8], n: &[u8], depth: usize) -> bool {
    if depth > 64 {
        // Too many stars to decide cheaply: assume it could match.
        return true;
    }
    let (mut pi, mut ni) = (0, 0);
    while pi < p.len() {
        match p[pi] {
            b'*' => {
                while p.get(pi) == Some(&b'*') {
                    pi += 1;
                }
                if pi == p.len() {
                    return true;
                }
                let rest = &p[pi..];
                if !rest.iter().any(|c| matches!(c, b'*' | b'?' | b'[')) {
                    // `*.pub`: a literal rest matches only as the name's
                    // suffix (what trying every split point finds).
                    return n[ni..].ends_with(rest);
                }
                return (ni..=n.len()).any(|k| wildcard(rest, &n[k..], depth + 1));
            }
            b'?' => {
                if ni >= n.len() {
                    return false;
                }
                pi += 1;
                ni += 1;
            }
            b'[' => {
                let Some(close) = p[pi + 1..].iter().position(|&c| c == b']').map(|c| pi + 1 + c) else {
                    // No closing bracket: a literal `[`.
                    if n.get(ni) != Some(&b'[') {
                        return false;
                    }
                    pi += 1;
                    ni += 1;
                    continue;
                };
                let Some(&c) = n.get(ni) else { return false };
                if !class_matches(&p[pi + 1..close], c) {
                    return false;
                }
                pi = close + 1;
                ni += 1;
            }
            lit => {
                if n.get(ni) != Some(&lit) {
                    return false;
                }
                pi += 1;
                ni += 1;
            }
        }
    }
    ni == n.len()
}

/// A bracket expression's body (`a-z`, `!x`, `^x`) against one byte.
fn class_matches(body: &[u8], c: u8) -> bool {
    let (negate, body) = match body {
        [b'!' | b'^', rest @ ..] => (true, rest),
        _ => (false, body),
    };
    let mut hit = false;
    let mut i = 0;
    while i < body.len() {
        if body.get(i + 1) == Some(&b'-') && i + 2 < body.len() {
            hit |= (body[i]..=body[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= body[i] == c;
            i += 1;
        }
    }
    hit != negate
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    #[test]
    fn expansion_stops_when_the_expansions_are_used_up() {
        // 8^4 expansions: the first 64, then the walk ends.
        let mut seen = 0;
        assert!(!expand_braces(&"{a,b,c,d,e,f,g,h}".repeat(4), &mut |_| seen += 1));
        assert_eq!(seen, MAX_EXPANSIONS);
        // Deeper than the judge goes, 8^12: walked to the end, this would
        // never finish.
        assert!(!expand_braces(&"{a,b,c,d,e,f,g,h}".repeat(12), &mut |_| {}));
        assert!(!expand_braces(&std::format!("{}{}", "{a,b}".repeat(8), "x".repeat(EXPANSION_BYTES)), &mut |_| {}));
        let nested = "{a,{b,{c,{d,{e,{f,{g,{h,i}}}}}}}}".repeat(6);
        assert!(!expand_braces(&nested, &mut |_| {}));
        // Exactly the most there may be: complete.
        let mut seen = 0;
        assert!(expand_braces("{a,b,c,d,e,f,g,h}{a,b,c,d,e,f,g,h}", &mut |_| seen += 1));
        assert_eq!(seen, 64);
    }

    fn expansions(word: &str) -> Vec<String> {
        let mut out = Vec::new();
        expand_braces(word, &mut |w| out.push(w.to_string()));
        out
    }

    #[test]
    fn braces_expand_like_the_shell() {
        assert_eq!(expansions("~/.{ssh,aws}/x"), ["~/.ssh/x", "~/.aws/x"]);
        assert_eq!(expansions("/{etc,usr}"), ["/etc", "/usr"]);
        assert_eq!(expansions("a{b,c{d,e}}f"), ["abf", "acdf", "acef"]);
        assert_eq!(expansions("{a,b}{1,2}"), ["a1", "a2", "b1", "b2"]);
        assert_eq!(expansions("plain"), ["plain"]);
        assert_eq!(expansions("{single}"), ["{single}"]);
        assert!(!expand_braces("{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}", &mut |_| {}));
    }

    #[test]
    fn globs_reach_what_they_could_match() {
        assert!(could_reach("~/.ss?", "~/.ssh"));
        assert!(could_reach("~/.ss?/id_*", "~/.ssh"));
        assert!(could_reach("/*", "/etc/shadow"));
        assert!(could_reach("~/*", "~/Library/Keychains"));
        assert!(could_reach("/e[st]c/sha*", "/etc/shadow"));
        assert!(could_reach("~/.[a-z]sh", "~/.ssh"));
        // The benign twins.
        assert!(!could_reach("~/project/*.rs", "~/.ssh"));
        assert!(!could_reach("./build/*", "~/.ssh"));
        assert!(!could_reach("~/*", "~/.ssh"), "a leading * does not match a dot file");
        assert!(!could_reach("/e[!t]c/shadow", "/etc/shadow"));
    }

    #[test]
    fn glob_detection() {
        assert!(has_glob("/b?n/r[m]"));
        assert!(has_glob("*.txt"));
        assert!(!has_glob("[unclosed"));
        assert!(!has_glob("plain/path"));
        assert!(has_braces("~/.{ssh,aws}"));
        assert!(!has_braces("${HOME}"));
    }

    proptest::proptest! {
        /// The literal-head refusal never changes the answer of the
        /// component walk.
        #[test]
        fn the_quick_refusal_agrees_with_the_component_walk(
            pattern in "(/|~)?([a-c.]{0,2}[*?]?(\\[a-c\\])?/){0,4}[a-c*?.]{0,3}",
            prefix in "(/|~)?([a-c.]{1,2}/){0,4}[a-c.]{0,3}",
        ) {
            let walk = {
                let mut p = pattern.split('/');
                let mut q = prefix.split('/');
                loop {
                    match (p.next(), q.next()) {
                        (Some(pc), Some(qc)) if !component_matches(pc.as_bytes(), qc.as_bytes()) => break false,
                        (Some(_), Some(_)) => {}
                        _ => break true,
                    }
                }
            };
            proptest::prop_assert_eq!(could_reach(&pattern, &prefix), walk, "{} against {}", pattern, prefix);
        }

        /// A literal rest after `*` compared as a suffix says what trying
        /// every split point says (a reference matcher without it).
        #[test]
        fn the_literal_suffix_after_a_star_agrees_with_every_split(
            pattern in "[a-c.*?]{0,3}(\\[a-c\\])?[a-c.*]{0,4}",
            name in "[a-c.\\[\\]]{0,7}",
        ) {
            fn reference(p: &[u8], n: &[u8]) -> bool {
                match p.split_first() {
                    None => n.is_empty(),
                    Some((b'*', rest)) => (0..=n.len()).any(|k| reference(rest, &n[k..])),
                    Some((b'?', rest)) => !n.is_empty() && reference(rest, &n[1..]),
                    Some((b'[', rest)) => match rest.iter().position(|&c| c == b']') {
                        Some(close) => n.first().is_some_and(|&c| class_matches(&rest[..close], c))
                            && reference(&rest[close + 1..], &n[1..]),
                        None => n.first() == Some(&b'[') && reference(rest, &n[1..]),
                    },
                    Some((&lit, rest)) => n.first() == Some(&lit) && reference(rest, &n[1..]),
                }
            }
            proptest::prop_assert_eq!(
                wildcard(pattern.as_bytes(), name.as_bytes(), 0),
                reference(pattern.as_bytes(), name.as_bytes()),
                "{} against {}", pattern, name
            );
        }
    }
}
