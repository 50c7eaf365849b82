//! What programs do with their operands, as far as judging needs to know:
//! which run code given on their command line (and where that code is),
//! which turn data into other data (decoders, downloaders — what feeds a
//! shell through them is code nobody can read), and which only read the
//! files they name.
//!
//! This is knowledge about programs, not policy: the policy's `code` rules
//! judge what the code does (docs/policy.md, "Code run by interpreters").

/// The language of a piece of inline code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// A general-purpose interpreter (Python, Perl, Ruby, JavaScript, PHP,
    /// Lua, R, AppleScript, PowerShell, Tcl, awk, sed).
    Script,
    /// An editor or debugger command (`vim -c`, `gdb -ex`, `emacs
    /// --eval`): text after `!` (or `shell`) is a shell command.
    Editor,
    /// A shell command line (`git -c alias.x='!…'`, `find -exec`).
    Shell,
}

/// How a program was given its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source<'a> {
    /// Not a program that runs code from its command line.
    None,
    /// Code on the command line (there may be more than one piece).
    Inline,
    /// A script file operand (or a module: `python -m x`).
    Script(&'a str),
    /// No code and no script: it reads its program from standard input.
    Stdin,
    /// Code given encoded (`pwsh -EncodedCommand`): unreadable here.
    Encoded,
}

/// The program's name without a version suffix: `python3.12` → `python`,
/// `perl5.36` → `perl`, `nodejs` → `node`.
pub fn family(program: &str) -> &str {
    let trimmed = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    match trimmed {
        "nodejs" => "node",
        "pypy" | "python" => "python",
        "luajit" => "lua",
        "gawk" | "mawk" | "nawk" => "awk",
        "powershell" => "pwsh",
        "nvim" | "vi" | "view" | "ex" | "vimdiff" => "vim",
        "" => program,
        other => other,
    }
}

/// Options of `family` that take the code as their value (next word, or
/// attached: `-cCODE`, `--eval=CODE`).
fn code_options(family: &str) -> &'static [&'static str] {
    match family {
        "python" => &["-c"],
        "perl" => &["-e", "-E"],
        "ruby" => &["-e"],
        "node" | "bun" => &["-e", "--eval", "-p", "--print"],
        "php" => &["-r", "--run"],
        "lua" | "Rscript" | "R" | "osascript" | "expect" => &["-e", "-c"],
        "pwsh" => &["-c", "-Command", "-command", "-CommandWithArgs"],
        "vim" => &["-c", "--cmd"],
        "emacs" => &["--eval", "-eval"],
        "gdb" => &["-ex", "-iex", "--eval-command", "--init-eval-command"],
        "lldb" => &["-o", "--one-line", "-O", "--one-line-before-file"],
        "awk" | "sed" => &["-e", "--expression"],
        _ => &[],
    }
}

/// Options of `family` that take a value that is not code.
fn value_options(family: &str) -> &'static [&'static str] {
    match family {
        "python" => &["-W", "-X", "-Q"],
        "perl" => &["-I", "-M", "-m", "-x"],
        "ruby" => &["-I", "-r", "-C", "-E", "-F", "-x"],
        "node" | "bun" => &["-r", "--require", "--import", "--loader", "--input-type", "--conditions", "-C"],
        "php" => &["-c", "-d", "-z"],
        "awk" => &["-F", "-v", "--assign", "--field-separator", "-i", "--include"],
        "sed" => &["-l", "--line-length"],
        "vim" => &["-u", "-U", "-i", "-T", "-w", "-W", "-S"],
        "emacs" => &["-l", "--load", "-f", "--funcall", "--chdir"],
        "gdb" => &["-x", "--command", "-p", "--pid", "-cd", "--directory", "-d"],
        _ => &[],
    }
}

/// Options that name a script file.
fn script_options(family: &str) -> &'static [&'static str] {
    match family {
        "awk" | "sed" => &["-f", "--file"],
        "vim" => &["-s", "-S"],
        "emacs" => &["-l", "--load", "--script"],
        "gdb" => &["-x", "--command"],
        "lldb" => &["-s", "--source"],
        "pwsh" => &["-File", "-file", "-f"],
        "python" => &["-m"],
        _ => &[],
    }
}

/// Whether `family` runs code at all (is in the tables above).
pub fn is_interpreter(family: &str) -> bool {
    matches!(
        family,
        "python"
            | "perl"
            | "ruby"
            | "node"
            | "bun"
            | "deno"
            | "php"
            | "lua"
            | "Rscript"
            | "R"
            | "osascript"
            | "expect"
            | "pwsh"
            | "tclsh"
            | "wish"
            | "awk"
            | "vim"
            | "emacs"
            | "gdb"
            | "lldb"
    )
}

/// The language of `family`'s inline code.
pub fn language(family: &str) -> Language {
    match family {
        "vim" | "emacs" | "gdb" | "lldb" => Language::Editor,
        _ => Language::Script,
    }
}

