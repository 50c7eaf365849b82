//! What a command line has changed so far — its working directory and its
//! variables — and its words expanded with it (docs/policy.md, "Shell
//! semantics"). Shared by the shell judge and the code judge.

use super::{Acc, Access, Reason, Stage, judge_path, resolve};
use crate::bundle::{Bundle, settings};
use crate::shell::{self, Command, input};
use crate::{glob, path};

/// Variables a command line may set and later use.
pub(super) const MAX_VARS: usize = 16;
/// Longest variable name kept.
pub(super) const VAR_NAME: usize = 32;
/// Longest variable value kept.
pub(super) const VAR_VALUE: usize = 512;
/// Downloaded files remembered.
pub(super) const WRITTEN: usize = 8;
/// Longest directory kept (working directory, `pushd` stack, written
/// files); a longer one is unknown.
pub(super) const DIR_MAX: usize = 1024;
/// `pushd` depth kept.
pub(super) const DIR_STACK: usize = 4;
/// Longest expanded word.
pub(super) const MAX_WORD: usize = 2048;
/// How deep strings found inside commands are judged as commands again.
pub(super) const MAX_NESTING: usize = 3;

/// A byte buffer on the stack whose unused part is never written (no
/// clearing of kilobytes per call).
pub(super) type Buf<const N: usize> = heapless::Vec<u8, N>;

/// A working directory: normalised, home folded. Its buffer is not
/// initialised until written (no 4 KiB clear per directory).
#[derive(Clone)]
pub(super) struct Dir {
    text: heapless::String<DIR_MAX>,
}

impl Dir {
    pub(super) const EMPTY: Dir = Dir { text: heapless::String::new() };

    /// Sets the directory; a text longer than [`DIR_MAX`] leaves it empty,
    /// which is "unknown", and returns false.
    pub(super) fn set(&mut self, text: &str) -> bool {
        self.text.clear();
        if self.text.push_str(text).is_err() {
            self.text.clear();
            return false;
        }
        true
    }

    pub(super) fn len(&self) -> usize {
        self.text.len()
    }

    pub(super) fn as_str(&self) -> &str {
        self.text.as_str()
    }
}

/// What the command line has changed so far.
pub(super) struct State<'b> {
    /// The working directory; empty when unknown (`cd -`, `cd $X`).
    pub(super) cwd: &'b mut Dir,
    /// The intent's working directory as given (the `$CWD` workspace root).
    pub(super) intent_cwd: &'b mut Dir,
    /// `pushd`'s stack.
    pub(super) stack: &'b mut heapless::Vec<Dir, DIR_STACK>,
    /// Something on the line set variables in a way this judge does not
    /// follow (`eval`, `source`, `read`, …): every variable is unknown.
    pub(super) tainted: bool,
    /// The working directory became unknown on the line (`cd -`, `eval`).
    pub(super) cwd_lost: bool,
    /// The line changed directory (`cd`, `pushd`, `popd`, an `eval` that
    /// may): the repository it is in is no longer known to be the
    /// workspace's.
    pub(super) moved: bool,
    /// Positional parameters may hold values not followed here (`sh -c
    /// '…' x y`, a function body).
    pub(super) positional_unknown: bool,
    /// Files the line wrote, resolved: downloads (`curl -o F`, `wget -O
    /// F`), redirections (`echo … > F`, `cat > F <<EOF`) and `tee F`.
    /// Running one of them runs code nobody judged.
    written: &'b mut heapless::Vec<Dir, WRITTEN>,
    /// More files were written than `written` holds: any of them may be
    /// the one run.
    written_overflow: bool,
    /// Variables set so far, oldest first.
    vars: &'b mut heapless::Vec<Var, MAX_VARS>,
}

/// The value of a variable set to what this judge cannot compute
/// (`D=$(cat list)`, `for d in "$X"`, `set -- $(ls)`): its uses are
/// unresolved, as a variable never set is, and a default (`${D:-x}`) is
/// not taken. NUL: no shell word or variable can hold one.
pub(super) const UNKNOWN_VALUE: &str = "\u{0}";

