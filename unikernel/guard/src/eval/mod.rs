//! Evaluation: one intent, one bundle, one verdict — in a fixed, documented
//! order (docs/policy.md, "Evaluation"):
//!
//! 1. **schema** — decoding, limits, the tool's required arguments;
//! 2. **tools** — deny / escalate / allow lists, unknown tools;
//! 3. **tripwire** — shell parsing (programs, metacharacters, banned
//!    programs, look-alikes), paths (normalised, workspace, path rules),
//!    URLs (scheme, userinfo, IP literals, allowed domains);
//! 4. **rules** — the bundle's DFAs over each field class;
//! 5. **scorer** — the weights of matched rules against the thresholds;
//! 6. **justification** — minimum length;
//! 7. **default** — when no stage decided anything.
//!
//! Every stage runs (so the verdict lists every matched rule); the result is
//! the strictest decision (DENY > ESCALATE > ALLOW) and the stage that first
//! reached it. Anything malformed is DENY. No allocation, no I/O, no clock:
//! the same bytes and bundle always give the same verdict.

use crate::bundle::{Bundle, FieldClass, PathRule, access, list, settings};
use crate::dfa::{self, RuleSet};
use crate::intent::{self, Intent, IntentError};
use crate::{Decision, glob, path, url};

mod code;
mod line;
mod shell;

pub use shell::canonical_command;

/// Where a verdict was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// Decoding, limits, required arguments.
    Schema = 0,
    /// Tool lists.
    Tools = 1,
    /// Tripwire checks.
    Tripwire = 2,
    /// DFA rules.
    Rules = 3,
    /// Scorer.
    Scorer = 4,
    /// Justification length.
    Justification = 5,
    /// The policy default.
    Default = 6,
}

impl Stage {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Schema => "schema",
            Stage::Tools => "tools",
            Stage::Tripwire => "tripwire",
            Stage::Rules => "rules",
            Stage::Scorer => "scorer",
            Stage::Justification => "justification",
            Stage::Default => "default",
        }
    }
}

/// Why: a reason code (stable, machine-readable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The intent could not be decoded or broke a limit.
    Malformed(IntentError),
    /// The tool's required argument is missing.
    MissingArgument,
    /// The tool is on the deny list.
    ToolDenied,
    /// The tool is on the escalate list.
    ToolEscalated,
    /// The tool is on no list.
    UnknownTool,
    /// The shell command cannot be parsed.
    ShellUnparseable,
    /// The shell command is too complex to judge.
    ShellTooComplex,
    /// Chains, pipes or substitutions, and the policy restricts them.
    ShellMetacharacters,
    /// A program name with non-ASCII characters (look-alikes).
    NonAsciiProgram,
    /// A banned program.
    BannedProgram,
    /// A path that cannot be normalised.
    BadPath,
    /// A path outside the workspace roots.
    OutsideWorkspace,
    /// A path rule matched.
    PathRule,
    /// A URL that cannot be parsed or has a forbidden scheme.
    BadUrl,
    /// `http://` where https is required.
    PlainHttp,
    /// Credentials in the URL.
    Userinfo,
    /// An IP-literal host.
    IpLiteral,
    /// A domain not on the allowed list (read).
    UnlistedDomain,
    /// A domain not on the allowed list (upload).
    UnlistedDomainUpload,
    /// A DFA rule matched.
    RuleMatched,
    /// The score reached a threshold.
    Score,
    /// The justification is too short.
    ShortJustification,
    /// The policy default.
    Default,
    /// A shell command no `allow` command rule knows (the posture).
    UnknownCommand,
    /// Code the judge cannot see run by a shell or an interpreter.
    OpaqueCode,
    /// The judge cannot compute what runs (script file, unknown variable,
    /// pattern as program, function, positional parameters).
    Unresolved,
}

