//! Checks of the `[tripwire]` list entries and path prefixes against the
//! forms the guard matches: an entry that no judged intent could ever
//! match would be a rule that silently does nothing, so it is refused,
//! with what to write instead (docs/policy.md, "`[tripwire]`").
//!
//! Each check hands back the error message (naming the field and the
//! entry), or nothing when the entry is one the guard understands.

extern crate std;

use std::format;
use std::string::String;

use crate::path::{self, PathError};
use crate::url::{self, Host};

use super::{CompileError, Ctx, Tripwire};

/// A check of one entry: the error message, if it is refused.
type Check = fn(&str) -> Option<String>;

/// Checks the entries of `workspace_roots`, `allowed_domains`,
/// `allowed_ips` and `banned_programs`; the first refused is the error, at
/// its line.
pub(super) fn check_lists(ctx: &Ctx<'_>, tw: &Tripwire) -> Result<(), CompileError> {
    let lists: [(&[toml::Spanned<String>], Check); 4] = [
        (&tw.workspace_roots, workspace_root),
        (&tw.allowed_domains, allowed_domain),
        (&tw.allowed_ips, allowed_ip),
        (&tw.banned_programs, banned_program),
    ];
    for (list, check) in lists {
        for entry in list {
            if let Some(message) = check(entry.get_ref()) {
                return Err(ctx.err(Some(entry.span()), None, message));
            }
        }
    }
    Ok(())
}

/// A `workspace_roots` entry: `$CWD` (the intent's working directory), or a
/// directory the guard can resolve without a working directory — absolute
/// (`/srv/app`) or below a home (`~/src`, `$HOME/src`, `~user/src`). The
/// guard resolves any other entry against `/`, which is not what a
/// relative root means.
pub(super) fn workspace_root(root: &str) -> Option<String> {
    const FIELD: &str = "tripwire.workspace_roots";
    if root == "$CWD" {
        return None;
    }
    let mut buf = path::PathBuf::new();
    match path::normalize(root, "", &mut buf) {
        Ok(_) => None,
        Err(PathError::Empty) => Some(format!(
            "{FIELD}: an entry is empty: write `$CWD` (the intent's working directory), an absolute directory \
             (`/srv/app`) or one below the home (`~/src`)"
        )),
        Err(PathError::RelativeWithoutCwd) if root.starts_with("$CWD") => Some(format!(
            "{FIELD}: `{root}`: `$CWD` is understood only alone (the intent's working directory): write `$CWD`, \
             or the directory as an absolute path (`/…`) or below the home (`~/…`)"
        )),
        Err(PathError::RelativeWithoutCwd) => {
            let shown = relative_shown(root);
            Some(format!(
                "{FIELD}: `{root}` is a relative path: write `$CWD` (the intent's working directory), an absolute \
                 directory (`/…/{shown}`) or one below the home (`~/{shown}`)"
            ))
        }
        Err(e) => Some(format!("{FIELD}: `{root}` is not a usable path: {e:?}")),
    }
}

/// A `[[tripwire.paths]]` prefix (its rule is named with the error): a
/// path the guard can normalise without a working directory. Judged paths
/// are absolute or home-based by then (resolved against the intent's
/// `cwd`), so a relative prefix would be read from `/` — not what it says.
pub(super) fn path_prefix(prefix: &str) -> Option<String> {
    let mut buf = path::PathBuf::new();
    match path::normalize(prefix, "", &mut buf) {
        Ok(_) => None,
        Err(PathError::RelativeWithoutCwd) => {
            let shown = relative_shown(prefix);
            Some(format!(
                "prefix `{prefix}` is a relative path, and paths are judged absolute or below the home: write it \
                 from `/` (`/…/{shown}`) or `~` (`~/{shown}`)"
            ))
        }
        Err(e) => Some(format!("prefix `{prefix}` is not a usable path: {e:?}")),
    }
}

/// A relative path as the examples of an error show it, without its
/// leading `./`.
fn relative_shown(relative: &str) -> &str {
    let mut shown = relative;
    while let Some(rest) = shown.strip_prefix("./") {
        shown = rest.trim_start_matches('/');
    }
    shown
}