/// A variable the line set.
pub(super) struct Var {
    name: heapless::String<VAR_NAME>,
    value: heapless::String<VAR_VALUE>,
}

/// Declares `$name`, a [`State`] whose buffers are separate locals of the
/// caller: a struct of buffers built from constants is emitted as one
/// constant and cleared whole (23 KiB per command line); separate locals
/// are not, and nothing but their lengths is written.
macro_rules! state_on_stack {
    ($name:ident) => {
        let mut cwd = $crate::eval::line::Dir::EMPTY;
        let mut intent_cwd = $crate::eval::line::Dir::EMPTY;
        let mut stack = heapless::Vec::new();
        let mut written = heapless::Vec::new();
        let mut vars = heapless::Vec::new();
        let mut $name = $crate::eval::line::State::over(&mut cwd, &mut intent_cwd, &mut stack, &mut written, &mut vars);
    };
}
pub(super) use state_on_stack;

impl<'b> State<'b> {
    /// The state before the line's first command, over the given buffers
    /// (emptied): in no directory until [`State::start_in`].
    pub(super) fn over(
        cwd: &'b mut Dir,
        intent_cwd: &'b mut Dir,
        stack: &'b mut heapless::Vec<Dir, DIR_STACK>,
        written: &'b mut heapless::Vec<Dir, WRITTEN>,
        vars: &'b mut heapless::Vec<Var, MAX_VARS>,
    ) -> Self {
        cwd.text.clear();
        intent_cwd.text.clear();
        stack.clear();
        written.clear();
        vars.clear();
        State {
            cwd,
            intent_cwd,
            stack,
            tainted: false,
            cwd_lost: false,
            moved: false,
            positional_unknown: false,
            written,
            written_overflow: false,
            vars,
        }
    }

    /// Starts the line in the intent's working directory `cwd`.
    pub(super) fn start_in(&mut self, bundle: &Bundle<'_>, cwd: &str) {
        let _ = self.intent_cwd.set(cwd);
        let mut buf = path::PathBuf::new();
        if let Ok(dir) = resolve(bundle, cwd, "/", &mut buf)
            && !cwd.is_empty()
        {
            self.cwd_lost = !self.cwd.set(dir);
        }
    }

    pub(super) fn var(&self, name: &str) -> Option<&str> {
        self.vars.iter().rev().find(|v| v.name == name).map(|v| v.value.as_str())
    }

    /// Sets a variable. A value longer than this judge keeps forgets the
    /// variable instead (its uses become unresolved), never a cut value.
    pub(super) fn set_var(&mut self, name: &str, value: &str) {
        if name.len() > VAR_NAME {
            return;
        }
        let existing = self.vars.iter().position(|v| v.name == name);
        if value.len() > VAR_VALUE {
            if let Some(i) = existing {
                self.vars.remove(i);
            }
            return;
        }
        let slot = match existing {
            Some(i) => i,
            None => {
                if self.vars.is_full() {
                    // Full: the oldest is forgotten (its uses become
                    // unresolved).
                    self.vars.remove(0);
                }
                // Not full now: the push succeeds.
                let _ = self.vars.push(Var { name: heapless::String::new(), value: heapless::String::new() });
                self.vars.len() - 1
            }
        };
        if let Some(var) = self.vars.get_mut(slot) {
            var.name.clear();
            let _ = var.name.push_str(name);
            var.value.clear();
            let _ = var.value.push_str(value);
        }
    }

    /// The directory a relative path resolves against: the working
    /// directory, or `/` when it is not known.
    pub(super) fn base(&self) -> &str {
        if self.cwd.len() > 0 { self.cwd.as_str() } else { "/" }
    }

    /// Remembers a file the line wrote (resolved). A path that does not
    /// resolve, or one more than fits, makes every later script opaque.
    pub(super) fn wrote(&mut self, bundle: &Bundle<'_>, raw: &str) {
        let mut buf = path::PathBuf::new();
        match resolve(bundle, raw, self.base(), &mut buf) {
            Ok(resolved) if !self.written.is_full() && resolved.len() <= DIR_MAX => {
                let mut dir = Dir::EMPTY;
                dir.set(resolved);
                let _ = self.written.push(dir);
            }
            _ => self.written_overflow = true,
        }
    }