/// Finds the code a program runs from its operands: calls `each` with every
/// inline piece, and says where the code comes from. `sed` only counts
/// when asked (`with_sed`): its scripts are code for the `code` rules, but
/// a `sed` without one is not reading a program from its input.
pub fn inline_code<'a>(
    program: &str,
    operands: &mut dyn Iterator<Item = &'a str>,
    each: &mut dyn FnMut(&'a str),
) -> Source<'a> {
    let family = family(program);
    if family == "deno" {
        // `deno eval CODE`; `deno run FILE|URL`.
        let mut ops = operands.filter(|w| !w.starts_with('-'));
        return match ops.next() {
            Some("eval") => {
                ops.next().map(&mut *each);
                Source::Inline
            }
            Some(_) => Source::Script(ops.next().unwrap_or("")),
            None => Source::Stdin,
        };
    }
    if !is_interpreter(family) && family != "sed" {
        return Source::None;
    }
    let (code, values, scripts) = (code_options(family), value_options(family), script_options(family));
    let mut found = false;
    let mut script: Option<&'a str> = None;
    let mut first_operand: Option<&'a str> = None;
    let mut pending_code = false;
    let mut pending_value = false;
    let mut pending_script = false;
    let mut options_done = false;
    for word in operands {
        if pending_code {
            each(word);
            found = true;
            pending_code = false;
            continue;
        }
        if pending_script {
            script = Some(word);
            pending_script = false;
            continue;
        }
        if pending_value {
            pending_value = false;
            continue;
        }
        if !options_done && word == "--" {
            options_done = true;
            continue;
        }
        if !options_done && word.starts_with('-') && word.len() > 1 {
            if family == "pwsh" && matches!(word, "-EncodedCommand" | "-encodedcommand" | "-enc" | "-e" | "-ec") {
                return Source::Encoded;
            }
            if code.contains(&word) {
                pending_code = true;
                continue;
            }
            if let Some((name, value)) = word.split_once('=')
                && code.contains(&name)
            {
                each(value);
                found = true;
                continue;
            }
            if scripts.contains(&word) {
                pending_script = true;
                continue;
            }
            if values.contains(&word) {
                pending_value = true;
                continue;
            }
            // A cluster ending in a code flag (`perl -ne`, `ruby -pe`), or
            // the code attached (`python -cCODE`, `perl -eCODE`).
            if let Some(flag) = code.iter().find(|f| f.len() == 2) {
                let letter = flag.as_bytes()[1];
                let body = &word.as_bytes()[1..];
                if !word.starts_with("--") && body.last() == Some(&letter) && body.iter().all(u8::is_ascii_alphabetic) {
                    pending_code = true;
                    continue;
                }
                if !word.starts_with("--") && body.first() == Some(&letter) && body.len() > 1 {
                    each(&word[2..]);
                    found = true;
                    continue;
                }
            }
            continue;
        }
        if family == "vim" && word.starts_with('+') && word.len() > 1 {
            each(&word[1..]);
            found = true;
            continue;
        }
        if first_operand.is_none() {
            first_operand = Some(word);
        }
        // After the program or script, the rest are its arguments.
        if !found && script.is_none() && matches!(family, "awk" | "sed") {
            each(word);
            found = true;
            options_done = true;
            continue;
        }
        if !found && script.is_none() {
            script = Some(word);
        }
        options_done = true;
    }
    if found {
        Source::Inline
    } else if let Some(s) = script.or(first_operand) {
        Source::Script(s)
    } else if matches!(family, "vim" | "emacs" | "gdb" | "lldb" | "sed") {
        // An editor or debugger without commands is interactive; sed with
        // no script is an error.
        Source::None
    } else {
        Source::Stdin
    }
}

/// Whether `program` turns its input (or a download) into other bytes, so
/// that what it feeds a shell or interpreter is code nobody can read here:
/// decoders, decompressors, decrypters, downloaders, character mappers.
pub fn transforms_data(program: &str) -> bool {
    matches!(
        program,
        "base64"
            | "base32"
            | "basenc"
            | "xxd"
            | "uudecode"
            | "openssl"
            | "gpg"
            | "gpg2"
            | "age"
            | "gunzip"
            | "gzip"
            | "zcat"
            | "bzip2"
            | "bunzip2"
            | "bzcat"
            | "xz"
            | "unxz"
            | "xzcat"
            | "lzma"
            | "unlzma"
            | "zstd"
            | "unzstd"
            | "zstdcat"
            | "lz4"
            | "lz4cat"
            | "brotli"
            | "rev"
            | "tr"
            | "printf"
            | "curl"
            | "wget"
            | "fetch"
            | "aria2c"
            | "nc"
            | "ncat"
            | "netcat"
            | "socat"
            | "python"
            | "perl"
            | "ruby"
            | "node"
            | "php"
            | "awk"
            | "sed"
            | "dd"
            | "od"
            | "tac"
            | "cut"
    )
}

