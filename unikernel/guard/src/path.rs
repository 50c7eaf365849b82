//! Lexical path normalisation for the file tripwire: `.`, `..`, repeated
//! slashes, `~`, `$HOME`, relative paths against the working directory —
//! without touching the file system.
//!
//! The home directory stays symbolic: `~/x` is normalised to `~/x`, so a
//! policy can name `~/.ssh` without knowing whose home it is. `~` is treated
//! as an opaque directory directly below `/`, so `~/..` is `/`. `~user` is
//! another opaque root of its own.
//!
//! Symlinks are out of scope: nothing is resolved against the file system,
//! the path is judged as written — except the aliases every Linux process
//! has, `/proc/self/root` (`/`) and `/proc/self/cwd` (the working
//! directory), which [`normalize_home`] replaces by what they stand for. Paths are POSIX: `/` is the only
//! separator, a backslash is an ordinary character.
//!
//! Nothing allocates: the result is written into a caller's
//! [`MAX_PATH`]-byte buffer.

/// Longest normalised path, in bytes.
pub const MAX_PATH: usize = 4096;

/// Why a path cannot be normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathError {
    /// The path is empty.
    Empty,
    /// The path (or the working directory it needs) contains a NUL byte.
    Nul,
    /// The normalised path would be longer than [`MAX_PATH`] bytes.
    TooLong,
    /// A relative path, and the working directory is empty or relative too.
    RelativeWithoutCwd,
}

/// Where a path starts.
#[derive(Clone, Copy)]
enum Root<'a> {
    /// `/`.
    Slash,
    /// `~` (also `$HOME`, `${HOME}`) or `~user`, as the text to write.
    Home(&'a str),
}

/// A path buffer on the stack: only what is written is touched (no
/// clearing of 4 KiB per path).
pub type PathBuf = heapless::Vec<u8, MAX_PATH>;

/// Normalises `path` against `cwd` into `out`; returns the normalised text
/// (a sub-slice of `out`).
///
/// - `~`, `~/x` stay `~`, `~/x`; `$HOME` and `${HOME}` at the start (alone
///   or before `/`) become `~`; `~user/x` stays `~user/x`.
/// - A path starting with `/` is absolute; any other path is joined to
///   `cwd` (normalised the same way; it must be absolute or `~`-based,
///   otherwise [`PathError::RelativeWithoutCwd`]). `cwd` is not looked at
///   for absolute and `~` paths.
/// - Repeated slashes collapse, `.` components are dropped, `..` removes
///   the previous component; `..` at `/` stays at `/` (`/../etc` is
///   `/etc`), `..` at `~` or `~user` climbs to `/` (`~/../x` is `/x`).
/// - No trailing slash, except for `/` itself.
///
/// Only the final length counts against [`MAX_PATH`]: a long path that
/// `..` shortens enough is accepted.
pub fn normalize<'o>(path: &str, cwd: &str, out: &'o mut PathBuf) -> Result<&'o str, PathError> {
    normalize_into(path, cwd, out)?;
    // Whole UTF-8 pieces of the inputs joined by `/`: always valid.
    core::str::from_utf8(out).map_err(|_| PathError::TooLong)
}

/// [`normalize`], leaving the result in `out` (all of it).
fn normalize_into(path: &str, cwd: &str, out: &mut PathBuf) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if has_nul(path) {
        return Err(PathError::Nul);
    }
    out.clear();
    if copy_normal(path, cwd, out) {
        return Ok(());
    }
    out.clear();
    let mut writer = Writer { buf: out, pending_up: 0 };
    let root = match split_root(path) {
        Some((root, rest)) => {
            writer.components(rest)?;
            root
        }
        None => {
            if has_nul(cwd) {
                return Err(PathError::Nul);
            }
            let (root, cwd_rest) = split_root(cwd).ok_or(PathError::RelativeWithoutCwd)?;
            // Right to left: the path's components, then the cwd's.
            writer.components(path)?;
            writer.components(cwd_rest)?;
            root
        }
    };
    writer.finish(root)
}