impl Reason {
    /// Stable reason code.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed(_) => "malformed",
            Reason::MissingArgument => "missing_argument",
            Reason::ToolDenied => "tool_denied",
            Reason::ToolEscalated => "tool_escalated",
            Reason::UnknownTool => "unknown_tool",
            Reason::ShellUnparseable => "shell_unparseable",
            Reason::ShellTooComplex => "shell_too_complex",
            Reason::ShellMetacharacters => "shell_metacharacters",
            Reason::NonAsciiProgram => "non_ascii_program",
            Reason::BannedProgram => "banned_program",
            Reason::BadPath => "bad_path",
            Reason::OutsideWorkspace => "outside_workspace",
            Reason::PathRule => "path_rule",
            Reason::BadUrl => "bad_url",
            Reason::PlainHttp => "plain_http",
            Reason::Userinfo => "url_userinfo",
            Reason::IpLiteral => "ip_literal",
            Reason::UnlistedDomain => "unlisted_domain",
            Reason::UnlistedDomainUpload => "unlisted_domain_upload",
            Reason::RuleMatched => "rule",
            Reason::Score => "score",
            Reason::ShortJustification => "short_justification",
            Reason::Default => "default",
            Reason::UnknownCommand => "unknown_command",
            Reason::OpaqueCode => "opaque_code",
            Reason::Unresolved => "unresolved",
        }
    }
}

/// The judgement of one intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The intent's id (0 when it could not be decoded).
    pub intent_id: u64,
    /// ALLOW, ESCALATE or DENY.
    pub decision: Decision,
    /// The stage that decided.
    pub stage: Stage,
    /// Why.
    pub reason: Reason,
    /// The first rule behind the decision, when a rule decided.
    pub rule: Option<u32>,
    /// Every matched rule (DFA and path rules).
    pub rules: RuleSet,
    /// Scorer total.
    pub score: i32,
}

/// Accumulates stage outcomes.
struct Acc {
    decided: Option<(Decision, Stage, Reason, Option<u32>)>,
    rules: RuleSet,
    /// Path rules that matched: already decided in the tripwire stage.
    path_hits: RuleSet,
    score: i32,
    /// The last command line the command class was scanned over, and what
    /// matched: a simple command's line as written and as canonical is
    /// often the same text.
    command_scan: ScanMemo,
}

/// Longest text [`ScanMemo`] keeps.
const MEMO_BYTES: usize = 256;

/// One scanned text and its matches.
struct ScanMemo {
    text: heapless::Vec<u8, MEMO_BYTES>,
    rules: RuleSet,
    valid: bool,
}

impl ScanMemo {
    const EMPTY: ScanMemo = ScanMemo { text: heapless::Vec::new(), rules: RuleSet::EMPTY, valid: false };
}

/// Runs the command class's DFAs over `text` and adds the matches to
/// `out` — from `acc`'s memo when it scanned the same text last.
fn scan_command(bundle: &Bundle<'_>, text: &str, acc: &mut Acc, out: Option<&mut RuleSet>) {
    let memo = &mut acc.command_scan;
    if !(memo.valid && memo.text.as_slice() == text.as_bytes()) {
        memo.rules.clear();
        dfa::scan_class(bundle, FieldClass::Command, text.as_bytes(), &mut memo.rules);
        memo.text.clear();
        memo.valid = memo.text.extend_from_slice(text.as_bytes()).is_ok();
    }
    out.unwrap_or(&mut acc.rules).union_with(&acc.command_scan.rules);
}

impl Acc {
    /// Nothing decided, nothing matched.
    const EMPTY: Acc = Acc {
        decided: None,
        rules: RuleSet::EMPTY,
        path_hits: RuleSet::EMPTY,
        score: 0,
        command_scan: ScanMemo::EMPTY,
    };

    fn raise(&mut self, decision: Decision, stage: Stage, reason: Reason, rule: Option<u32>) {
        match self.decided {
            Some((current, ..)) if current >= decision => {}
            _ => self.decided = Some((decision, stage, reason, rule)),
        }
    }
}

fn deny(intent_id: u64, stage: Stage, reason: Reason) -> Verdict {
    Verdict { intent_id, decision: Decision::Deny, stage, reason, rule: None, rules: RuleSet::default(), score: 0 }
}

/// Evaluates one CBOR-encoded intent under `bundle`.
pub fn evaluate(bundle: &Bundle<'_>, intent_bytes: &[u8]) -> Verdict {
    let mut intent = Intent::EMPTY;
    match intent::decode_into(intent_bytes, &mut intent) {
        Ok(()) => evaluate_intent(bundle, &intent),
        Err(e) => deny(0, Stage::Schema, Reason::Malformed(e)),
    }
}

/// Which file operation a tool performs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    Any,
    /// Names and metadata only (`ls`, `stat`): no path rule applies.
    List,
    /// The path and everything below it (`rm -r`, `chmod -R`): a
    /// protected path inside it is reached too.
    Tree,
    /// Every file below the path, read (`grep -r`, `rg`): a protected path
    /// inside it is read too.
    ReadTree,
}