/// Whether `program` copies or moves its operands to its last operand
/// (`cp SRC… DST`): the sources are read, the destination written.
pub fn copies_to_last(program: &str) -> bool {
    matches!(program, "cp" | "mv" | "install" | "rsync" | "scp" | "ln" | "ditto")
}

/// Whether the copy `program` ([`copies_to_last`]) takes whole trees from
/// its sources: `cp -r`/`-R`/`-a`, `rsync -r`/`-a`/`-d`/`--files-from`,
/// `scp -r` (short
/// clusters read up to a flag that takes a value; `--recursive`,
/// `--archive`), `ditto` always, and `ln`, whose link hands over whatever
/// is below its target.
pub fn copies_trees<'a>(program: &str, operands: impl Iterator<Item = &'a str>) -> bool {
    let (flags, values): (&[u8], &[u8]) = match program {
        "ditto" | "ln" => return true,
        "cp" => (b"rRa", b"tS"),
        // `-d`/`--dirs`: the files directly in a directory.
        "rsync" => (b"rad", b"efTBM"),
        "scp" => (b"r", b"PioFclSJ"),
        _ => return false,
    };
    operands.take_while(|w| *w != "--").any(|w| match w.strip_prefix("--") {
        // `rsync --files-from=LIST SRC`: any file below `SRC`.
        Some(long) => {
            long == "recursive"
                || program != "scp" && long == "archive"
                || program == "rsync" && (long == "dirs" || long.starts_with("files-from"))
        }
        None => {
            w.len() > 1
                && w.starts_with('-')
                && w.bytes().skip(1).take_while(|c| !values.contains(c)).any(|c| flags.contains(&c))
        }
    })
}

/// Whether `program` only looks at names and metadata (`ls ~/.ssh` lists
/// the directory; it reads no key).
pub fn lists_only(program: &str) -> bool {
    matches!(
        program,
        "ls" | "ll"
            | "la"
            | "dir"
            | "stat"
            | "du"
            | "tree"
            | "test"
            | "["
            | "realpath"
            | "readlink"
            | "basename"
            | "dirname"
    )
}

/// Whether `program` with these operands acts on whole trees (`rm -r`,
/// `chmod -R`, `chown -R`, `shred` of a directory's files, `find -delete`,
/// `find -exec` of a program that may change what it is given: not of one
/// that only reads, such as `grep`).
pub fn acts_on_trees<'a>(program: &str, mut operands: impl Iterator<Item = &'a str>) -> bool {
    let recursive = |w: &str| {
        w == "--recursive"
            || w.starts_with('-') && !w.starts_with("--") && w[1..].bytes().any(|c| c == b'r' || c == b'R')
    };
    match program {
        "rm" | "chmod" | "chown" | "chgrp" | "chattr" | "setfacl" => operands.any(recursive),
        "find" => {
            let mut tree = false;
            while let Some(w) = operands.next() {
                tree |= w == "-delete"
                    || matches!(w, "-exec" | "-execdir" | "-ok" | "-okdir")
                        && !operands.next().is_some_and(never_writes);
            }
            tree
        }
        "rsync" => operands
            .any(|w| w == "--delete" || w == "--del" || w.starts_with("--delete-") || w == "--remove-source-files"),
        _ => false,
    }
}

/// Whether `program` with these operands reads whole trees: every file
/// below a directory operand (`grep -r`, `rg`, `ag`, `ack`, `find -exec cat
/// {} +`), so that a protected path inside one is read too.
pub fn reads_trees<'a>(program: &str, operands: impl Iterator<Item = &'a str>) -> bool {
    let mut operands = operands.peekable();
    match program {
        "rg" | "ag" | "ack" => true,
        "grep" | "egrep" | "fgrep" => {
            while let Some(w) = operands.next() {
                if w == "--" {
                    return false;
                }
                if let Some(long) = w.strip_prefix("--") {
                    // GNU takes any unambiguous prefix of a long option
                    // (`--recur`, `--deref`, `--direc=recurse`).
                    let (name, value) = match long.split_once('=') {
                        Some((name, value)) => (name, Some(value)),
                        None => (long, None),
                    };
                    let abbreviates = |full: &str| name.len() >= 3 && full.starts_with(name);
                    let recurse = if abbreviates("recursive") || abbreviates("dereference-recursive") {
                        true
                    } else if abbreviates("directories") {
                        value.or(operands.peek().copied()) == Some("recurse")
                    } else {
                        false
                    };
                    if recurse {
                        return true;
                    }
                    continue;
                }
                let Some(cluster) = w.strip_prefix('-') else { continue };
                for (i, c) in cluster.char_indices() {
                    match c {
                        'r' | 'R' => return true,
                        // `-d ACTION`, `-drecurse`: what to do with directories.
                        'd' => {
                            let value = &cluster[i + 1..];
                            if value == "recurse" || value.is_empty() && operands.peek() == Some(&"recurse") {
                                return true;
                            }
                            break;
                        }
                        // The rest of the word is this option's value.
                        'e' | 'f' | 'm' | 'A' | 'B' | 'C' | 'D' => break,
                        _ => {}
                    }
                }
            }
            false
        }
        "find" => {
            while let Some(w) = operands.next() {
                if matches!(w, "-exec" | "-execdir" | "-ok" | "-okdir") && operands.next().is_some_and(reads_contents) {
                    return true;
                }
            }
            false
        }
        // `diff -r`, `-Nru`: every file below both trees (printed whole
        // against an empty one).
        "diff" => operands.take_while(|w| *w != "--").any(|w| {
            w == "--recursive"
                || w.len() > 1
                    && !w.starts_with("--")
                    && w.starts_with('-')
                    && w.bytes().skip(1).take_while(|c| !b"UCIxXSFDLW".contains(c)).any(|c| c == b'r')
        }),
        _ => false,
    }
}