/// The common case of [`normalize_into`]: a path (and, for a relative
/// one, the working directory) already in normal form is copied as it is
/// — joined to the working directory, `$HOME` written `~`. `false`, with
/// `out` partly written, for anything else (the general path decides).
fn copy_normal(path: &str, cwd: &str, out: &mut PathBuf) -> bool {
    let (root, rest, relative) = match split_root(path) {
        Some((root, rest)) => (root, rest, ""),
        None if !has_nul(cwd) => match split_root(cwd) {
            Some((root, cwd_rest)) => (root, cwd_rest, path),
            None => return false,
        },
        None => return false,
    };
    let root = match root {
        // The components already start with `/`; `/` alone is not normal
        // (its one component is empty).
        Root::Slash => "",
        Root::Home(home) => home,
    };
    if !components_are_normal(rest.as_bytes())
        || !relative.is_empty() && (root.is_empty() && rest.is_empty() || !relative_is_normal(relative.as_bytes()))
    {
        return false;
    }
    let slash: &[u8] = if relative.is_empty() { b"" } else { b"/" };
    [root.as_bytes(), rest.as_bytes(), slash, relative.as_bytes()]
        .iter()
        .all(|piece| out.extend_from_slice(piece).is_ok())
}

/// Whether `text` holds a NUL byte (a byte loop: paths are short).
fn has_nul(text: &str) -> bool {
    text.bytes().any(|b| b == 0)
}

/// Whether `path` is its own normal form: `/…` or `~…` (not `$HOME`),
/// then components none of which is empty, `.` or `..`; no NUL, not over
/// [`MAX_PATH`].
fn is_normal(path: &str) -> bool {
    let rest = match split_root(path) {
        Some((Root::Slash, rest)) => rest,
        Some((Root::Home(_), rest)) if path.starts_with('~') => rest,
        _ => return false,
    };
    path.len() <= MAX_PATH && !has_nul(path) && components_are_normal(rest.as_bytes())
}

/// Whether `text` is `/`-prefixed components (or nothing), none of them
/// empty, `.` or `..`.
fn components_are_normal(text: &[u8]) -> bool {
    match text.split_first() {
        None => true,
        Some((b'/', rest)) => relative_is_normal(rest),
        Some(_) => false,
    }
}

/// Whether `text` is one or more `/`-separated components, none of them
/// empty, `.` or `..`.
fn relative_is_normal(text: &[u8]) -> bool {
    text.split(|&b| b == b'/').all(|component| !matches!(component, b"" | b"." | b".."))
}

/// Folds the spellings of the agent user's home into `~`: a normalised
/// path below one of `roots` (an absolute directory such as `/root`, or a
/// directory pattern `/home/*` whose `*` is one component) or below
/// `~user` is rewritten as the same path below `~`, in `out`. Other paths
/// come back unchanged. `/home/alice/.ssh`, `/Users/bob/.ssh`,
/// `/root/.ssh` and `~alice/.ssh` all become `~/.ssh`.
pub fn fold_home<'o, 'r>(normalized: &str, roots: impl Iterator<Item = &'r str>, out: &'o mut PathBuf) -> &'o str {
    let (home, rest) = match home_rest(normalized.as_bytes(), roots) {
        Some(rest) => ("~", rest),
        None => ("", normalized.as_bytes()),
    };
    out.clear();
    let _ = out.extend_from_slice(home.as_bytes());
    let take = rest.len().min(MAX_PATH - out.len());
    let _ = out.extend_from_slice(&rest[..take]);
    core::str::from_utf8(out).unwrap_or("")
}