impl Access {
    /// Whether a rule that applies to the accesses `bits` ([`access`]
    /// bits) applies to this operation.
    fn is_in(self, bits: u8) -> bool {
        match self {
            Access::Read | Access::ReadTree => bits & access::READ != 0,
            Access::Write => bits & access::WRITE != 0,
            Access::Any | Access::Tree => true,
            Access::List => false,
        }
    }
}

/// Evaluates a decoded intent.
pub fn evaluate_intent(bundle: &Bundle<'_>, intent: &Intent<'_>) -> Verdict {
    let required = match intent.tool {
        "shell" => Some("command"),
        "read_file" | "write_file" => Some("path"),
        "http" => Some("url"),
        _ => None,
    };
    if let Some(arg) = required
        && intent.args.get(arg).is_none()
    {
        return deny(intent.id, Stage::Schema, Reason::MissingArgument);
    }
    let mut acc = Acc::EMPTY;

    // 2. tools
    let listed = |kind| bundle.list(kind).any(|pattern| tool_matches(intent.tool, pattern));
    if listed(list::TOOLS_DENY) {
        acc.raise(Decision::Deny, Stage::Tools, Reason::ToolDenied, None);
    } else if listed(list::TOOLS_ESCALATE) {
        acc.raise(Decision::Escalate, Stage::Tools, Reason::ToolEscalated, None);
    } else if !listed(list::TOOLS_ALLOW) {
        acc.raise(bundle.decision(settings::UNKNOWN_TOOL), Stage::Tools, Reason::UnknownTool, None);
    }

    // 3. tripwire (and the path/url/command strings for 4.)
    match intent.tool {
        "shell" => shell::tripwire(bundle, intent, &mut acc),
        "read_file" if intent.args.get("recursive") == Some("true") => {
            file_tripwire(bundle, intent, Access::Tree, &mut acc);
        }
        "read_file" => file_tripwire(bundle, intent, Access::Read, &mut acc),
        "write_file" => file_tripwire(bundle, intent, Access::Write, &mut acc),
        "http" => {
            let request = Request::of_method(intent.args.get("method").unwrap_or("GET"));
            url_tripwire(bundle, intent.args.get("url").unwrap_or(""), request, &mut acc);
            let body = intent.args.get("body").unwrap_or("");
            let addressed =
                (shell::may_quote_commands(body) || shell::may_name_files(body)) && shell::addresses_agents(body);
            shell::quoted_commands(bundle, body, intent.cwd, addressed, &mut acc);
            shell::named_files(bundle, body, intent.cwd, addressed, &mut acc);
        }
        _ => other_tool_tripwire(bundle, intent, &mut acc),
    }

    // 4. rules over free text and every argument
    scan(bundle, FieldClass::Text, intent.justification, &mut acc.rules);
    for (_, value) in intent.args.iter() {
        scan(bundle, FieldClass::Arg, value, &mut acc.rules);
    }
    // Taken out while `acc` raises; put back below.
    let matched = core::mem::take(&mut acc.rules);
    let mut score: i32 = 0;
    for index in matched.iter() {
        let Some(rule) = bundle.rule_effect(index) else { continue };
        score = score.saturating_add(rule.weight);
        if let Some(decision) = rule.decision
            && !acc.path_hits.contains(index)
        {
            acc.raise(decision, Stage::Rules, Reason::RuleMatched, Some(index as u32));
        }
    }
    acc.rules = matched;
    acc.score = score;

    // 5. scorer
    let (escalate_at, deny_at) = bundle.score_thresholds();
    if deny_at > 0 && score >= deny_at {
        acc.raise(Decision::Deny, Stage::Scorer, Reason::Score, None);
    } else if escalate_at > 0 && score >= escalate_at {
        acc.raise(Decision::Escalate, Stage::Scorer, Reason::Score, None);
    }

    // 6. justification
    let min = bundle.min_justification();
    if min > 0 && intent.justification.trim().len() < min {
        acc.raise(
            bundle.decision(settings::SHORT_JUSTIFICATION),
            Stage::Justification,
            Reason::ShortJustification,
            None,
        );
    }

    // 7. default
    let (decision, stage, reason, rule) =
        acc.decided.unwrap_or((bundle.decision(settings::DEFAULT), Stage::Default, Reason::Default, None));
    Verdict { intent_id: intent.id, decision, stage, reason, rule, rules: acc.rules, score: acc.score }
}