    /// Whether `raw` (resolved) may be a file the line wrote.
    pub(super) fn was_written(&self, bundle: &Bundle<'_>, raw: &str) -> bool {
        if self.written_overflow {
            return true;
        }
        let mut buf = path::PathBuf::new();
        match resolve(bundle, raw, self.base(), &mut buf) {
            Ok(resolved) => self.written.iter().any(|d| d.as_str() == resolved),
            Err(_) => true,
        }
    }

    pub(super) fn unset_var(&mut self, name: &str) {
        if let Some(var) = self.vars.iter_mut().find(|v| v.name == name) {
            var.value.clear();
            // An unset variable expands to nothing, which is known.
        }
    }
}

/// Words joined by single spaces into a fixed buffer. A word that does not
/// fit is left out, and `complete` says so.
pub(super) struct Joined<const N: usize> {
    text: heapless::String<N>,
    /// Every word pushed fitted.
    pub(super) complete: bool,
}

impl<const N: usize> Joined<N> {
    /// Nothing yet.
    pub(super) fn new() -> Self {
        Joined { text: heapless::String::new(), complete: true }
    }

    /// Appends `word` (after a space, unless it is the first).
    pub(super) fn push(&mut self, word: &str) {
        let sep = if self.text.is_empty() { "" } else { " " };
        if self.text.len() + sep.len() + word.len() > N {
            self.complete = false;
            return;
        }
        // Both fit: checked above.
        let _ = self.text.push_str(sep);
        let _ = self.text.push_str(word);
    }

    /// The joined text.
    pub(super) fn as_str(&self) -> &str {
        self.text.as_str()
    }
}

/// A word after expansion, and whether some part of it is unknown.
pub(super) struct Expanded<'o> {
    pub(super) text: &'o str,
    pub(super) unresolved: bool,
}

/// Expands `$NAME`, `${NAME}` and `${NAME:-default}` in `word` with what
/// the line set, `HOME` (`~`), `PWD` and `TMPDIR`. An unknown variable, a
/// command substitution left in the word (`$(…)`, backticks) or a cut
/// makes the result unresolved; unknown references stay as written.
pub(super) fn expand<'o>(word_text: &'o str, state: &State, out: &'o mut Buf<MAX_WORD>) -> Expanded<'o> {
    expand_with(word_text, state, false, out)
}

/// [`expand`] for judging a path: what cannot be known (an unknown
/// variable, a command substitution) becomes `*` — it could be anything —
/// so that `/proc/$(pgrep x)/environ` is judged as `/proc/*/environ`.
pub(super) fn expand_as_pattern<'o>(word_text: &'o str, state: &State, out: &'o mut Buf<MAX_WORD>) -> Expanded<'o> {
    expand_with(word_text, state, true, out)
}

fn expand_with<'o>(
    word_text: &'o str,
    state: &State,
    unknown_as_glob: bool,
    out: &'o mut Buf<MAX_WORD>,
) -> Expanded<'o> {
    let b = word_text.as_bytes();
    // Nothing to expand (no `$`, no backtick, no `~+` or `~-`) and short
    // enough to fit: the word is its own expansion.
    if b.len() <= MAX_WORD
        && !b.iter().any(|&c| c == b'$' || c == b'`')
        && !(word_text.starts_with("~+") || word_text.starts_with("~-"))
    {
        return Expanded { text: word_text, unresolved: false };
    }
    expand_copying(word_text, state, unknown_as_glob, out)
}

