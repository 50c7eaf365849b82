//! Code run by shells and interpreters (docs/policy.md, "Code run by
//! interpreters"): inline code (`python -c`, `perl -e`, an `awk` program,
//! `vim -c ':!…'`, `git -c alias.x='!…'`), here-documents and literals piped
//! into them, and code nobody can read here (decoded, downloaded, process
//! substitution, another program's output).
//!
//! Code is judged three ways: the policy's `code` rules over its text
//! (process spawning, deletion, sockets, dynamic evaluation …); every
//! string literal in it as what it would be used as — a URL, a path, or a
//! command line judged again as shell; and, for editors and debuggers, the
//! text after `!` (or `shell`) as a command line.

use super::line::{self as sh, Buf, MAX_NESTING, State, judge_path_text, literal_producer, piped};
use super::{Acc, Access, Reason, Request, Stage, scan, url_tripwire};
use crate::bundle::{Bundle, FieldClass, settings};
use crate::interpreter::{self, Language, Source};
use crate::shell::{self, Command};

/// How a command line found in code is judged (the shell judge's
/// `judge_line`: bundle, line, state, posture, nesting, verdict).
pub(super) type LineJudge = fn(&Bundle<'_>, &str, &mut State, bool, usize, &mut Acc);

/// Judges the code `cmd` runs, if it runs any.
#[allow(clippy::too_many_arguments)]
pub(super) fn judge_command_code(
    bundle: &Bundle<'_>,
    program: &str,
    cmd: &Command<'_>,
    previous: Option<&Command<'_>>,
    state: &mut State,
    nesting: usize,
    judge_line: LineJudge,
    acc: &mut Acc,
) {
    let family = interpreter::family(program);
    if program == "git" {
        git_config_commands(bundle, cmd, state, nesting, judge_line, acc);
        return;
    }
    if program == "find" {
        find_exec(bundle, cmd, state, nesting, judge_line, acc);
        return;
    }
    if command_options(bundle, program, cmd, state, nesting, judge_line, acc) {
        return;
    }
    let is_shell = shell::is_shell(program);
    let sources_file = matches!(program, "source" | ".");
    if !(is_shell || sources_file || interpreter::is_interpreter(family) || family == "sed") {
        return;
    }
    if sh::process_substitution(cmd) {
        // `bash <(curl …)`, `source <(…)`: code from another program.
        acc.raise(bundle.decision(settings::OPAQUE_CODE), Stage::Tripwire, Reason::OpaqueCode, None);
    }
    if is_shell || sources_file {
        // `-c` strings, here-documents and literal pipes were parsed as
        // commands by the tokenizer; what is left is code from a program.
        let has_c = cmd.operands().any(|w| w.starts_with('-') && !w.starts_with("--") && w.contains('c'));
        if has_c && cmd.operands().skip_while(|w| !(w.starts_with('-') && w.contains('c'))).nth(2).is_some() {
            // `sh -c '… $1 …' name args`: the string's positional parameters
            // are its operands, which this judge does not map.
            state.positional_unknown = true;
        }
        if has_c && cmd.operands().any(|w| w.contains("$(") || w.contains('`')) {
            // `bash -c "$(…)"`: the script is another program's output.
            acc.raise(bundle.decision(settings::UNRESOLVED), Stage::Tripwire, Reason::Unresolved, None);
        }
        let script = cmd.operands().find(|w| !w.starts_with('-'));
        // `… | xargs -I{} sh -c '{}'`: the script is what the producer wrote.
        let from_xargs = has_c && cmd.wrappers() & crate::shell::WRAP_XARGS != 0;
        if is_shell && (from_xargs || !has_c && cmd.here_text().is_none() && (script.is_none() || script == Some("-")))
        {
            stdin_code(bundle, cmd, previous, state, nesting, false, judge_line, acc);
        }
        return;
    }
    let language = interpreter::language(family);
    let mut pieces: [&str; 8] = [""; 8];
    let mut count = 0;
    let source = interpreter::inline_code(program, &mut cmd.operands(), &mut |code| {
        if count < pieces.len() {
            pieces[count] = code;
            count += 1;
        }
    });
    for piece in &pieces[..count] {
        if piece.contains("$(") {
            // The code is computed when the line runs (`python -c
            // "$(… | base64 -d)"`): nobody can read it here.
            acc.raise(bundle.decision(settings::UNRESOLVED), Stage::Tripwire, Reason::Unresolved, None);
        }
        judge_code(bundle, piece, language, state, nesting, judge_line, acc);
    }
    match source {
        Source::Encoded => {
            acc.raise(bundle.decision(settings::OPAQUE_CODE), Stage::Tripwire, Reason::OpaqueCode, None);
        }
        Source::Stdin | Source::Script("-") => match cmd.here_text() {
            Some(here) => judge_code(bundle, here, language, state, nesting, judge_line, acc),
            None => stdin_code(bundle, cmd, previous, state, nesting, true, judge_line, acc),
        },
        Source::Script(_) | Source::Inline | Source::None => {}
    }
}

/// A shell or interpreter reading its program from standard input: a
/// literal producer is judged as that code; a decoder or downloader feeding
/// it is opaque; any other producer is unresolved.
#[allow(clippy::too_many_arguments)]
fn stdin_code(
    bundle: &Bundle<'_>,
    cmd: &Command<'_>,
    previous: Option<&Command<'_>>,
    state: &mut State,
    nesting: usize,
    interpreter_code: bool,
    judge_line: LineJudge,
    acc: &mut Acc,
) {
    if !piped(cmd) {
        return;
    }
    let Some(producer) = previous else { return };
    let mut literal = Buf::<{ shell::MAX_BYTES }>::new();
    if let Some(text) = literal_producer(producer, &mut literal) {
        if interpreter_code {
            judge_code(bundle, text, Language::Script, state, nesting, judge_line, acc);
        }
        // A shell's literal was parsed as commands by the tokenizer.
        return;
    }
    let from = interpreter::family(producer.program());
    let (setting, reason) = if interpreter::transforms_data(from) || interpreter::transforms_data(producer.program()) {
        (settings::OPAQUE_CODE, Reason::OpaqueCode)
    } else {
        (settings::UNRESOLVED, Reason::Unresolved)
    };
    acc.raise(bundle.decision(setting), Stage::Tripwire, reason, None);
}

/// Judges one piece of code.
pub(super) fn judge_code(
    bundle: &Bundle<'_>,
    code: &str,
    language: Language,
    state: &mut State,
    nesting: usize,
    judge_line: LineJudge,
    acc: &mut Acc,
) {
    scan(bundle, FieldClass::Code, code, &mut acc.rules);
    if nesting >= MAX_NESTING {
        // Code inside code inside code …: deeper than this judge follows.
        acc.raise(bundle.decision(settings::UNRESOLVED), Stage::Tripwire, Reason::Unresolved, None);
        return;
    }
    match language {
        Language::Shell => judge_line(bundle, code, state, true, nesting + 1, acc),
        Language::Editor => {
            for command in code.split(['\n', '|']) {
                let command = command.trim().trim_start_matches(':').trim_start();
                let shell_text = command
                    .strip_prefix('!')
                    .or_else(|| command.strip_prefix("shell "))
                    .or_else(|| command.strip_prefix("platform shell "))
                    .or_else(|| command.strip_prefix("call system"));
                if let Some(text) = shell_text {
                    judge_line(bundle, text.trim(), state, true, nesting + 1, acc);
                }
            }
        }
        Language::Script => {}
    }
    for_each_literal(code, &mut |literal| judge_literal(bundle, literal, state, nesting, judge_line, acc));
    // Code that deletes: each path it names is judged as `rm -rf` of it, so
    // that the policy's deletion rules apply (`shutil.rmtree('/home/u')`).
    if deletes(code) && nesting < MAX_NESTING {
        let mut targets = 0;
        for_each_literal(code, &mut |literal| {
            // The home directory's variable read by the code is the home.
            let literal = match literal.trim() {
                "HOME" | "USERPROFILE"
                    if code.contains("environ") || code.contains("getenv") || code.contains("ENV") =>
                {
                    "~"
                }
                other => other,
            };
            let path_like = sh::looks_like_path(literal)
                || !literal.is_empty() && literal.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
            if path_like && !literal.contains(['\'', ' ', '\n']) {
                targets += 1;
                let mut line = [0u8; 512];
                let mut n = 0;
                if push_bytes(&mut line, &mut n, b"rm -rf '")
                    && push_bytes(&mut line, &mut n, literal.as_bytes())
                    && push_bytes(&mut line, &mut n, b"'")
                    && let Ok(text) = core::str::from_utf8(&line[..n])
                {
                    // What will run: known only inside the workspace.
                    judge_line(bundle, text, state, true, nesting + 1, acc);
                }
            }
        });
        if targets == 0 {
            // It deletes, and what is computed at run time.
            acc.raise(bundle.decision(settings::UNRESOLVED), Stage::Tripwire, Reason::Unresolved, None);
        }
    }
}

/// Whether code calls a file-deletion API (any language).
fn deletes(code: &str) -> bool {
    [
        "rmtree",
        "rm_rf",
        "rm_r",
        "rmSync",
        "rmdirSync",
        "unlinkSync",
        "unlink",
        "os.remove",
        "RemoveAll",
        "rimraf",
        "Remove-Item",
        "File.delete",
        "remove_tree",
        "fs.rm(",
        "removedirs",
        "FileUtils.rm",
    ]
    .iter()
    .any(|api| code.contains(api))
}

/// One string literal found in code: a URL, a path, or a command line.
fn judge_literal(
    bundle: &Bundle<'_>,
    literal: &str,
    state: &mut State,
    nesting: usize,
    judge_line: LineJudge,
    acc: &mut Acc,
) {
    let literal = literal.trim();
    if literal.is_empty() {
        return;
    }
    if literal.contains("://") && !literal.contains(' ') {
        if literal.starts_with("http://") || literal.starts_with("https://") {
            url_tripwire(bundle, literal, Request::Read, acc);
        } else {
            scan(bundle, FieldClass::Url, literal, &mut acc.rules);
        }
        return;
    }
    if sh::looks_like_path(literal) && !literal.contains(' ') {
        judge_path_text(bundle, literal, Access::Any, state, acc);
        return;
    }
    if literal.contains(' ') || literal.contains(';') {
        judge_line(bundle, literal, state, false, nesting + 1, acc);
    }
}

/// Calls `each` with the body of every quoted string in `code` (`'…'`,
/// `"…"`, `` `…` ``), escapes left as written.
fn for_each_literal<'a>(code: &'a str, each: &mut dyn FnMut(&'a str)) {
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let q = b[i];
        if !matches!(q, b'\'' | b'"' | b'`') {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        while j < b.len() && b[j] != q {
            if b[j] == b'\\' {
                j += 1;
            }
            j += 1;
        }
        if let Some(body) = code.get(start..j.min(b.len())) {
            each(body);
        }
        i = j + 1;
    }
}

/// `git -c alias.x='!cmd'`, `git -c core.sshCommand=…`: configuration
/// values git runs as commands.
fn git_config_commands(
    bundle: &Bundle<'_>,
    cmd: &Command<'_>,
    state: &mut State,
    nesting: usize,
    judge_line: LineJudge,
    acc: &mut Acc,
) {
    let mut ops = cmd.operands();
    while let Some(w) = ops.next() {
        let setting = if w == "-c" { ops.next() } else { w.strip_prefix("-c").filter(|s| s.contains('=')) };
        let Some((key, value)) = setting.and_then(|s| s.split_once('=')) else { continue };
        let key = key.to_ascii_lowercase_bytes();
        let runs = value.starts_with('!')
            || [
                b"sshcommand".as_slice(),
                b"pager",
                b"editor",
                b"askpass",
                b"fsmonitor",
                b"hookspath",
                b"textconv",
                b"command",
            ]
            .iter()
            .any(|k| key.ends_with(k));
        if runs && nesting < MAX_NESTING {
            judge_line(bundle, value.trim_start_matches('!'), state, true, nesting + 1, acc);
        }
    }
}

/// Options whose value is a command the program runs: `rsync -e`, `ssh -o
/// ProxyCommand=`, `tar --to-command=`/`-I`/`--use-compress-program=`,
/// `zip -TT`, `make --eval` recipes. Returns whether the program is one of
/// these.
fn command_options(
    bundle: &Bundle<'_>,
    program: &str,
    cmd: &Command<'_>,
    state: &mut State,
    nesting: usize,
    judge_line: LineJudge,
    acc: &mut Acc,
) -> bool {
    let (takes_value, attached): (&[&str], &[&str]) = match program {
        "rsync" => (&["-e", "--rsh"], &["--rsh="]),
        "ssh" | "scp" | "sftp" => (&["-o"], &["-o"]),
        "tar" => (
            &["-I", "--to-command", "--use-compress-program"],
            &[
                "--to-command=",
                "--use-compress-program=",
                "--checkpoint-action=exec=",
                "--info-script=",
                "--new-volume-script=",
            ],
        ),
        "zip" => (&["-TT", "--unzip-command"], &["--unzip-command="]),
        "make" | "gmake" => (&["--eval", "-E"], &["--eval="]),
        _ => return false,
    };
    let mut ops = cmd.operands();
    while let Some(w) = ops.next() {
        let value = if takes_value.contains(&w) {
            ops.next()
        } else {
            attached.iter().find_map(|prefix| w.strip_prefix(prefix)).filter(|v| !v.is_empty())
        };
        let Some(mut value) = value else { continue };
        if matches!(program, "ssh" | "scp" | "sftp") {
            // Only the options that run a command.
            let lower = value.to_ascii_lowercase_bytes();
            let runs = [b"proxycommand".as_slice(), b"localcommand", b"knownhostscommand"]
                .iter()
                .any(|k| lower.starts_with(k));
            match (runs, value.split_once(['=', ' '])) {
                (true, Some((_, command))) => value = command,
                _ => continue,
            }
        }
        if matches!(program, "make" | "gmake") {
            // A recipe: what follows `;` on the rule line, and tabbed lines.
            value = value.split_once(';').map_or(value, |(_, recipe)| recipe);
        }
        if nesting < MAX_NESTING {
            judge_line(bundle, value.trim().trim_start_matches('@'), state, true, nesting + 1, acc);
        }
    }
    true
}

/// `find … -exec CMD … ;`: the command find runs for each match.
fn find_exec(
    bundle: &Bundle<'_>,
    cmd: &Command<'_>,
    state: &mut State,
    nesting: usize,
    judge_line: LineJudge,
    acc: &mut Acc,
) {
    let mut ops = cmd.operands().peekable();
    while let Some(w) = ops.next() {
        if !matches!(w, "-exec" | "-execdir" | "-ok" | "-okdir") {
            continue;
        }
        let mut line = [0u8; shell::MAX_BYTES];
        let mut n = 0;
        for part in ops.by_ref() {
            if matches!(part, ";" | "+") {
                break;
            }
            // Each word as one word again: quoted when it holds anything
            // the shell would split or interpret.
            let plain = part.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_./{}=+,:@%~".contains(&c));
            if n > 0 && !push_bytes(&mut line, &mut n, b" ") {
                break;
            }
            let complete = if plain {
                push_bytes(&mut line, &mut n, part.as_bytes())
            } else {
                push_bytes(&mut line, &mut n, b"'")
                    && part.split('\'').enumerate().all(|(i, piece)| {
                        (i == 0 || push_bytes(&mut line, &mut n, b"'\\''"))
                            && push_bytes(&mut line, &mut n, piece.as_bytes())
                    })
                    && push_bytes(&mut line, &mut n, b"'")
            };
            if !complete {
                break;
            }
        }
        if nesting < MAX_NESTING
            && let Ok(text) = core::str::from_utf8(&line[..n])
        {
            // It runs for every match: judged as what will run.
            judge_line(bundle, text, state, true, nesting + 1, acc);
        }
    }
}

/// Appends `bytes` at `n`; false when they do not fit.
fn push_bytes(out: &mut [u8], n: &mut usize, bytes: &[u8]) -> bool {
    match out.get_mut(*n..*n + bytes.len()) {
        Some(slot) => {
            slot.copy_from_slice(bytes);
            *n += bytes.len();
            true
        }
        None => false,
    }
}

/// ASCII lower case of a short key, for suffix comparison.
trait LowerBytes {
    fn to_ascii_lowercase_bytes(&self) -> KeyBuf;
}

/// A lower-cased configuration key (cut at 64 bytes).
struct KeyBuf {
    buf: [u8; 64],
    len: usize,
}

impl KeyBuf {
    fn ends_with(&self, suffix: &[u8]) -> bool {
        self.buf[..self.len].ends_with(suffix)
    }

    fn starts_with(&self, prefix: &[u8]) -> bool {
        self.buf[..self.len].starts_with(prefix)
    }
}

impl LowerBytes for str {
    fn to_ascii_lowercase_bytes(&self) -> KeyBuf {
        let mut buf = [0u8; 64];
        let len = self.len().min(64);
        for (d, s) in buf.iter_mut().zip(self.bytes()) {
            *d = s.to_ascii_lowercase();
        }
        KeyBuf { buf, len }
    }
}