/// Any other tool (`mcp:…`): its arguments are judged by what their names
/// say they are — a command line (`command`, `cmd`, `script`, `shell`), a
/// path (`path`, `file`, `filename`, `source`, `destination`, `target`,
/// `directory`, …) or a URL (`url`, `uri`, `endpoint`, `href`) — with the
/// same checks as the built-in tools. Paths are any access: the judge does
/// not know what the tool does with them.
fn other_tool_tripwire(bundle: &Bundle<'_>, intent: &Intent<'_>, acc: &mut Acc) {
    // Whether any argument addresses AI agents: a title may, and a body
    // hold the command.
    let quoting = intent.args.iter().any(|(_, value)| shell::may_quote_commands(value));
    let naming = intent.args.iter().any(|(_, value)| shell::may_name_files(value));
    let addressed = (quoting || naming) && intent.args.iter().any(|(_, value)| shell::addresses_agents(value));
    for (key, value) in intent.args.iter() {
        let class = ArgClass::of(key);
        if class != ArgClass::Command {
            shell::quoted_commands(bundle, value, intent.cwd, addressed, acc);
        }
        // A file's content an MCP tool writes (`content`, `contents`) is a
        // file, as `write_file`'s is: agent guidelines in it name files
        // they must leave alone.
        let file_content = ["content", "contents"].iter().any(|k| key.rsplit(['_', '-', '.']).next() == Some(k));
        if class == ArgClass::Other && !file_content {
            shell::named_files(bundle, value, intent.cwd, addressed, acc);
        }
        match class {
            ArgClass::Command => shell::command_tripwire(bundle, value, intent.cwd, acc),
            ArgClass::Path => {
                for item in value.split(['\n', ',']).map(str::trim).filter(|p| !p.is_empty()) {
                    let mut buf = path::PathBuf::new();
                    if let Ok(normalized) = resolve(bundle, item, intent.cwd, &mut buf) {
                        judge_path(bundle, normalized, Access::Any, acc);
                    }
                }
            }
            ArgClass::Url => url_tripwire(bundle, value, Request::Read, acc),
            ArgClass::Other => {}
        }
    }
}

/// What an argument of a tool the judge does not know is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgClass {
    /// A command line: judged as `shell` judges `command`.
    Command,
    /// Paths (one per line or comma-separated): judged as any access.
    Path,
    /// A URL: judged as an `http` GET.
    Url,
    /// Anything else: only the rules see it.
    Other,
}

impl ArgClass {
    /// The class of the argument named `key`: decided by its last word
    /// (the text after the last `_`, `-` or `.`, compared without case), so
    /// `command`, `shell_cmd` and `Deploy-Script` are command lines and
    /// `file_path`, `src` and `targets.dir` paths. Keys of any length.
    pub fn of(key: &str) -> ArgClass {
        let word = key.rsplit(['_', '-', '.']).next().unwrap_or(key);
        let is = |names: &[&str]| names.iter().any(|name| word.eq_ignore_ascii_case(name));
        if is(&["command", "cmd", "script", "shell", "commandline", "exec"]) {
            ArgClass::Command
        } else if is(&[
            "path",
            "file",
            "filename",
            "filepath",
            "source",
            "src",
            "destination",
            "dest",
            "dst",
            "target",
            "directory",
            "dir",
            "folder",
            "paths",
            "files",
        ]) {
            ArgClass::Path
        } else if is(&["url", "uri", "endpoint", "href", "link", "webhook"]) {
            ArgClass::Url
        } else {
            ArgClass::Other
        }
    }
}