/// Whether `program` prints what the files it is given hold (and writes
/// none): what `find -exec` runs to read a tree. Programs that look only at
/// names and metadata (`ls`, `stat`, `du`, `dirname`, `test`) read no
/// content.
fn reads_contents(program: &str) -> bool {
    never_writes(program)
        && !matches!(program, "ls" | "stat" | "du" | "readlink" | "realpath" | "basename" | "dirname" | "test" | "[")
}

/// Which operands (bit `i` = the `i`-th operand, for the first 64) are
/// name patterns the program leaves out or searches for, not files it
/// opens: the values of exclusion options (`--exclude=.env`, `--exclude
/// .env`, `--exclude-dir`, `--ignore`, `--ignore-dir`; `git clean -e`,
/// `fd -E`, `ls`/`tree -I`; `zip … -x` and the patterns after it) and the
/// search pattern of grep-like programs (`-e PATTERN`, `--regexp`, or
/// without those the first operand: `grep -n .env .gitignore`). Options
/// that choose files to act on (`--include`, `-g`, `find -name`) and
/// options naming a file to read (`--exclude-from`, `-f`, `tar -X`) are
/// not patterns: what they name is read.
pub fn pattern_operands<'a>(program: &str, operands: impl Iterator<Item = &'a str>) -> u64 {
    operand_roles(program, operands).0
}

/// [`pattern_operands`], and which operands are the values of a
/// grep-like program's other options (`-m 1`, `rg -g '*.rs'`, `-f FILE`):
/// those name no directory to search.
pub fn operand_roles<'a>(program: &str, operands: impl Iterator<Item = &'a str>) -> (u64, u64) {
    const LONG: [&str; 6] = ["--exclude", "--exclude-dir", "--ignore", "--ignore-dir", "--ignore-pattern", "--regexp"];
    let mut marks = 0u64;
    let mut subcommand = None;
    // The next operand is an option's value (a pattern or not); `zip -x`:
    // every operand up to the next option is a pattern.
    let (mut pattern_next, mut other_value_next, mut patterns_until_option) = (false, false, false);
    let mut values = 0u64;
    // grep-like: the first operand that is no option's value is the
    // pattern, unless `-e`/`-f` gave the patterns; after `--` every word
    // is an operand.
    let mut patterns_given = false;
    let mut first_operand = None;
    let mut options_end = false;
    for (i, w) in operands.enumerate().take(64) {
        let bit = 1u64 << i;
        let option = !options_end && w.starts_with('-') && w != "-";
        if option {
            patterns_until_option = false;
        }
        if core::mem::take(&mut pattern_next) || patterns_until_option && !option {
            marks |= bit;
            continue;
        }
        if core::mem::take(&mut other_value_next) {
            values |= bit;
            continue;
        }
        if program == "git" && subcommand.is_none() && !option {
            subcommand = Some(w);
            continue;
        }
        let grep_like = match (program, subcommand) {
            ("git", Some("grep")) | ("grep" | "egrep" | "fgrep" | "zgrep" | "ag" | "ack", _) => Some(&GREP_VALUES[..]),
            ("rg", _) => Some(&RG_VALUES[..]),
            _ => None,
        };
        if !option {
            if grep_like.is_some() && first_operand.is_none() {
                first_operand = Some(bit);
            }
            continue;
        }
        if w == "--" {
            options_end = true;
            continue;
        }
        let (key, attached) = match w.split_once('=') {
            Some((key, _)) => (key, true),
            None => (w, false),
        };
        // grep-like short options: a cluster of flags is read up to the
        // first one that takes a value, which is the rest of the word
        // (`-m1`, `-epassword`) or, at its end, the next word (`-rne
        // PATTERN`, `-rnf FILE`).
        let (key, attached) = match grep_like {
            Some(values) if w.len() > 2 && !w.starts_with("--") => {
                let option_of = |c: u8| match c {
                    b'e' => Some("-e"),
                    _ => values.iter().copied().find(|v| v.len() == 2 && v.as_bytes()[1] == c),
                };
                match w.bytes().enumerate().skip(1).find_map(|(i, c)| option_of(c).map(|o| (i, o))) {
                    Some((at, option)) => (option, at + 1 < w.len()),
                    None => (key, true),
                }
            }
            _ => (key, attached),
        };
        if grep_like.is_some() && matches!(key, "-e" | "-f" | "--regexp" | "--file") {
            patterns_given = true;
        }
        if attached {
            // The value is in the word (`--max-count=1`, `-m1`): the next
            // word is no option's.
            if w.contains('=') && LONG.contains(&key) {
                marks |= bit;
            }
            continue;
        }
        let pattern_option = match (program, subcommand) {
            ("git", Some("clean")) => w == "-e",
            ("fd" | "fdfind", _) => w == "-E",
            ("ls" | "tree", _) => w == "-I",
            ("zip", _) if w == "-x" => {
                patterns_until_option = true;
                false
            }
            _ => grep_like.is_some() && key == "-e",
        };
        pattern_next = pattern_option || LONG.contains(&w);
        other_value_next = !pattern_next && grep_like.is_some_and(|values| values.contains(&key));
    }
    if !patterns_given {
        marks |= first_operand.unwrap_or(0);
    }
    (marks, values)
}