/// [`expand_with`] for a word with something to expand, copied into `out`.
fn expand_copying<'o>(
    word_text: &str,
    state: &State,
    unknown_as_glob: bool,
    out: &'o mut Buf<MAX_WORD>,
) -> Expanded<'o> {
    let b = word_text.as_bytes();
    let mut len = 0;
    let mut unresolved = false;
    out.clear();
    let mut push = |bytes: &[u8], len: &mut usize, unresolved: &mut bool| {
        if out.extend_from_slice(bytes).is_err() {
            *unresolved = true;
        }
        *len = out.len();
    };
    let mut i = 0;
    // `~+` is the working directory, `~-` the previous one.
    if let Some(rest) = word_text.strip_prefix("~+").filter(|r| r.is_empty() || r.starts_with('/')) {
        if state.cwd.len() > 0 {
            push(state.cwd.as_str().as_bytes(), &mut len, &mut unresolved);
        } else {
            unresolved = true;
            push(b"~+", &mut len, &mut unresolved);
        }
        i = word_text.len() - rest.len();
    } else if word_text.strip_prefix("~-").is_some_and(|r| r.is_empty() || r.starts_with('/')) {
        unresolved = true;
    }
    while i < b.len() {
        if b[i] == b'`' {
            unresolved = true;
        }
        if b[i] != b'$' {
            push(&b[i..i + 1], &mut len, &mut unresolved);
            i += 1;
            continue;
        }
        // `$(`: a substitution whose output is not known — unless it prints
        // a path computed from the line (`$(pwd)`, `$(realpath X)`).
        if b.get(i + 1) == Some(&b'(') {
            let mut depth = 0usize;
            let mut j = i + 1;
            while j < b.len() {
                match b[j] {
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            let mut printed = Buf::<MAX_WORD>::new();
            if let Some(path) = word_text.get(i + 2..j).and_then(|inner| printed_path(inner, state, &mut printed)) {
                push(path.as_bytes(), &mut len, &mut unresolved);
                i = j + 1;
                continue;
            }
            unresolved = true;
            if unknown_as_glob {
                push(b"*", &mut len, &mut unresolved);
                i = j + 1;
            } else {
                push(&b[i..i + 1], &mut len, &mut unresolved);
                i += 1;
            }
            continue;
        }
        // `${X:-d}`: an empty value takes the default too (`${X-d}` only an
        // unset one).
        let mut empty_takes_default = false;
        let (name, default, end) = if b.get(i + 1) == Some(&b'{') {
            let Some(close) = b[i + 2..].iter().position(|&c| c == b'}').map(|c| i + 2 + c) else {
                unresolved = true;
                push(&b[i..], &mut len, &mut unresolved);
                break;
            };
            let inner = &word_text[i + 2..close];
            match inner.find([':', '-', '=', '+', '?', '#', '%', '/', '^', ',', '@', '!', '[']) {
                // `${X:-d}`, `${X-d}`, `${X:=d}`, `${X=d}`: a default.
                Some(at)
                    if at > 0
                        && matches!(inner[at..].trim_start_matches(':').as_bytes().first(), Some(b'-' | b'=')) =>
                {
                    let default = inner[at..].trim_start_matches(':').get(1..);
                    empty_takes_default = inner[at..].starts_with(':');
                    (&inner[..at], default, close + 1)
                }
                // `${X:?msg}`, `${X?msg}`: the value (unset, the shell stops
                // with the message and runs nothing).
                Some(at) if at > 0 && inner[at..].trim_start_matches(':').starts_with('?') => {
                    (&inner[..at], None, close + 1)
                }
                // Any other operator (`${X/a/b}`, `${X#p}`, `${!X}`, `${#X}`,
                // `${X:1}`) computes a value this judge does not: unknown.
                Some(_) => ("\u{1}", None, close + 1),
                None => (inner, None, close + 1),
            }
        } else if b.get(i + 1).is_some_and(|c| c.is_ascii_digit() || matches!(c, b'@' | b'*' | b'#')) {
            // `$1` … `$9`, `$@`, `$*`, `$#`: one character.
            (&word_text[i + 1..i + 2], None, i + 2)
        } else {
            let mut end = i + 1;
            while b.get(end).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                end += 1;
            }
            (&word_text[i + 1..end], None, end)
        };
        let known = match name {
            "" | "\u{1}" => None,
            _ if state.tainted && !matches!(name, "HOME" | "TMPDIR" | "TMP" | "TEMP") => None,
            "HOME" => Some("~"),
            // The line's value when it set one, else the usual.
            "TMPDIR" | "TMP" | "TEMP" => Some(state.var(name).filter(|_| !state.tainted).unwrap_or("/tmp")),
            "PWD" if state.cwd.len() > 0 => Some(state.cwd.as_str()),
            "USER" | "LOGNAME" => Some("user"),
            // Positional parameters: what `set --` gave; none were given
            // to a command line (they expand to nothing), unless a `sh -c`
            // with operands or a function may have set them.
            "0" => None,
            p if p.len() == 1 && (p.as_bytes()[0].is_ascii_digit() || matches!(p, "@" | "*" | "#")) => {
                if state.positional_unknown {
                    None
                } else {
                    Some(state.var(p).unwrap_or(if p == "#" { "0" } else { "" }))
                }
            }
            other => state.var(other),
        };
        let (known, default) = if known == Some(UNKNOWN_VALUE) { (None, None) } else { (known, default) };
        match (known, default) {
            (Some(""), Some(d)) if empty_takes_default => push(d.as_bytes(), &mut len, &mut unresolved),
            (Some(value), _) => push(value.as_bytes(), &mut len, &mut unresolved),
            (None, Some(d)) => push(d.as_bytes(), &mut len, &mut unresolved),
            _ => {
                unresolved |= !name.is_empty();
                if unknown_as_glob && !name.is_empty() {
                    push(b"*", &mut len, &mut unresolved);
                } else {
                    push(&b[i..end], &mut len, &mut unresolved);
                }
            }
        }
        i = end.max(i + 1);
    }
    let _ = len;
    Expanded { text: core::str::from_utf8(out).unwrap_or(""), unresolved }
}