/// Whether `tool` matches `pattern`, where `*` stands for any run of
/// characters (none included) and everything else for itself:
/// `"mcp:*"`, `"mcp:*/delete*"`. Linear: the classic two-pointer match
/// that backtracks only to the last `*`.
fn tool_matches(tool: &str, pattern: &str) -> bool {
    let (t, p) = (tool.as_bytes(), pattern.as_bytes());
    let (mut ti, mut pi) = (0, 0);
    // The last `*` seen, and where in `tool` its run ends so far.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if p.get(pi) == Some(&b'*') {
            star = Some((pi, ti));
            pi += 1;
        } else if p.get(pi) == Some(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            // The `*` takes one more character.
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Runs every DFA of `class` over `text`.
fn scan(bundle: &Bundle<'_>, class: FieldClass, text: &str, out: &mut RuleSet) {
    dfa::scan_class(bundle, class, text.as_bytes(), out);
}

/// Path checks shared by the file tools and path-like shell arguments:
/// `normalized` (home already folded) against the path rules that apply to
/// `op`, and the path DFAs. A file the policy calls public (`*.pub`) is not
/// a secret; a pattern (`~/.ss?/*`) is judged by every protected path it
/// could reach.
fn judge_path(bundle: &Bundle<'_>, normalized: &str, op: Access, acc: &mut Acc) {
    let name = path::file_name(normalized);
    if op == Access::List {
        return;
    }
    if bundle.list(list::PUBLIC_FILES).any(|pattern| glob::component_matches(pattern.as_bytes(), name.as_bytes())) {
        return;
    }
    // The strictest path rule that applies and is hit, the first in rule
    // order among equals (what raising each hit in rule order reports).
    let mut strictest: Option<(Decision, u32)> = None;
    let mut hit = |rule: PathRule<'_>, acc: &mut Acc| {
        if op.is_in(rule.access) {
            acc.rules.insert(rule.rule as usize);
            acc.path_hits.insert(rule.rule as usize);
            let stricter = strictest.is_none_or(|(d, r)| rule.decision > d || rule.decision == d && rule.rule < r);
            if stricter {
                strictest = Some((rule.decision, rule.rule));
            }
        }
    };
    if op == Access::ReadTree && holds_homes(bundle, normalized) {
        // Read from `/` or from the directory of the homes (`/home` for
        // `/home/*`): every home is read, `~` too, and from `/` every
        // protected path.
        for rule in bundle.path_rules() {
            if normalized == "/" || path::is_within(rule.prefix, "~") {
                hit(rule, acc);
            }
        }
    } else if glob::has_glob(normalized) {
        for rule in bundle.path_rules() {
            if glob::could_reach(normalized, rule.prefix) {
                hit(rule, acc);
            }
        }
    } else {
        bundle.path_rules_hit(normalized, matches!(op, Access::Tree | Access::ReadTree), &mut |rule| hit(rule, acc));
    }
    if let Some((decision, rule)) = strictest {
        acc.raise(decision, Stage::Tripwire, Reason::PathRule, Some(rule));
    }
    // Path patterns: only those whose access applies count.
    let mut matched = RuleSet::default();
    scan(bundle, FieldClass::Path, normalized, &mut matched);
    for index in matched.iter() {
        if op.is_in(bundle.rule_effect(index).map_or(access::ANY, |r| r.access)) {
            acc.rules.insert(index);
        }
    }
}

/// Whether `normalized` is `/` or holds the policy's home directories
/// (`/home` for the home root `/home/*`, `/` for `/root`), or is a glob
/// that may name one of those or a path below them.
fn holds_homes(bundle: &Bundle<'_>, normalized: &str) -> bool {
    let glob = glob::has_glob(normalized);
    normalized == "/"
        || normalized.starts_with('/')
            && bundle.list(list::HOME_ROOTS).any(|root| {
                let dir = root.strip_suffix("/*").unwrap_or(root);
                // A glob (`/ho*`, `/h?me/*`) that could name it or a
                // directory above it or below it.
                if glob { glob::could_reach(normalized, dir) } else { path::is_within(dir, normalized) }
            })
}

/// Normalises `raw` against `cwd` and folds the home directory's spellings
/// into `~` (the policy's home roots), into `out`.
fn resolve<'o>(
    bundle: &Bundle<'_>,
    raw: &'o str,
    cwd: &str,
    out: &'o mut path::PathBuf,
) -> Result<&'o str, path::PathError> {
    path::normalize_home(raw, cwd, bundle.list(list::HOME_ROOTS), out)
}