/// A `banned_programs` entry: a program's name. The guard compares it with
/// the basename of the program a command runs (`/usr/bin/nc` and `nc` both
/// run `nc`), so a name with `/` never matches, nor does an empty one or
/// one with white space (no program word holds any).
pub(super) fn banned_program(name: &str) -> Option<String> {
    const FIELD: &str = "tripwire.banned_programs";
    if name.is_empty() {
        return Some(format!("{FIELD}: an entry is empty: write a program's name (`nc`)"));
    }
    if name.contains('/') {
        let base = path::file_name(name.trim_end_matches('/'));
        return Some(format!(
            "{FIELD}: `{name}` is a path, and programs are matched by name whatever directory they run from: \
             write `{base}`"
        ));
    }
    if name.chars().any(char::is_whitespace) {
        let first = name.split_whitespace().next().unwrap_or("");
        return Some(format!(
            "{FIELD}: `{name}` is not a program name (it has white space): write the program alone (`{first}`), \
             or a `command` rule for a command line"
        ));
    }
    None
}

/// An `allowed_domains` entry: a host name as a URL's parser reads it
/// (labels of letters, digits, `-`, `_`, non-empty, an optional trailing
/// dot), optionally after `*.` (its subdomains only). No scheme, port,
/// path, other wildcard or IP address: the guard compares the host alone.
pub(super) fn allowed_domain(domain: &str) -> Option<String> {
    const FIELD: &str = "tripwire.allowed_domains";
    const FORMS: &str = "(`example.com`: it and its subdomains; `*.example.com`: its subdomains only)";
    if domain.is_empty() {
        return Some(format!("{FIELD}: an entry is empty: write a host name {FORMS}"));
    }
    let body = domain.strip_prefix("*.").unwrap_or(domain);
    if is_domain(body) {
        return None;
    }
    // What was probably meant: the host of a URL or of `host:port`.
    let host = host_of(domain);
    let write = |what: &str| match host.filter(|h| is_domain(h.strip_prefix("*.").unwrap_or(h))) {
        Some(h) => format!("{FIELD}: `{domain}` {what}: write the host name alone, `{h}`"),
        None => format!("{FIELD}: `{domain}` {what}: write a host name alone {FORMS}"),
    };
    if is_ip(domain) || host.is_some_and(is_ip) {
        return Some(format!(
            "{FIELD}: `{domain}` is an IP address: list IP-literal hosts in `tripwire.allowed_ips`, as written in \
             URLs"
        ));
    }
    if domain.contains("://") {
        return Some(write("is a URL, not a host name"));
    }
    if domain.contains(['/', '?', '#']) {
        return Some(write("has a path"));
    }
    if domain.contains('@') {
        return Some(write("has a user name"));
    }
    if domain.contains(':') {
        return Some(write("has a port, and domains are matched on any port"));
    }
    if domain.contains('*') {
        return Some(format!(
            "{FIELD}: `{domain}`: `*` is understood only as a leading `*.` {FORMS}; there is no entry for every \
             domain (set `tripwire.unlisted_domain` instead)"
        ));
    }
    if let Some(apex) = domain.strip_prefix('.').filter(|apex| is_domain(apex)) {
        return Some(format!(
            "{FIELD}: `{domain}`: a leading `.` matches nothing: write `{apex}` (it and its subdomains) or \
             `*.{apex}` (its subdomains only)"
        ));
    }
    Some(format!(
        "{FIELD}: `{domain}` is not a host name: write dot-separated labels of letters, digits, `-` and `_` {FORMS}"
    ))
}

/// An `allowed_ips` entry: an IP address as a URL writes it — IPv4 in any
/// spelling URLs accept (`10.0.0.1`, `127.1`, `0x7f000001`), IPv6 without
/// its brackets (`::1`). The guard compares the URL's host text with the
/// entry (ASCII case-insensitively), so ranges, ports, brackets and host
/// names never match.
pub(super) fn allowed_ip(ip: &str) -> Option<String> {
    const FIELD: &str = "tripwire.allowed_ips";
    const FORMS: &str = "(`10.0.0.1`, `::1`)";
    if is_ip(ip) {
        return None;
    }
    if let Some((address, _)) = ip.split_once('/').filter(|(address, _)| is_ip(address)) {
        return Some(format!(
            "{FIELD}: `{ip}` is a range, and entries are matched as written in URLs, one address each: list the \
             addresses (`{address}`)"
        ));
    }
    if let Some(host) = host_of(ip).filter(|h| is_ip(h)) {
        return Some(format!(
            "{FIELD}: `{ip}`: write the address alone, as in a URL's host (IPv6 without brackets): `{host}`"
        ));
    }
    Some(format!(
        "{FIELD}: `{ip}` is not an IP address: write one as URLs write it {FORMS}; host names go in \
         `tripwire.allowed_domains`"
    ))
}