/// [`normalize`], then [`fold_home`], in the one buffer `out`: the home
/// directory's spelling is overwritten by `~` where it ends.
pub fn normalize_home<'o, 'r>(
    path: &'o str,
    cwd: &str,
    roots: impl Iterator<Item = &'r str>,
    out: &'o mut PathBuf,
) -> Result<&'o str, PathError> {
    // `/proc/self/root/…`, `/proc/self/cwd/…`: what the alias stands for.
    if mentions_proc(path) || !path.starts_with(['/', '~']) && mentions_proc(cwd) {
        let mut alias = PathBuf::new();
        if unalias_proc(path, cwd, &mut alias)? {
            let alias = core::str::from_utf8(&alias).map_err(|_| PathError::TooLong)?;
            let mut inner = PathBuf::new();
            let resolved = normalize_home(alias, cwd, roots, &mut inner)?;
            out.clear();
            out.extend_from_slice(resolved.as_bytes()).map_err(|_| PathError::TooLong)?;
            return core::str::from_utf8(out).map_err(|_| PathError::TooLong);
        }
    }
    if is_normal(path) {
        // Its own normal form: itself, unless a home directory folds.
        match home_rest(path.as_bytes(), roots) {
            Some(rest) if rest.len() < path.len() => {
                out.clear();
                let _ = out.push(b'~');
                let _ = out.extend_from_slice(rest);
                return core::str::from_utf8(out).map_err(|_| PathError::TooLong);
            }
            _ => return Ok(path),
        }
    }
    normalize_into(path, cwd, out)?;
    let len = out.len();
    // The spelling of home is at least one byte long: `~` fits in it.
    let fold = home_rest(out, roots).filter(|rest| rest.len() < len).map(|rest| len - rest.len() - 1);
    let at = fold.unwrap_or(0);
    if fold.is_some() {
        out[at] = b'~';
    }
    core::str::from_utf8(&out[at..len]).map_err(|_| PathError::TooLong)
}

/// Whether `text` may hold a `/proc` alias: `proc` anywhere.
fn mentions_proc(text: &str) -> bool {
    text.as_bytes().windows(4).any(|w| w == b"proc")
}

/// A process's view of the file system through `/proc`: `/proc/self/root`
/// (also `thread-self` and a process number — another process's root,
/// judged as this one's) is `/`, and `/proc/self/cwd` the working
/// directory. Where the components of `path` (joined to `cwd` when
/// relative) reach such an alias, writes the path it stands for into
/// `out` (the rest below `/`, or the rest relative to `cwd`) and returns
/// true; the text before the alias is normalised lexically, the text
/// after it is not (`/proc/self/cwd/..` is the parent of the working
/// directory, not `/proc/self`). A `cwd` alias met in a working directory
/// that holds one itself is `RelativeWithoutCwd`: nothing says where it is.
fn unalias_proc(path: &str, cwd: &str, out: &mut PathBuf) -> Result<bool, PathError> {
    let mut joined = PathBuf::new();
    let full =
        if path.starts_with('/') || path.starts_with('~') || path.starts_with("$HOME") || path.starts_with("${HOME}") {
            path
        } else {
            for piece in [cwd, "/", path] {
                joined.extend_from_slice(piece.as_bytes()).map_err(|_| PathError::TooLong)?;
            }
            core::str::from_utf8(&joined).map_err(|_| PathError::TooLong)?
        };
    let bytes = full.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..].iter().position(|&b| b == b'/').map_or(bytes.len(), |at| start + at);
        let component = &full[start..end];
        // `root~/x`: `$HOME` expanded right after the alias.
        let home_after = component.strip_prefix("root").filter(|rest| rest.starts_with('~'));
        if (matches!(component, "root" | "cwd") || home_after.is_some()) && start > 0 {
            let mut before = PathBuf::new();
            let prefix = normalize(&full[..start - 1], "/", &mut before).unwrap_or("");
            let process = prefix.strip_prefix("/proc/").unwrap_or("");
            // A number, or anything that may expand to one (`$$`, `sel?`).
            let pid = !process.is_empty() && process.bytes().all(|b| b.is_ascii_digit());
            let may_expand_to_pid = process.bytes().any(|b| b"$*?[".contains(&b))
                && process.bytes().all(|b| b.is_ascii_alphanumeric() || b"$*?[]{}!-+".contains(&b));
            let is_process = matches!(process, "self" | "thread-self") || pid || may_expand_to_pid;
            if is_process {
                let rest = full[end..].trim_start_matches('/');
                out.clear();
                if let Some(home) = home_after {
                    out.extend_from_slice(home.as_bytes())
                        .and_then(|()| if rest.is_empty() { Ok(()) } else { out.push(b'/').map_err(|_| ()) })
                        .and_then(|()| out.extend_from_slice(rest.as_bytes()))
                } else if component == "root" {
                    out.extend_from_slice(b"/").and_then(|()| out.extend_from_slice(rest.as_bytes()))
                } else {
                    if mentions_proc(cwd) {
                        return Err(PathError::RelativeWithoutCwd);
                    }
                    out.extend_from_slice(if rest.is_empty() { b"." } else { rest.as_bytes() })
                }
                .map_err(|_| PathError::TooLong)?;
                return Ok(true);
            }
        }
        start = end + 1;
    }
    Ok(false)
}