/// What the command substitution `$(inner)` prints when it is a path
/// computed from what the line knows, into `out`: `pwd` (the working
/// directory, when known), `git rev-parse --show-toplevel` (the workspace:
/// the intent's working directory, before any `cd`), `realpath X`,
/// `readlink -f`/`-e`/`-m X` and `cd X && pwd` (`X` itself: paths are
/// judged as written, links not followed), `dirname X` (`X` without its
/// last component) — `X` one word with nothing unknown to expand.
/// Anything else: `None`.
pub(super) fn printed_path<'o>(inner: &str, state: &State, out: &'o mut Buf<MAX_WORD>) -> Option<&'o str> {
    fn copy<'o>(out: &'o mut Buf<MAX_WORD>, text: &str) -> Option<&'o str> {
        out.clear();
        out.extend_from_slice(text.as_bytes()).ok()?;
        core::str::from_utf8(out).ok()
    }
    let inner = inner.trim();
    // `cd X && pwd`, `cd X; pwd`: `X` one word, not `-` (the previous
    // directory) and, with `CDPATH` set, not a bare name (found elsewhere).
    if let Some(middle) = inner.strip_prefix("cd ").and_then(|m| m.strip_suffix("pwd")) {
        let dir = middle.trim_end().strip_suffix("&&").or_else(|| middle.trim_end().strip_suffix(';'))?.trim();
        let cdpath = state.var("CDPATH").is_some_and(|v| !v.is_empty()) && !dir.starts_with(['/', '~', '.', '$']);
        if dir.is_empty() || dir.starts_with('-') || dir.bytes().any(|b| b.is_ascii_whitespace()) || cdpath {
            return None;
        }
        let mut expanded = Buf::<MAX_WORD>::new();
        return copy(out, known_word(dir, state, &mut expanded)?);
    }
    let mut words = inner.split_ascii_whitespace();
    let program = words.next()?;
    let (options, operands): (heapless::Vec<&str, 4>, heapless::Vec<&str, 2>) = {
        let (mut options, mut operands) = (heapless::Vec::new(), heapless::Vec::new());
        let mut options_end = false;
        for w in words {
            if w == "--" && !options_end {
                options_end = true;
            } else if w.starts_with('-') && !options_end {
                options.push(w).ok()?
            } else {
                operands.push(w).ok()?
            }
        }
        (options, operands)
    };
    let canonical = |o: &&str| {
        o.starts_with("--canonicalize") || !o.starts_with("--") && o[1..].bytes().all(|c| b"femnqsvz".contains(&c))
    };
    match (program, operands.as_slice()) {
        ("pwd", []) if options.iter().all(|o| matches!(*o, "-L" | "-P")) && state.cwd.len() > 0 => {
            copy(out, state.cwd.as_str())
        }
        // The workspace's repository, while the line has not left it.
        ("git", ["rev-parse"])
            if options.as_slice() == ["--show-toplevel"] && state.intent_cwd.len() > 0 && !state.moved =>
        {
            copy(out, state.intent_cwd.as_str())
        }
        ("realpath", [x]) if options.iter().all(|o| matches!(*o, "-e" | "-m" | "-s" | "-q" | "-L" | "-P")) => {
            let mut expanded = Buf::<MAX_WORD>::new();
            copy(out, known_word(x, state, &mut expanded)?)
        }
        ("readlink", [x])
            if !options.is_empty()
                && options.iter().all(canonical)
                && options.iter().any(|o| o.starts_with("--canonicalize") || o.contains(['f', 'e', 'm'])) =>
        {
            let mut expanded = Buf::<MAX_WORD>::new();
            copy(out, known_word(x, state, &mut expanded)?)
        }
        ("dirname", [x]) if options.is_empty() => {
            let mut expanded = Buf::<MAX_WORD>::new();
            let x = known_word(x, state, &mut expanded)?;
            let trimmed = x.trim_end_matches('/');
            copy(
                out,
                match trimmed.rfind('/') {
                    Some(0) => "/",
                    Some(at) => &trimmed[..at],
                    None if x.starts_with('/') => "/",
                    None => ".",
                },
            )
        }
        _ => None,
    }
}