/// Whether `text` is a host the URL parser reads as a domain, exactly as
/// written (a trailing dot aside).
fn is_domain(text: &str) -> bool {
    // Characters that would end the host or change how a URL reads.
    if text.is_empty() || text.contains([':', '/', '?', '#', '@', '[', ']', '\\', '%', '*']) {
        return false;
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    matches!(url::parse(&format!("https://{text}/")), Ok(u) if u.host == Host::Domain(name))
}

/// Whether `text` is an IP literal the URL parser reads, as a URL's host
/// text (IPv6 without brackets) would be written.
fn is_ip(text: &str) -> bool {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b':' | b'x' | b'X')) {
        return false;
    }
    if text.contains(':') {
        matches!(url::parse(&format!("https://[{text}]/")), Ok(u) if matches!(u.host, Host::Ipv6(_)))
    } else {
        matches!(url::parse(&format!("https://{text}/")), Ok(u) if matches!(u.host, Host::Ipv4(_)))
    }
}

/// The host an entry written as a URL or an authority names (`x.com` in
/// `http://x.com/`, `x.com:443`, `user@x.com`; `::1` in `[::1]:80`), when
/// it differs from the entry.
fn host_of(entry: &str) -> Option<&str> {
    let rest = entry.split_once("://").map_or(entry, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.rsplit_once(':').map_or(host_port, |(host, _)| host),
    };
    (!host.is_empty() && host != entry).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::super::{CompileError, compile};

    /// A policy with `body` in its `[tripwire]` table (line 4 on).
    fn policy(body: &str) -> String {
        format!("version = 1\nname = \"t\"\n[tripwire]\n{body}\n")
    }

    /// The error compiling `[tripwire]` `body` gives.
    fn refused(body: &str) -> CompileError {
        match compile(&policy(body), "p.toml") {
            Ok(_) => panic!("accepted: {body}"),
            Err(e) => e,
        }
    }

    fn accepted(body: &str) {
        if let Err(e) = compile(&policy(body), "p.toml") {
            panic!("refused: {body}: {e}");
        }
    }

    /// `field = [entry]` is refused with exactly `message`, at `line`.
    fn refuses(field: &str, entry: &str, line: usize, message: &str) {
        let body = format!("{}{field} = [\"{entry}\"]", "\n".repeat(line - 4));
        let e = refused(&body);
        assert_eq!(e.message, message, "{field} = [{entry:?}]");
        assert_eq!((e.file.as_str(), e.line, e.rule.as_deref()), ("p.toml", Some(line), None), "{field}: {entry}");
    }

    #[test]
    fn workspace_roots_must_be_cwd_absolute_or_below_a_home() {
        refuses(
            "workspace_roots",
            "relative/dir",
            6,
            "tripwire.workspace_roots: `relative/dir` is a relative path: write `$CWD` (the intent's working \
             directory), an absolute directory (`/…/relative/dir`) or one below the home (`~/relative/dir`)",
        );
        refuses(
            "workspace_roots",
            "./build",
            4,
            "tripwire.workspace_roots: `./build` is a relative path: write `$CWD` (the intent's working \
             directory), an absolute directory (`/…/build`) or one below the home (`~/build`)",
        );
        refuses(
            "workspace_roots",
            "$CWD/build",
            4,
            "tripwire.workspace_roots: `$CWD/build`: `$CWD` is understood only alone (the intent's working \
             directory): write `$CWD`, or the directory as an absolute path (`/…`) or below the home (`~/…`)",
        );
        refuses(
            "workspace_roots",
            "",
            4,
            "tripwire.workspace_roots: an entry is empty: write `$CWD` (the intent's working directory), an \
             absolute directory (`/srv/app`) or one below the home (`~/src`)",
        );
        // The bad entry is named wherever it stands in the list.
        let e = refused("workspace_roots = [\n  \"$CWD\",\n  \"/tmp\",\n  \"tmp\",\n]");
        assert_eq!(e.line, Some(7));
        assert!(e.message.starts_with("tripwire.workspace_roots: `tmp` is a relative path"), "{}", e.message);
        accepted(
            r#"workspace_roots = ["$CWD", "/tmp", "/srv/app/", "~/src", "$HOME/src", "${HOME}/w", "~bob/w", "/"]"#,
        );
    }

    #[test]
    fn path_prefixes_must_be_absolute_or_below_a_home() {
        let e = refused("\n[[tripwire.paths]]\nprefix = \"secrets/prod\"\ndecision = \"deny\"");
        assert_eq!(
            e.message,
            "prefix `secrets/prod` is a relative path, and paths are judged absolute or below the home: write it \
             from `/` (`/…/secrets/prod`) or `~` (`~/secrets/prod`)"
        );
        assert_eq!((e.line, e.rule.as_deref()), (Some(5), Some("path:secrets/prod")));
        let e = refused("[[tripwire.paths]]\nid = \"env\"\nprefix = \".env\"\ndecision = \"deny\"");
        assert_eq!((e.line, e.rule.as_deref()), (Some(4), Some("env")));
        assert!(e.message.starts_with("prefix `.env` is a relative path"), "{}", e.message);
        // As before: an empty prefix.
        let e = refused("[[tripwire.paths]]\nprefix = \"\"\ndecision = \"deny\"");
        assert_eq!(e.message, "prefix `` is not a usable path: Empty");
        for prefix in ["/etc/shadow", "~/.ssh", "$HOME/.aws", "${HOME}/.kube", "~root/.ssh", "/etc/", "/"] {
            accepted(&format!("[[tripwire.paths]]\nprefix = \"{prefix}\"\ndecision = \"deny\""));
        }
    }

    #[test]
    fn banned_programs_are_bare_names() {
        refuses(
            "banned_programs",
            "/usr/bin/nc",
            5,
            "tripwire.banned_programs: `/usr/bin/nc` is a path, and programs are matched by name whatever \
             directory they run from: write `nc`",
        );
        refuses(
            "banned_programs",
            "bin/socat/",
            4,
            "tripwire.banned_programs: `bin/socat/` is a path, and programs are matched by name whatever \
             directory they run from: write `socat`",
        );
        refuses(
            "banned_programs",
            "nc -l",
            4,
            "tripwire.banned_programs: `nc -l` is not a program name (it has white space): write the program \
             alone (`nc`), or a `command` rule for a command line",
        );
        refuses("banned_programs", "", 4, "tripwire.banned_programs: an entry is empty: write a program's name (`nc`)");
        accepted(r#"banned_programs = ["nc", "ncat", "mkfs.ext4", "7z", "x-y_z+1"]"#);
    }

    #[test]
    fn allowed_domains_are_host_names() {
        let d = |entry: &str, message: &str| refuses("allowed_domains", entry, 4, message);
        d(
            "http://x.com/",
            "tripwire.allowed_domains: `http://x.com/` is a URL, not a host name: write the host name alone, `x.com`",
        );
        d(
            "https://user@api.x.com:8443/v1",
            "tripwire.allowed_domains: `https://user@api.x.com:8443/v1` is a URL, not a host name: write the host \
             name alone, `api.x.com`",
        );
        d("x.com/", "tripwire.allowed_domains: `x.com/` has a path: write the host name alone, `x.com`");
        d(
            "x.com:443",
            "tripwire.allowed_domains: `x.com:443` has a port, and domains are matched on any port: write the host name alone, `x.com`",
        );
        d("me@x.com", "tripwire.allowed_domains: `me@x.com` has a user name: write the host name alone, `x.com`");
        d(
            ".x.com",
            "tripwire.allowed_domains: `.x.com`: a leading `.` matches nothing: write `x.com` (it and its \
             subdomains) or `*.x.com` (its subdomains only)",
        );
        let star = |entry: &str| {
            format!(
                "tripwire.allowed_domains: `{entry}`: `*` is understood only as a leading `*.` (`example.com`: it \
                 and its subdomains; `*.example.com`: its subdomains only); there is no entry for every domain (set \
                 `tripwire.unlisted_domain` instead)"
            )
        };
        for entry in ["*", "*.", "*x.com", "api.*.x.com", "*.*.x.com"] {
            d(entry, &star(entry));
        }
        let ip = |entry: &str| {
            format!(
                "tripwire.allowed_domains: `{entry}` is an IP address: list IP-literal hosts in \
                 `tripwire.allowed_ips`, as written in URLs"
            )
        };
        for entry in ["10.0.0.1", "127.1", "::1", "https://[::1]/", "10.0.0.1:80"] {
            d(entry, &ip(entry));
        }
        let not_host = |entry: &str| {
            format!(
                "tripwire.allowed_domains: `{entry}` is not a host name: write dot-separated labels of letters, \
                 digits, `-` and `_` (`example.com`: it and its subdomains; `*.example.com`: its subdomains only)"
            )
        };
        for entry in ["x..com", "x.com..", "x .com", " x.com", "x!.com", "ｅxample.com"] {
            d(entry, &not_host(entry));
        }
        d(
            "",
            "tripwire.allowed_domains: an entry is empty: write a host name (`example.com`: it and its subdomains; \
             `*.example.com`: its subdomains only)",
        );
        accepted(
            r#"allowed_domains = ["github.com", "GitHub.COM", "*.githubusercontent.com", "x.com.", "localhost",
               "my_host.internal", "a-b.c-d.io", "xn--bcher-kva.example", "bücher.example"]"#,
        );
    }

    #[test]
    fn allowed_ips_are_addresses_as_urls_write_them() {
        let ip = |entry: &str, message: &str| refuses("allowed_ips", entry, 4, message);
        let not_ip = |entry: &str| {
            format!(
                "tripwire.allowed_ips: `{entry}` is not an IP address: write one as URLs write it (`10.0.0.1`, \
                 `::1`); host names go in `tripwire.allowed_domains`"
            )
        };
        for entry in ["not-an-ip", "example.com", "1.2.3.4.5", "256.1.1.1", "::1::2", "10.0.0.1 ", "fe80::1%eth0", ""] {
            ip(entry, &not_ip(entry));
        }
        ip(
            "10.0.0.0/8",
            "tripwire.allowed_ips: `10.0.0.0/8` is a range, and entries are matched as written in URLs, one address \
             each: list the addresses (`10.0.0.0`)",
        );
        ip(
            "fd00::/8",
            "tripwire.allowed_ips: `fd00::/8` is a range, and entries are matched as written in URLs, one address \
             each: list the addresses (`fd00::`)",
        );
        let alone = |entry: &str, host: &str| {
            format!(
                "tripwire.allowed_ips: `{entry}`: write the address alone, as in a URL's host (IPv6 without \
                 brackets): `{host}`"
            )
        };
        for (entry, host) in
            [("[::1]", "::1"), ("[::1]:8080", "::1"), ("10.0.0.1:80", "10.0.0.1"), ("http://10.0.0.1/", "10.0.0.1")]
        {
            ip(entry, &alone(entry, host));
        }
        accepted(
            r#"allowed_ips = ["10.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "::1", "FE80::1",
               "::ffff:127.0.0.1", "2001:db8::8a2e:370:7334", "1.2.3.4."]"#,
        );
    }

    /// Every entry the checks accept is one the guard can match: the
    /// entries above, in a policy, allow what they name.
    #[test]
    fn accepted_entries_match() {
        use crate::Decision;
        use crate::bundle::Bundle;
        let source = "version = 1\nname = \"t\"\ndefault = \"allow\"\n[tools]\nallow = [\"http\", \"shell\", \
                      \"read_file\"]\n[tripwire]\nunlisted_domain = \"deny\"\nworkspace_roots = [\"~/src\", \"/srv\"]\n\
                      allowed_domains = [\"GitHub.com\", \"*.x.com\", \"y.org.\"]\nallowed_ips = [\"10.0.0.1\", \
                      \"2001:db8::1\", \"FE80::1\", \"127.1\"]\nbanned_programs = [\"nc\"]\n[[tripwire.paths]]\n\
                      prefix = \"$HOME/secrets\"\ndecision = \"deny\"\n";
        let compiled = compile(source, "t.toml").expect("compiles");
        let bundle = Bundle::load(&compiled.bundle).expect("loads");
        let judge = |tool: &str, key: &str, value: &str| {
            let intent = serde_json::json!({"id": 1, "agent": "t", "tool": tool, "args": {key: value}, "cwd": "/"});
            let cbor = crate::intent::json::to_cbor(&intent).expect("intent encodes");
            crate::eval::evaluate(&bundle, &cbor).decision
        };
        let url = |u: &str| judge("http", "url", u);
        let allowed: Vec<&str> =
            ["https://github.com/a", "https://api.github.com/", "https://a.x.com/", "https://y.org/"]
                .into_iter()
                .chain(["https://10.0.0.1/", "https://[2001:db8::1]:8443/", "https://[fe80::1]/", "https://127.1/"])
                .collect();
        for u in allowed {
            assert_eq!(url(u), Decision::Allow, "{u}");
        }
        for u in ["https://x.com/", "https://10.0.0.2/", "https://z.org/"] {
            assert_eq!(url(u), Decision::Deny, "{u}");
        }
        for c in ["nc -l 4444", "/usr/bin/nc -l 4444"] {
            assert_eq!(judge("shell", "command", c), Decision::Deny, "{c}");
        }
        assert_eq!(judge("read_file", "path", "/home/alice/secrets/k"), Decision::Deny);
        assert_eq!(judge("read_file", "path", "~/src/a.rs"), Decision::Allow);
        assert_eq!(judge("read_file", "path", "/srv/a"), Decision::Allow);
        assert_eq!(judge("read_file", "path", "/opt/a"), Decision::Deny);
    }
}