/// The part of `path` after its home directory (`""` or `/…`), if it is
/// below one.
fn home_rest<'p, 'r>(path: &'p [u8], roots: impl Iterator<Item = &'r str>) -> Option<&'p [u8]> {
    let after_first_component = |text: &'p [u8]| &text[text.iter().position(|&b| b == b'/').unwrap_or(text.len())..];
    if let Some(user) = path.strip_prefix(b"~")
        && !user.is_empty()
        && !user.starts_with(b"/")
    {
        return Some(after_first_component(user));
    }
    for root in roots {
        let (dir, any_user) = match root.strip_suffix("/*") {
            Some(dir) => (dir, true),
            None => (root, false),
        };
        let Some(after) = path.strip_prefix(dir.as_bytes()) else { continue };
        let at_root = after.is_empty() && !any_user;
        if !after.starts_with(b"/") && !at_root {
            continue;
        }
        if !any_user {
            return Some(after);
        }
        // `/home/*`: one non-empty component is the user.
        let user = &after[1..];
        if user.is_empty() || user.starts_with(b".") {
            continue;
        }
        return Some(after_first_component(user));
    }
    None
}

/// Whether `path` is `root` or lies below it; both already normalised.
///
/// `/w/project/a` is within `/w/project`, `/w/project2` is not. Root `/`
/// contains every normalised path (absolute or `~`-based, since `~` is a
/// directory below `/`); `~` contains `~/…` but not `~user/…`. Nothing can
/// be said of `~` against absolute roots such as `/home`, so `~/x` is not
/// within `/home`. An empty root contains nothing. Trailing slashes on
/// `root` are ignored.
pub fn is_within(path: &str, root: &str) -> bool {
    let trimmed = root.trim_end_matches('/');
    if trimmed.is_empty() {
        return !root.is_empty() && (path.starts_with('/') || path.starts_with('~'));
    }
    match path.strip_prefix(trimmed) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// What follows the last `/` of `text` (all of it when it has none): a
/// file's name, a program's name. Searched from the end byte by byte: the
/// texts are short and their last `/` is near the end.
pub fn file_name(text: &str) -> &str {
    match text.bytes().rposition(|b| b == b'/') {
        // `/` is ASCII: the byte after it starts a character.
        Some(at) => text.get(at + 1..).unwrap_or(""),
        None => text,
    }
}

/// Splits off where `path` starts: `/…`, `~…`, `$HOME…`, `${HOME}…`.
/// Returns the root and the rest (to be read as components); `None` for a
/// relative path.
fn split_root(path: &str) -> Option<(Root<'_>, &str)> {
    if path.starts_with('/') {
        return Some((Root::Slash, path));
    }
    for variable in ["$HOME", "${HOME}"] {
        if let Some(rest) = path.strip_prefix(variable)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return Some((Root::Home("~"), rest));
        }
    }
    if path.starts_with('~') {
        let end = path.bytes().position(|b| b == b'/').unwrap_or(path.len());
        let (home, rest) = path.split_at_checked(end)?;
        return Some((Root::Home(home), rest));
    }
    None
}

/// Builds the result right to left, so that only the final length counts:
/// components are fed last first, `..` counts up how many of the preceding
/// components to drop. The buffer holds the result reversed until
/// [`Writer::finish`] turns it around.
struct Writer<'o> {
    buf: &'o mut PathBuf,
    /// `..` components not yet matched by a preceding component.
    pending_up: usize,
}