/// grep's options whose value is the next word (`-e`, `-f` aside).
const GREP_VALUES: [&str; 9] = ["-A", "-B", "-C", "-m", "-d", "-D", "-f", "--file", "--max-count"];
/// ripgrep's options whose value is the next word (`-e` aside).
const RG_VALUES: [&str; 20] = [
    "-A",
    "-B",
    "-C",
    "-m",
    "-f",
    "-g",
    "-t",
    "-T",
    "-j",
    "-M",
    "-E",
    "-r",
    "-d",
    "--file",
    "--glob",
    "--iglob",
    "--type",
    "--type-not",
    "--max-count",
    "--max-depth",
];

/// The kind of file (`Makefile`, `Dockerfile`: a name [`runs_as_commands`]
/// knows) a program reads from standard input when told `-f -`: `make -f
/// -`, `docker build -f - .` (and `podman`, `buildah`, `nerdctl`).
pub fn file_from_stdin<'a>(program: &str, mut operands: impl Iterator<Item = &'a str>) -> Option<&'static str> {
    let kind = match program {
        "make" | "gmake" => "Makefile",
        "docker" | "podman" | "buildah" | "nerdctl" => "Dockerfile",
        _ => return None,
    };
    let mut previous = "";
    let from_stdin = operands.any(|w| {
        let option = matches!(previous, "-f" | "--file" | "--makefile");
        previous = w;
        option && w == "-" || matches!(w, "-f-" | "--file=-" | "--makefile=-")
    });
    from_stdin.then_some(kind)
}

/// Whether a file at `path` is a makefile (`Makefile`, `makefile`,
/// `GNUmakefile`, `*.mk`): its recipes and variables are in make's syntax.
pub fn is_makefile(path: &str) -> bool {
    let name = path.rsplit_once('/').map_or(path, |(_, name)| name);
    matches!(name, "Makefile" | "makefile" | "GNUmakefile") || name.ends_with(".mk")
}

/// Whether a file at `path` (normalised) holds commands something runs
/// later without the agent asking: a shell script, a git hook, a makefile,
/// a container build file, a CI workflow, the scripts of `package.json`,
/// Maven's `pom.xml` (its exec plugins),
/// direnv's `.envrc`, a task runner's file. Writing one is judged by the
/// commands it holds.
pub fn runs_as_commands(path: &str) -> bool {
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    let in_dir =
        |dir: &str| parent == dir || parent.ends_with(dir) && parent[..parent.len() - dir.len()].ends_with('/');
    let yaml = name.ends_with(".yml") || name.ends_with(".yaml");
    let extension = name.rsplit_once('.').map_or("", |(_, e)| e);
    in_dir(".git/hooks")
        || in_dir(".githooks")
        || in_dir(".husky")
        || (in_dir(".github/workflows") || in_dir(".circleci") || in_dir(".buildkite")) && yaml
        || matches!(extension, "sh" | "bash" | "zsh" | "ksh" | "bats" | "command")
        || is_makefile(path)
        || matches!(
            name,
            "Dockerfile"
                | "Containerfile"
                | "Justfile"
                | "justfile"
                | "Procfile"
                | "Jenkinsfile"
                | "Taskfile.yml"
                | "Taskfile.yaml"
                | "package.json"
                | "pom.xml"
                | ".envrc"
                | ".gitlab-ci.yml"
                | ".travis.yml"
                | ".pre-commit-config.yaml"
                | "bitbucket-pipelines.yml"
                | "azure-pipelines.yml"
                | "cloudbuild.yaml"
                | "cloudbuild.yml"
        )
        || name.starts_with("Dockerfile.")
        || in_dir(".vscode") && name == "tasks.json"
        || in_dir(".idea/runConfigurations") && name.ends_with(".xml")
        || in_dir(".cargo") && matches!(name, "config.toml" | "config")
}