fn file_tripwire(bundle: &Bundle<'_>, intent: &Intent<'_>, op: Access, acc: &mut Acc) {
    let raw = intent.args.get("path").unwrap_or("");
    let mut buf = path::PathBuf::new();
    let Ok(normalized) = resolve(bundle, raw, intent.cwd, &mut buf) else {
        acc.raise(Decision::Deny, Stage::Tripwire, Reason::BadPath, None);
        return;
    };
    judge_path(bundle, normalized, op, acc);
    if op == Access::Write {
        let content = intent.args.get("content").unwrap_or("");
        shell::written_commands(bundle, normalized, content, intent.cwd, acc);
        let addressed = shell::may_quote_commands(content) && shell::addresses_agents(content);
        shell::quoted_commands(bundle, content, intent.cwd, addressed, acc);
    }
    // Outside the workspace needs a human — except reading a file the
    // policy calls public (`*.pub`).
    let name = path::file_name(normalized);
    let public = bundle.list(list::PUBLIC_FILES).any(|p| glob::component_matches(p.as_bytes(), name.as_bytes()));
    let public_read = op == Access::Read && public;
    let manifest_read = op == Access::Read && in_ancestor(bundle, normalized, intent.cwd);
    if !public_read && !manifest_read && !in_workspace(bundle, normalized, intent.cwd) {
        acc.raise(bundle.decision(settings::OUTSIDE_WORKSPACE), Stage::Tripwire, Reason::OutsideWorkspace, None);
    }
}

/// Whether `normalized` is a file directly in a directory above the working
/// directory, below the home directory (`../go.mod` from `~/src/api/cmd`):
/// where build tools look for their manifests. The home directory itself,
/// anything above it, and top-level directories (`/etc`, `/srv`) are no
/// project's.
fn in_ancestor(bundle: &Bundle<'_>, normalized: &str, cwd: &str) -> bool {
    let Some((parent, name)) = normalized.rsplit_once('/') else { return false };
    // `/srv` and `/etc` are the system's, `/srv/app` may be a project's.
    let shallow = parent.starts_with('/') && !parent[1..].contains('/');
    if name.is_empty() || parent.is_empty() || shallow || path::is_within("~", parent) {
        return false;
    }
    let mut buf = path::PathBuf::new();
    match resolve(bundle, cwd, "/", &mut buf) {
        Ok(cwd) if !cwd.is_empty() => path::is_within(cwd, parent),
        _ => false,
    }
}

/// Whether `normalized` is inside one of the workspace roots (`$CWD` is the
/// intent's working directory). A root that is the home directory, or
/// above it (`~`, `/`, `/home`), is no workspace: an agent started in the
/// home directory does not make the whole home its workspace.
fn in_workspace(bundle: &Bundle<'_>, normalized: &str, cwd: &str) -> bool {
    bundle.list(list::WORKSPACE_ROOTS).any(|root| {
        let mut buf = path::PathBuf::new();
        let root = if root == "$CWD" { cwd } else { root };
        match resolve(bundle, root, "/", &mut buf) {
            Ok(root) if !root.is_empty() && !path::is_within("~", root) => path::is_within(normalized, root),
            _ => false,
        }
    })
}

/// What a request to a URL does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Request {
    /// Reads (`GET`, `HEAD`).
    Read,
    /// Sends data (any other method but `DELETE`; upload flags).
    Send,
    /// Deletes (`DELETE`): never allowed by `allowed_domains` alone.
    Delete,
}

impl Request {
    /// The request an HTTP method makes (any case).
    fn of_method(method: &str) -> Request {
        if method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD") {
            Request::Read
        } else if method.eq_ignore_ascii_case("DELETE") {
            Request::Delete
        } else {
            Request::Send
        }
    }
}