/// `word` (in plain double or single quotes or none) expanded, when
/// nothing in it is unknown.
pub(super) fn known_word<'o>(word: &'o str, state: &State, out: &'o mut Buf<MAX_WORD>) -> Option<&'o str> {
    let unquoted =
        ['"', '\''].iter().find_map(|&q| word.strip_prefix(q).and_then(|w| w.strip_suffix(q))).unwrap_or(word);
    if unquoted.is_empty() || unquoted.bytes().any(|c| matches!(c, b'"' | b'\'' | b'\\' | b'`' | b'*' | b'?' | b'[')) {
        return None;
    }
    let expanded = expand(unquoted, state, out);
    (!expanded.unresolved).then_some(expanded.text)
}

/// Whether a word is written as a path.
pub(super) fn looks_like_path(word: &str) -> bool {
    if is_distinguished_name(word) {
        return false;
    }
    word.starts_with('/')
        || word.starts_with('~')
        || word.starts_with("$HOME")
        || word.starts_with("${HOME}")
        || word.starts_with("./")
        || word.starts_with("../")
        || word == "."
        || word == ".."
        || (has_byte(word, b'/') && scheme_separator(word).is_none())
        || word.starts_with(".env")
}

/// Whether `text` holds `byte` (ASCII): a plain byte loop, cheaper than
/// `contains`'s searcher for the short words of a command line.
pub(super) fn has_byte(text: &str, byte: u8) -> bool {
    text.bytes().any(|b| b == byte)
}

/// Where the first `://` of `text` starts: a byte search (a searcher
/// for a three-byte needle costs more to set up than a word takes to scan).
pub(super) fn scheme_separator(text: &str) -> Option<usize> {
    text.as_bytes().windows(3).position(|w| w == b"://")
}

/// An X.500 distinguished name in OpenSSL's slash form (`/CN=localhost`,
/// `/C=US/O=Acme/CN=dev`): every component is `KEY=value` with a
/// letters-only key. It names a certificate subject, not a file.
fn is_distinguished_name(word: &str) -> bool {
    let Some(rest) = word.strip_prefix('/') else { return false };
    !rest.is_empty()
        && rest.split('/').all(|component| {
            component.split_once('=').is_some_and(|(key, _)| {
                !key.is_empty() && key.len() <= 24 && key.bytes().all(|c| c.is_ascii_alphabetic())
            })
        })
}