/// Whether a file at `path` (normalised) is source code a build, a package
/// install or a test run executes without the agent asking: `setup.py`,
/// `conftest.py`, `noxfile.py`, `build.rs`, a Gradle script, a Rakefile,
/// a JavaScript task file. Writing one is judged as that code.
pub fn runs_as_code(path: &str) -> bool {
    let name = path.rsplit_once('/').map_or(path, |(_, n)| n);
    matches!(
        name,
        "setup.py"
            | "conftest.py"
            | "noxfile.py"
            | "fabfile.py"
            | "build.rs"
            | "Rakefile"
            | "Gruntfile.js"
            | "gulpfile.js"
            | "Gemfile"
            | "Vagrantfile"
    ) || name.ends_with(".gradle")
        || name.ends_with(".gradle.kts")
}

/// Whether `program`'s bare operands are files (`rm dev` removes `./dev`),
/// so that they are resolved like paths.
pub fn operates_on_files(program: &str) -> bool {
    matches!(
        program,
        "rm" | "rmdir"
            | "shred"
            | "unlink"
            | "truncate"
            | "chmod"
            | "chown"
            | "chgrp"
            | "chattr"
            | "mv"
            | "cp"
            | "ln"
            | "tar"
            | "zip"
            | "touch"
            | "mkdir"
            | "tee"
            | "wipe"
            | "srm"
            | "find"
            | "rsync"
    )
}

/// Whether `program` writes no file, whatever its options: what `find -exec`
/// may run on a tree of unknown root without acting on the tree. Narrower
/// than [`reads_only`]: `sort -o`, `uniq IN OUT`, `tree -o`, `yq -i` and
/// pagers with shell escapes are left out.
fn never_writes(program: &str) -> bool {
    matches!(
        program,
        "cat"
            | "head"
            | "tail"
            | "grep"
            | "egrep"
            | "fgrep"
            | "rg"
            | "ag"
            | "ack"
            | "wc"
            | "ls"
            | "stat"
            | "du"
            | "diff"
            | "cmp"
            | "md5sum"
            | "sha1sum"
            | "sha256sum"
            | "sha512sum"
            | "b2sum"
            | "cksum"
            | "strings"
            | "hexdump"
            | "od"
            | "readlink"
            | "realpath"
            | "basename"
            | "dirname"
            | "test"
            | "["
    )
}