/// The URL checks. `allowed_domains` names where requests may go — but a
/// `DELETE` to any host but loopback is judged as a request to a domain not
/// listed (`unlisted_domain_upload`): deleting on a remote system is never
/// everyday work by domain alone.
fn url_tripwire(bundle: &Bundle<'_>, raw: &str, request: Request, acc: &mut Acc) {
    scan(bundle, FieldClass::Url, raw, &mut acc.rules);
    let Ok(parsed) = url::parse(raw) else {
        acc.raise(Decision::Deny, Stage::Tripwire, Reason::BadUrl, None);
        return;
    };
    // A loopback host written the way people write it: `localhost`,
    // `*.localhost`, `127.x.y.z` in dotted decimal, `[::1]`. Other
    // spellings of loopback (`2130706433`, `0x7f000001`, `127.1`,
    // `[::ffff:127.0.0.1]`) stay IP literals: they are how filters are
    // evaded.
    let loopback = match parsed.host {
        url::Host::Domain(domain) => {
            domain.eq_ignore_ascii_case("localhost")
                || domain.len() > 10 && domain[domain.len() - 10..].eq_ignore_ascii_case(".localhost")
        }
        ref host => host.ip_class() == Some(url::IpClass::Loopback) && plainly_written_ip(host_text(raw)),
    };
    if parsed.scheme_is("http") {
        if loopback {
            let d = bundle.decision(settings::LOOPBACK_HTTP);
            if d != Decision::Allow {
                acc.raise(d, Stage::Tripwire, Reason::PlainHttp, None);
            }
        } else if bundle.https_required() {
            acc.raise(bundle.decision(settings::PLAIN_HTTP), Stage::Tripwire, Reason::PlainHttp, None);
        }
    } else if !parsed.scheme_is("https") {
        acc.raise(Decision::Deny, Stage::Tripwire, Reason::BadUrl, None);
    }
    if parsed.userinfo.is_some() {
        acc.raise(bundle.decision(settings::USERINFO), Stage::Tripwire, Reason::Userinfo, None);
    }
    if loopback {
        let allowed =
            !parsed.host.is_ip() || bundle.list(list::ALLOWED_IPS).any(|ip| ip.eq_ignore_ascii_case(host_text(raw)));
        let d = bundle.decision(settings::LOOPBACK_HTTP);
        if !allowed && d != Decision::Allow {
            acc.raise(d, Stage::Tripwire, Reason::IpLiteral, None);
        }
        return;
    }
    match parsed.host {
        url::Host::Domain(domain) => {
            let allowed = request != Request::Delete
                && bundle.list(list::ALLOWED_DOMAINS).any(|d| url::domain_matches(domain, d));
            if !allowed {
                let (setting, reason) = if request != Request::Read {
                    (settings::UNLISTED_DOMAIN_UPLOAD, Reason::UnlistedDomainUpload)
                } else {
                    (settings::UNLISTED_DOMAIN, Reason::UnlistedDomain)
                };
                acc.raise(bundle.decision(setting), Stage::Tripwire, reason, None);
            }
        }
        _ => {
            let host = host_text(raw);
            let allowed = bundle.list(list::ALLOWED_IPS).any(|ip| ip.eq_ignore_ascii_case(host));
            if !allowed {
                acc.raise(bundle.decision(settings::IP_LITERAL), Stage::Tripwire, Reason::IpLiteral, None);
            }
        }
    }
}

/// `127.0.0.1` (four decimal parts, no leading zeros) or `::1`.
fn plainly_written_ip(host: &str) -> bool {
    if host == "::1" {
        return true;
    }
    let mut parts = 0;
    for part in host.split('.') {
        parts += 1;
        let decimal = !part.is_empty() && part.len() <= 3 && part.bytes().all(|c| c.is_ascii_digit());
        if !decimal || (part.len() > 1 && part.starts_with('0')) {
            return false;
        }
    }
    parts == 4
}

/// The host part of a URL as written (for the allowed-IP list).
fn host_text(raw: &str) -> &str {
    let rest = raw.split_once("://").map_or(raw, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::tool_matches;

    /// The obvious recursive definition, as the reference.
    fn reference(t: &[u8], p: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|k| reference(&t[k..], rest)),
            Some((c, rest)) => t.first() == Some(c) && reference(&t[1..], rest),
        }
    }

    #[test]
    fn tool_patterns_match_any_run_where_a_star_stands() {
        assert!(tool_matches("shell", "shell"));
        assert!(!tool_matches("shell2", "shell"));
        assert!(tool_matches("mcp:github/create_issue", "mcp:*"));
        assert!(tool_matches("mcp:github/delete_repository", "mcp:*/delete*"));
        assert!(tool_matches("mcp:mongodb/delete_many", "mcp:*/delete*"));
        assert!(!tool_matches("mcp:github/undelete", "mcp:*/delete*"));
        assert!(tool_matches("mcp:a/b/delete", "mcp:*/delete*"));
        assert!(tool_matches("x", "*"));
        assert!(tool_matches("", "*"));
        assert!(!tool_matches("", "a*"));
        assert!(tool_matches("abcabd", "*abd"));
    }

    proptest::proptest! {
        #[test]
        fn tool_patterns_agree_with_the_recursive_definition(tool in "[ab*/]{0,9}", pattern in "[ab*/]{0,7}") {
            proptest::prop_assert_eq!(
                tool_matches(&tool, &pattern),
                reference(tool.as_bytes(), pattern.as_bytes())
            );
        }
    }
}