/// [`judge_path_text`] that also gives the path it judged, resolved into
/// `out`, when `text` is one path (no braces to expand); `None` when it is
/// several (each judged as in [`judge_path_text`]).
pub(super) fn judge_path_text_once<'o>(
    bundle: &Bundle<'_>,
    text: &'o str,
    op: Access,
    state: &State,
    acc: &mut Acc,
    out: &'o mut path::PathBuf,
) -> Option<Result<&'o str, path::PathError>> {
    if !glob::expands_to_itself(text) {
        judge_path_text(bundle, text, op, state, acc);
        return None;
    }
    Some(judge_one_path(bundle, text, op, state, acc, out))
}

/// Resolves `text` (braces expanded) against the current directory and
/// judges each result.
pub(super) fn judge_path_text(bundle: &Bundle<'_>, text: &str, op: Access, state: &State, acc: &mut Acc) {
    let mut each = |alternative: &str| {
        let _ = judge_one_path(bundle, alternative, op, state, acc, &mut path::PathBuf::new());
    };
    if !glob::expand_braces(text, &mut each) {
        acc.raise(bundle.decision(settings::UNRESOLVED), Stage::Tripwire, Reason::Unresolved, None);
    }
}

/// One path, resolved into `out` against the current directory (`/` when
/// it is not known) and judged when it resolves; the resolution.
fn judge_one_path<'o>(
    bundle: &Bundle<'_>,
    text: &'o str,
    op: Access,
    state: &State,
    acc: &mut Acc,
    out: &'o mut path::PathBuf,
) -> Result<&'o str, path::PathError> {
    let resolved = resolve(bundle, text, state.base(), out);
    if let Ok(path) = resolved {
        judge_path(bundle, path, op, acc);
    }
    resolved
}

/// Whether a previous command in a pipeline writes a literal the judge can
/// read (`echo …`, `printf` without escapes, `cat <<EOF`): the literal, in
/// `out` (cleared first).
pub(super) fn literal_producer<'o>(previous: &Command<'_>, out: &'o mut Buf<{ shell::MAX_BYTES }>) -> Option<&'o str> {
    out.clear();
    let program = previous.program();
    if let Some(here) = previous.here_text()
        && program == "cat"
    {
        let n = here.len().min(out.capacity());
        // Within capacity.
        let _ = out.extend_from_slice(&here.as_bytes()[..n]);
        return Some(core::str::from_utf8(out).unwrap_or(""));
    }
    if !matches!(program, "echo" | "printf") {
        return None;
    }
    for w in previous.operands() {
        if out.is_empty() && w.starts_with('-') {
            if w.contains('e') {
                // `echo -e`: escapes are decoded.
                return None;
            }
            continue;
        }
        if program == "printf" && w.contains('\\') || w.contains('$') {
            return None;
        }
        if !out.is_empty() && out.push(b' ').is_err() {
            return None;
        }
        out.extend_from_slice(w.as_bytes()).ok()?;
    }
    Some(core::str::from_utf8(out).unwrap_or(""))
}

/// Whether the command reads its standard input from a pipe.
pub(super) fn piped(cmd: &Command<'_>) -> bool {
    cmd.input() & input::PIPE != 0
}

/// Whether a process substitution is one of its operands.
pub(super) fn process_substitution(cmd: &Command<'_>) -> bool {
    cmd.input() & input::PROCESS_SUBSTITUTION != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A word returned as it is expands exactly as when copied.
        #[test]
        fn a_word_without_expansions_is_its_own_expansion(
            word in "[a-z/.~+$`{}:-]{0,12}",
            pattern: bool,
            tainted: bool,
        ) {
            state_on_stack!(state);
            state.tainted = tainted;
            let (mut fast, mut slow) = (Buf::<MAX_WORD>::new(), Buf::<MAX_WORD>::new());
            let quick = expand_with(&word, &state, pattern, &mut fast);
            let copied = expand_copying(&word, &state, pattern, &mut slow);
            proptest::prop_assert_eq!(quick.text, copied.text);
            proptest::prop_assert_eq!(quick.unresolved, copied.unresolved);
        }
    }
}