impl<'o> Writer<'o> {
    /// Writes `bytes` in front of the result so far.
    fn prepend(&mut self, bytes: &[u8]) -> Result<(), PathError> {
        if self.buf.len() + bytes.len() > MAX_PATH {
            return Err(PathError::TooLong);
        }
        for &b in bytes.iter().rev() {
            self.buf.push(b).map_err(|_| PathError::TooLong)?;
        }
        Ok(())
    }

    /// Feeds the `/`-separated components of `text`, last first.
    fn components(&mut self, text: &str) -> Result<(), PathError> {
        for component in text.rsplit('/') {
            match component {
                "" | "." => {}
                ".." => self.pending_up = self.pending_up.saturating_add(1),
                _ if self.pending_up > 0 => self.pending_up -= 1,
                _ => {
                    self.prepend(component.as_bytes())?;
                    self.prepend(b"/")?;
                }
            }
        }
        Ok(())
    }

    /// Writes the root and turns the result around.
    fn finish(mut self, root: Root<'_>) -> Result<(), PathError> {
        let root = match root {
            // `..` above a home directory climbs to `/`.
            Root::Home(_) if self.pending_up > 0 => Root::Slash,
            root => root,
        };
        match root {
            // Every component already starts with `/`.
            Root::Slash if !self.buf.is_empty() => {}
            Root::Slash => self.prepend(b"/")?,
            Root::Home(home) => self.prepend(home.as_bytes())?,
        }
        self.buf.reverse();
        Ok(())
    }
}

#[cfg(test)]
mod fold_tests {
    use super::*;

    #[test]
    fn proc_aliases_stand_for_what_they_name() {
        let roots = ["/home/*", "/root"];
        let resolve = |path: &str, cwd: &str| {
            let mut out = PathBuf::new();
            normalize_home(path, cwd, roots.iter().copied(), &mut out).map(std::string::String::from)
        };
        let cwd = "/home/alice/src/app";
        for (path, want) in [
            ("/proc/self/root/etc/shadow", "/etc/shadow"),
            ("/proc/self/root", "/"),
            ("/proc/thread-self/root//etc/./shadow", "/etc/shadow"),
            ("/proc/1/root/root/.ssh/id_rsa", "~/.ssh/id_rsa"),
            ("/proc/self/root/proc/self/root/etc/shadow", "/etc/shadow"),
            ("/proc/./self/../self/root/etc", "/etc"),
            ("/proc/self/cwd/..", "~/src"),
            ("/proc/self/cwd/../../.ssh", "~/.ssh"),
            ("/proc/self/cwd", "~/src/app"),
            ("../../../../proc/self/root/etc/passwd", "/etc/passwd"),
            ("../../../proc/self/root/etc/passwd", "~/self/root/etc/passwd"),
            ("/proc/self/status", "/proc/self/status"),
            ("/proc/self/rootx/a", "/proc/self/rootx/a"),
            ("/proc/abc/root/etc", "/proc/abc/root/etc"),
            ("/srv/proc/self/root/x", "/srv/proc/self/root/x"),
        ] {
            assert_eq!(resolve(path, cwd).as_deref(), Ok(want), "{path}");
        }
        assert_eq!(resolve("root/etc/shadow", "/proc/self").as_deref(), Ok("/etc/shadow"));
        assert_eq!(resolve("cwd/x", "/proc/self/cwd"), Err(PathError::RelativeWithoutCwd));
    }

    #[test]
    fn every_spelling_of_home_is_home() {
        let roots = ["/home/*", "/Users/*", "/root"];
        for (path, want) in [
            ("/home/alice/.ssh/id_rsa", "~/.ssh/id_rsa"),
            ("/Users/bob/.aws", "~/.aws"),
            ("/root/.gnupg", "~/.gnupg"),
            ("/root", "~"),
            ("/home/alice", "~"),
            ("~alice/.ssh", "~/.ssh"),
            ("~", "~"),
            ("/home", "/home"),
            ("/homes/x", "/homes/x"),
            ("/rootfs/x", "/rootfs/x"),
            ("/etc/passwd", "/etc/passwd"),
        ] {
            let mut out = PathBuf::new();
            assert_eq!(fold_home(path, roots.iter().copied(), &mut out), want, "{path}");
            let mut one = PathBuf::new();
            assert_eq!(normalize_home(path, "/", roots.iter().copied(), &mut one), Ok(want), "{path}");
        }
    }