/// Whether `program` only reads the files it names (so a path operand is
/// judged as a read, not as any access).
pub fn reads_only(program: &str) -> bool {
    matches!(
        program,
        "ls" | "cat"
            | "head"
            | "tail"
            | "less"
            | "more"
            | "grep"
            | "egrep"
            | "fgrep"
            | "rg"
            | "ag"
            | "ack"
            | "wc"
            | "file"
            | "stat"
            | "du"
            | "df"
            | "tree"
            | "diff"
            | "cmp"
            | "md5sum"
            | "sha1sum"
            | "sha256sum"
            | "sha512sum"
            | "b2sum"
            | "cksum"
            | "strings"
            | "hexdump"
            | "od"
            | "readlink"
            | "realpath"
            | "basename"
            | "dirname"
            | "bat"
            | "jq"
            | "yq"
            | "column"
            | "sort"
            | "uniq"
            | "cut"
            | "nl"
            | "comm"
            | "join"
            | "paste"
            | "test"
            | "["
            | "which"
            | "type"
            | "whereis"
    )
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn code<'a>(program: &str, words: &[&'a str]) -> (Source<'a>, Vec<&'a str>) {
        let mut found = Vec::new();
        let source = inline_code(program, &mut words.iter().copied(), &mut |c| found.push(c));
        (source, found)
    }

    #[test]
    fn inline_code_is_found_in_every_form() {
        assert_eq!(code("python3", &["-c", "import os"]), (Source::Inline, std::vec!["import os"]));
        assert_eq!(code("python3.12", &["-u", "-cimport os"]), (Source::Inline, std::vec!["import os"]));
        assert_eq!(code("perl", &["-ne", "print"]), (Source::Inline, std::vec!["print"]));
        assert_eq!(code("perl", &["-MIO::Socket", "-e", "x"]), (Source::Inline, std::vec!["x"]));
        assert_eq!(code("node", &["--eval=require('x')"]), (Source::Inline, std::vec!["require('x')"]));
        assert_eq!(code("awk", &["-F:", "{print $1}", "/etc/passwd"]), (Source::Inline, std::vec!["{print $1}"]));
        assert_eq!(
            code("awk", &["-F", ":", "BEGIN{system(\"id\")}"]),
            (Source::Inline, std::vec!["BEGIN{system(\"id\")}"])
        );
        assert_eq!(code("vim", &["-c", ":!id", "-c", "q"]), (Source::Inline, std::vec![":!id", "q"]));
        assert_eq!(code("nvim", &["+!id"]), (Source::Inline, std::vec!["!id"]));
        assert_eq!(code("gdb", &["-batch", "-ex", "shell id"]), (Source::Inline, std::vec!["shell id"]));
        assert_eq!(code("deno", &["eval", "Deno.exit()"]), (Source::Inline, std::vec!["Deno.exit()"]));
        assert_eq!(code("pwsh", &["-enc", "SQBFAFgA"]).0, Source::Encoded);
    }

    #[test]
    fn scripts_and_standard_input() {
        assert_eq!(code("python3", &["manage.py", "test"]).0, Source::Script("manage.py"));
        assert_eq!(code("python", &["-m", "pytest"]).0, Source::Script("pytest"));
        assert_eq!(code("node", &[]).0, Source::Stdin);
        assert_eq!(code("python3", &["-"]).0, Source::Script("-"));
        assert_eq!(code("ls", &["-la"]).0, Source::None);
        assert_eq!(code("vim", &["README.md"]).0, Source::Script("README.md"));
    }

    #[test]
    fn families() {
        assert_eq!(family("python3.11"), "python");
        assert_eq!(family("perl5.36"), "perl");
        assert_eq!(family("gawk"), "awk");
        assert_eq!(family("nvim"), "vim");
    }

    #[test]
    fn files_that_run_as_commands_are_known_by_place_and_name() {
        for path in [
            "/home/dev/p/.git/hooks/pre-commit",
            "/home/dev/p/.husky/pre-push",
            "/home/dev/p/.github/workflows/ci.yml",
            "/home/dev/p/.circleci/config.yaml",
            "/home/dev/p/scripts/deploy.sh",
            "/home/dev/p/Makefile",
            "/home/dev/p/build/rules.mk",
            "/home/dev/p/Dockerfile",
            "/home/dev/p/docker/Dockerfile.dev",
            "/home/dev/p/package.json",
            "/home/dev/p/.envrc",
            "/home/dev/p/.gitlab-ci.yml",
            "justfile",
            "/w/.vscode/tasks.json",
            "/w/.idea/runConfigurations/App.xml",
            "/w/.cargo/config.toml",
        ] {
            assert!(runs_as_commands(path), "{path}");
        }
        for path in ["/w/setup.py", "/w/tests/conftest.py", "/w/build.rs", "/w/app/build.gradle.kts", "/w/Rakefile"] {
            assert!(runs_as_code(path) && !runs_as_commands(path), "{path}");
        }
        for path in ["/w/src/main.py", "/w/src/lib.rs", "/w/.vscode/settings.json", "/w/.cargo/credentials.toml"] {
            assert!(!runs_as_code(path) && !runs_as_commands(path), "{path}");
        }
        for path in [
            "/home/dev/p/README.md",
            "/home/dev/p/src/main.rs",
            "/home/dev/p/.github/CODEOWNERS",
            "/home/dev/p/config/ci.yml",
            "/home/dev/p/not.git/hooks/x",
            "/home/dev/p/package-lock.json",
            "/home/dev/p/sh",
        ] {
            assert!(!runs_as_commands(path), "{path}");
        }
    }

    #[test]
    fn recursive_reads_are_told_from_options_with_values() {
        let reads = |program: &str, words: &[&str]| reads_trees(program, words.iter().copied());
        for words in [
            &["-r", "key", "."][..],
            &["-rn", "key"],
            &["-inR", "key"],
            &["--recursive", "key"],
            &["--dereference-recursive", "key"],
            &["--directories=recurse", "key"],
            &["--directories", "recurse", "key"],
            &["-d", "recurse", "key"],
            &["-drecurse", "key"],
            &["-A3", "-r", "key"],
        ] {
            assert!(reads("grep", words), "{words:?}");
        }
        for words in [
            &["-eerror", "log"][..],
            &["-A3", "key"],
            &["-m", "1", "-freport", "x"],
            &["-d", "skip", "key"],
            &["--", "-r", "key"],
            &["--regexp=-r", "log"],
        ] {
            assert!(!reads("grep", words), "{words:?}");
        }
        assert!(reads("rg", &["key"]) && reads("ack", &[]));
        assert!(reads("find", &["~", "-exec", "cat", "{}", "+"]));
        assert!(!reads("find", &["~", "-name", "x"]) && !reads("cat", &["-r"]));
    }

    #[test]
    fn grep_patterns_are_told_from_option_values_in_every_spelling() {
        let marks = |program: &str, words: &[&str]| pattern_operands(program, words.iter().copied());
        // The pattern is the first word that is no option's value.
        assert_eq!(marks("grep", &["-r", "--max-count=1", "password", "~"]), 0b100);
        assert_eq!(marks("grep", &["-m1", "password", "~"]), 0b10);
        assert_eq!(marks("grep", &["-m", "1", "password", "~"]), 0b100);
        assert_eq!(marks("grep", &["-rnm", "1", "password", "~"]), 0b100);
        assert_eq!(marks("rg", &["--type=py", "password", "~"]), 0b10);
        assert_eq!(marks("rg", &["-tpy", "password", "~"]), 0b10);
        // Patterns given by `-e`: attached, clustered, or the next word.
        assert_eq!(marks("grep", &["-epassword", "~/.aws/credentials"]), 0);
        assert_eq!(marks("grep", &["-rne", "password", "~"]), 0b10);
        assert_eq!(marks("grep", &["--regexp=password", "~"]), 0b1);
        assert_eq!(marks("grep", &["-f", "pats.txt", "~"]), 0);
    }

    #[test]
    fn option_values_are_told_apart() {
        let roles = |program: &str, words: &[&str]| operand_roles(program, words.iter().copied());
        assert_eq!(roles("rg", &["-g", "*.rs", "password"]), (0b100, 0b10));
        assert_eq!(roles("grep", &["-r", "-m", "1", "-f", "pats", "src"]), (0, 0b10100));
        assert_eq!(roles("grep", &["-r", "--max-count=1", "key", "src"]), (0b100, 0));
    }

    #[test]
    fn recursive_reads_count_abbreviations_and_diff() {
        let reads = |program: &str, words: &[&str]| reads_trees(program, words.iter().copied());
        for words in [&["--recur", "x"][..], &["--deref", "x"], &["--direc=recurse", "x"], &["--dir", "recurse"]] {
            assert!(reads("grep", words), "{words:?}");
        }
        assert!(!reads("grep", &["--re", "x"]) && !reads("grep", &["--direc=skip", "x"]));
        assert!(reads("diff", &["-Nru", "a", "b"]) && reads("diff", &["--recursive", "a", "b"]));
        assert!(!reads("diff", &["-u", "a", "b"]));
        assert!(!reads("diff", &["-Ix-r", "a"]) && !reads("diff", &["--", "-r"]));
        assert!(!reads("find", &["~", "-exec", "dirname", "{}", ";"]));
        assert!(!reads("find", &["~", "-exec", "ls", "-l", "{}", ";"]));
    }

    #[test]
    fn recursive_copies_are_told_from_option_values() {
        let trees = |program: &str, words: &[&str]| copies_trees(program, words.iter().copied());
        assert!(trees("cp", &["-r", "a", "b"]) && trees("cp", &["-av", "a", "b"]) && trees("cp", &["--recursive"]));
        assert!(trees("rsync", &["-az", "~", "h:/x"]) && trees("rsync", &["--archive", "a", "b"]));
        assert!(trees("scp", &["-pr", "a", "h:"]) && trees("ln", &["-s", "a", "b"]) && trees("ditto", &[]));
        assert!(!trees("cp", &["a", "b"]) && !trees("cp", &["-tr", "a"]) && !trees("cp", &["--", "-r", "b"]));
        assert!(!trees("rsync", &["-e", "ssh -ar", "a", "h:"]) && !trees("rsync", &["-essh", "a", "b"]));
        assert!(!trees("scp", &["-P22", "a", "h:"]) && !trees("scp", &["--archive", "a", "h:"]));
        assert!(!trees("install", &["-r", "a", "b"]));
    }

    #[test]
    fn find_acts_on_trees_unless_it_only_runs_readers() {
        let acts = |words: &[&str]| acts_on_trees("find", words.iter().copied());
        assert!(acts(&[".", "-delete"]));
        assert!(acts(&[".", "-exec", "rm", "{}", "+"]));
        assert!(acts(&[".", "-exec", "grep", "-q", "x", "{}", ";", "-exec", "shred", "{}", ";"]));
        assert!(acts(&[".", "-exec", "grep", "x", "{}", ";", "-delete"]));
        assert!(acts(&[".", "-exec", "sort", "-o", "{}", "{}", ";"]));
        assert!(acts(&[".", "-exec", "/bin/grep", "x", "{}", "+"]));
        assert!(acts(&[".", "-ok"]));
        assert!(!acts(&[".", "-exec", "grep", "-n", "x", "{}", "+"]));
        assert!(!acts(&[".", "-execdir", "wc", "-l", "{}", ";"]));
    }
}