    proptest::proptest! {
        /// Normalising and folding in one buffer is normalising, then
        /// folding.
        #[test]
        fn normalize_home_is_normalize_then_fold(
            path in "(~[a-z]{0,3}|/|\\.\\.?|[a-z]{1,3}|\\$HOME|\\$\\{HOME\\})(/(home|Users|root|[a-z]{1,3}|\\.\\.?|))*",
            cwd in "/(home/[a-z]{1,3}|root|Users/b|srv)(/[a-z]{1,3}){0,2}",
        ) {
            let roots = ["/home/*", "/Users/*", "/root"];
            let mut a = PathBuf::new();
            let mut b = PathBuf::new();
            let two = normalize(&path, &cwd, &mut a).map(|n| {
                let n = std::string::String::from(n);
                std::string::String::from(fold_home(&n, roots.iter().copied(), &mut b))
            });
            let mut c = PathBuf::new();
            let one = normalize_home(&path, &cwd, roots.iter().copied(), &mut c).map(std::string::String::from);
            proptest::prop_assert_eq!(one, two);
        }
    }
}

#[cfg(test)]
mod file_name_tests {
    use super::*;

    proptest::proptest! {
        /// The last `/`-separated piece, whatever the text (multi-byte
        /// characters, slashes at either end, none at all).
        #[test]
        fn file_name_is_the_last_slash_separated_piece(text in "[a-z/.é€ ]{0,12}") {
            proptest::prop_assert_eq!(file_name(&text), text.rsplit('/').next().unwrap_or(""));
        }
    }

    #[test]
    fn file_names_of_the_usual_shapes() {
        for (text, want) in [("/usr/bin/rm", "rm"), ("rm", "rm"), ("dir/", ""), ("/", ""), ("", ""), ("~/é/ü", "ü")]
        {
            assert_eq!(file_name(text), want, "{text:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(path: &str, cwd: &str) -> Result<String, PathError> {
        let mut buf = PathBuf::new();
        normalize(path, cwd, &mut buf).map(str::to_string)
    }

    fn ok(path: &str, cwd: &str) -> String {
        n(path, cwd).unwrap_or_else(|e| panic!("{path:?} in {cwd:?}: {e:?}"))
    }

    #[test]
    fn normalises_lexically() {
        assert_eq!(ok("/a/b/../c", ""), "/a/c");
        assert_eq!(ok("a/./b//c/", "/w"), "/w/a/b/c");
        assert_eq!(ok("../../../../etc/passwd", "/home/dev/project"), "/etc/passwd");
        assert_eq!(ok("/", ""), "/");
        assert_eq!(ok("//", ""), "/");
        assert_eq!(ok("///a///b///", ""), "/a/b");
        assert_eq!(ok("/..", ""), "/");
        assert_eq!(ok("/../etc", ""), "/etc");
        assert_eq!(ok("/./.", ""), "/");
        assert_eq!(ok(".", "/w"), "/w");
        assert_eq!(ok("./", "/w"), "/w");
        assert_eq!(ok("..", "/w"), "/");
        assert_eq!(ok("../..", "/w"), "/");
        assert_eq!(ok("x/..", "/w"), "/w");
        assert_eq!(ok("/etc/./shadow", ""), "/etc/shadow");
        assert_eq!(ok("//etc//shadow", ""), "/etc/shadow");
        assert_eq!(ok("/a/b/c/../../d", ""), "/a/d");
        assert_eq!(ok("/a/../../b/../c", ""), "/c");
        assert_eq!(ok("/a/...", ""), "/a/...");
        assert_eq!(ok("/a/.b/..c", ""), "/a/.b/..c");
        assert_eq!(ok("a\\..\\b", "/w"), "/w/a\\..\\b");
        assert_eq!(ok("/tmp/ünï/./x", ""), "/tmp/ünï/x");
        // The cwd is normalised too, and ignored for absolute paths.
        assert_eq!(ok("x", "/w//a/./b/../"), "/w/a/x");
        assert_eq!(ok("/x", "relative"), "/x");
        assert_eq!(ok("/x", "a\0b"), "/x");
    }

    #[test]
    fn keeps_home_symbolic() {
        assert_eq!(ok("~", "/w"), "~");
        assert_eq!(ok("~/", "/w"), "~");
        assert_eq!(ok("~/.ssh/id_rsa", "/w"), "~/.ssh/id_rsa");
        assert_eq!(ok("~//.ssh/./id_rsa", "/w"), "~/.ssh/id_rsa");
        assert_eq!(ok("$HOME/.aws/credentials", "/w"), "~/.aws/credentials");
        assert_eq!(ok("$HOME", "/w"), "~");
        assert_eq!(ok("${HOME}/x", "/w"), "~/x");
        assert_eq!(ok("${HOME}", "/w"), "~");
        assert_eq!(ok("~root/.ssh", "/w"), "~root/.ssh");
        assert_eq!(ok("~root", "/w"), "~root");
        assert_eq!(ok("~/a/..", "/w"), "~");
        assert_eq!(ok("~/..", "/w"), "/");
        assert_eq!(ok("~/../x", "/w"), "/x");
        assert_eq!(ok("~/../../etc/shadow", "/w"), "/etc/shadow");
        assert_eq!(ok("~/a/../../b/../../c", "/w"), "/c");
        assert_eq!(ok("~root/../etc", "/w"), "/etc");
        // Only at the start, and only the whole variable name.
        assert_eq!(ok("$HOMEDIR/x", "/w"), "/w/$HOMEDIR/x");
        assert_eq!(ok("${HOME}x", "/w"), "/w/${HOME}x");
        assert_eq!(ok("a/$HOME", "/w"), "/w/a/$HOME");
        assert_eq!(ok("a/~", "/w"), "/w/a/~");
        // A home working directory.
        assert_eq!(ok("x", "~/p"), "~/p/x");
        assert_eq!(ok("x", "~"), "~/x");
        assert_eq!(ok("../x", "~"), "/x");
        assert_eq!(ok("../../.ssh", "~/a/b"), "~/.ssh");
        assert_eq!(ok("x", "$HOME/p"), "~/p/x");
    }

    #[test]
    fn refuses() {
        assert_eq!(n("", "/"), Err(PathError::Empty));
        assert_eq!(n("", ""), Err(PathError::Empty));
        assert_eq!(n("a\0b", "/"), Err(PathError::Nul));
        assert_eq!(n("/a\0b", "/"), Err(PathError::Nul));
        assert_eq!(n("x", "/w\0"), Err(PathError::Nul));
        assert_eq!(n("x", ""), Err(PathError::RelativeWithoutCwd));
        assert_eq!(n("x", "rel"), Err(PathError::RelativeWithoutCwd));
        assert_eq!(n(".", "./w"), Err(PathError::RelativeWithoutCwd));
        assert_eq!(n(&"a/".repeat(3000), "/"), Err(PathError::TooLong));
        assert_eq!(n("x", &format!("/{}", "d".repeat(MAX_PATH))), Err(PathError::TooLong));
    }

    #[test]
    fn only_the_final_length_counts() {
        let exact = format!("/{}", "a".repeat(MAX_PATH - 1));
        assert_eq!(ok(&exact, ""), exact);
        assert_eq!(n(&format!("{exact}b"), ""), Err(PathError::TooLong));
        let long_then_back = format!("{}{}x", "abc/".repeat(2000), "../".repeat(2000));
        assert_eq!(ok(&long_then_back, "/w"), "/w/x");
        let home_exact = format!("~/{}", "a".repeat(MAX_PATH - 2));
        assert_eq!(ok(&home_exact, ""), home_exact);
        assert_eq!(n(&format!("{home_exact}a"), ""), Err(PathError::TooLong));
    }

    #[test]
    fn containment() {
        assert!(is_within("/w/project/a", "/w/project"));
        assert!(is_within("/w/project", "/w/project"));
        assert!(!is_within("/w/project2", "/w/project"));
        assert!(!is_within("/w", "/w/project"));
        assert!(is_within("/w/project/a", "/w/project/"));
        assert!(is_within("/etc", "/"));
        assert!(is_within("/", "/"));
        assert!(is_within("~/x", "/"));
        assert!(!is_within("relative", "/"));
        assert!(is_within("~/.ssh/x", "~/.ssh"));
        assert!(!is_within("~/.sshx", "~/.ssh"));
        assert!(is_within("~", "~"));
        assert!(is_within("~/x", "~"));
        assert!(!is_within("~root/x", "~"));
        assert!(!is_within("/x", "~"));
        assert!(!is_within("~/x", "/home"));
        assert!(!is_within("/x", ""));
        assert!(!is_within("", "/x"));
    }

    /// Left-to-right reference with a stack, for comparison.
    fn reference(path: &str, cwd: &str) -> Option<String> {
        fn root_of(p: &str) -> Option<(String, &str)> {
            if p.starts_with('/') {
                return Some(("/".into(), p));
            }
            for v in ["$HOME", "${HOME}"] {
                if let Some(r) = p.strip_prefix(v)
                    && (r.is_empty() || r.starts_with('/'))
                {
                    return Some(("~".into(), r));
                }
            }
            if p.starts_with('~') {
                let end = p.find('/').unwrap_or(p.len());
                return Some((p[..end].into(), &p[end..]));
            }
            None
        }
        let (mut root, parts): (String, Vec<&str>) = match root_of(path) {
            Some((root, rest)) => (root, rest.split('/').collect()),
            None => {
                let (root, rest) = root_of(cwd)?;
                (root, rest.split('/').chain(path.split('/')).collect())
            }
        };
        let mut stack: Vec<&str> = Vec::new();
        for part in parts {
            match part {
                "" | "." => {}
                ".." => {
                    if stack.pop().is_none() && root != "/" {
                        root = "/".into();
                    }
                }
                _ => stack.push(part),
            }
        }
        Some(if stack.is_empty() {
            root
        } else if root == "/" {
            format!("/{}", stack.join("/"))
        } else {
            format!("{root}/{}", stack.join("/"))
        })
    }

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn string(&mut self, pieces: &[&str]) -> String {
            (0..self.next() % 16).map(|_| pieces[(self.next() % pieces.len() as u64) as usize]).collect()
        }
    }

    #[test]
    fn agrees_with_a_stack_and_never_panics() {
        let mut rng = Rng(0x1234_5678_9abc_def0);
        let pieces = ["/", "//", ".", "..", "~", "a", "bc", "$HOME", "${HOME}", "\\", "é", "$", "{", "}", "x/"];
        // Mostly paths already in normal form (copied as they are), with
        // now and then a piece that is not.
        let normal = ["/a", "/bc", "/é", "/.x", "/..y", "a", "bc", "~", "~u", "$HOME", "/", ".", ".."];
        for pieces in [&pieces[..], &normal[..]] {
            for _ in 0..20_000 {
                let path = rng.string(pieces);
                let cwd = rng.string(pieces);
                let got = n(&path, &cwd);
                match reference(&path, &cwd) {
                    _ if path.is_empty() => assert_eq!(got, Err(PathError::Empty)),
                    Some(expected) => {
                        let got = got.unwrap_or_else(|e| panic!("{path:?} in {cwd:?}: {e:?}"));
                        assert_eq!(got, expected, "{path:?} in {cwd:?}");
                        // Normalising is idempotent, and the result is within itself.
                        assert_eq!(ok(&got, "/elsewhere"), got);
                        assert!(is_within(&got, &got));
                        assert!(is_within(&got, "/"));
                    }
                    None => assert_eq!(got, Err(PathError::RelativeWithoutCwd), "{path:?} in {cwd:?}"),
                }
            }
        }
        for _ in 0..5000 {
            let bytes: Vec<u8> = (0..rng.next() % 64).map(|_| rng.next() as u8).collect();
            let text = String::from_utf8_lossy(&bytes);
            let _ = n(&text, "/w");
            let _ = n(&text, "~");
            let _ = n("x", &text);
            let _ = is_within(&text, "/w");
            let _ = is_within("/w/x", &text);
        }
    }
}
