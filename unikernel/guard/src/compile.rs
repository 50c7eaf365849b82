//! The policy compiler: TOML policy (docs/policy.md) → bundle
//! (docs/bundle.md). Host only (feature `compile`).
//!
//! Each field class's patterns become multi-pattern DFAs built with
//! `regex-automata` (byte-oriented, ASCII, `MatchKind::All`, unanchored) and
//! exported to the flat form the guard, the in-process judge and the FPGA
//! judge execute. A DFA that exceeds the size budget is split in halves
//! until every part fits; a single pattern that cannot fit is an error that
//! names it.

extern crate std;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::nfa::thompson;
use regex_automata::util::{start, syntax};
use regex_automata::{Anchored, MatchKind};
use serde::Deserialize;

use crate::Decision;
use crate::bundle::{self, FieldClass, access, list, section, settings};

mod entries;
mod literals;

/// Default size budget of one DFA (bytes of its transition table).
pub const DFA_BUDGET: usize = 512 * 1024;

/// A compile error: file, line, rule (when one is at fault) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// Policy file name as given.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The rule at fault, when one is.
    pub rule: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, ": rule `{rule}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for CompileError {}

/// Per-DFA facts `vigil policy compile` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DfaReport {
    /// Field class.
    pub class: &'static str,
    /// How it runs: `anchored` (its matches start at the input's start),
    /// `floating` (anywhere), `gated` (anywhere, only when the prefilter
    /// saw one of its literals), `prefilter` (the class's literal finder).
    pub start: &'static str,
    /// Its transitions are stored sparsely (default + comb).
    pub sparse: bool,
    /// Template rows of a sparse table.
    pub templates: u32,
    /// Patterns in this DFA.
    pub patterns: usize,
    /// States.
    pub states: u32,
    /// Alphabet (byte classes + end of input).
    pub alphabet: u32,
    /// Section bytes.
    pub bytes: usize,
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The bundle.
    pub bundle: Vec<u8>,
    /// Policy name.
    pub name: String,
    /// Number of rules (pattern rules and path rules).
    pub rules: usize,
    /// One entry per DFA.
    pub dfas: Vec<DfaReport>,
}

// ---- TOML model -------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: u32,
    name: String,
    #[serde(default = "deny")]
    default: toml::Spanned<String>,
    #[serde(default)]
    tools: Tools,
    #[serde(default)]
    tripwire: Tripwire,
    #[serde(default)]
    rules: Vec<toml::Spanned<RuleToml>>,
    #[serde(default)]
    scorer: Scorer,
}

fn deny() -> toml::Spanned<String> {
    toml::Spanned::new(0..0, "deny".to_string())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Tools {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    escalate: Vec<String>,
    unknown: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Tripwire {
    #[serde(default)]
    workspace_roots: Vec<toml::Spanned<String>>,
    outside_workspace: Option<String>,
    https_required: Option<bool>,
    plain_http: Option<String>,
    #[serde(default)]
    allowed_domains: Vec<toml::Spanned<String>>,
    #[serde(default)]
    allowed_ips: Vec<toml::Spanned<String>>,
    ip_literals: Option<String>,
    unlisted_domain: Option<String>,
    unlisted_domain_upload: Option<String>,
    userinfo: Option<String>,
    #[serde(default)]
    banned_programs: Vec<toml::Spanned<String>>,
    banned_program: Option<String>,
    shell_metacharacters: Option<String>,
    non_ascii_program: Option<String>,
    shell_unparseable: Option<String>,
    min_justification: Option<u16>,
    short_justification: Option<String>,
    unknown_command: Option<String>,
    opaque_code: Option<String>,
    unresolved: Option<String>,
    loopback_http: Option<String>,
    home_roots: Option<Vec<String>>,
    #[serde(default)]
    public_files: Vec<String>,
    #[serde(default)]
    paths: Vec<toml::Spanned<PathToml>>,
}

/// Home directory spellings when a policy names none.
pub const DEFAULT_HOME_ROOTS: [&str; 3] = ["/home/*", "/Users/*", "/root"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathToml {
    id: Option<String>,
    prefix: String,
    decision: String,
    #[serde(default = "any_access")]
    access: String,
    reason: Option<String>,
}

fn any_access() -> String {
    "any".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    id: String,
    class: String,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    patterns: Vec<String>,
    decision: String,
    #[serde(default)]
    severity: Option<String>,
    reason: String,
    #[serde(default)]
    weight: i32,
    /// Path rules only: `read`, `write` or `any` (default).
    access: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Scorer {
    #[serde(default)]
    escalate_at: i32,
    #[serde(default)]
    deny_at: i32,
    #[serde(default)]
    weights: BTreeMap<String, i32>,
}

// ---- compiling ---------------------------------------------------------

struct Ctx<'s> {
    file: &'s str,
    source: &'s str,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.source.get(..offset).map_or(1, |s| s.matches('\n').count() + 1)
    }

    fn err(
        &self,
        span: Option<core::ops::Range<usize>>,
        rule: Option<&str>,
        message: impl Into<String>,
    ) -> CompileError {
        CompileError {
            file: self.file.to_string(),
            line: span.filter(|s| s.end > 0).map(|s| self.line_of(s.start)),
            rule: rule.map(str::to_string),
            message: message.into(),
        }
    }
}

fn decision(ctx: &Ctx<'_>, value: &str, what: &str, rule: Option<&str>) -> Result<Decision, CompileError> {
    match value {
        "allow" => Ok(Decision::Allow),
        "escalate" => Ok(Decision::Escalate),
        "deny" => Ok(Decision::Deny),
        other => Err(ctx.err(None, rule, format!("{what}: `{other}` is not a decision (allow, escalate, deny)"))),
    }
}

fn opt_decision(
    ctx: &Ctx<'_>,
    value: &Option<String>,
    what: &str,
    default: Decision,
) -> Result<Decision, CompileError> {
    value.as_deref().map_or(Ok(default), |v| decision(ctx, v, what, None))
}

/// A rule as it goes into the bundle.
struct RuleEntry {
    id: String,
    reason: String,
    decision: u8,
    severity: u8,
    class: FieldClass,
    access: u8,
    weight: i32,
}

/// Compiles policy `source` (named `file` in errors).
pub fn compile(source: &str, file: &str) -> Result<Compiled, CompileError> {
    compile_with_budget(source, file, DFA_BUDGET)
}

/// [`compile`] with an explicit per-DFA size budget. Patterns are grouped
/// into DFAs tightly first ([`BLOWUP_TENTHS`]: smaller tables); a policy
/// that then needs more DFAs than a bundle holds is grouped more loosely.
pub fn compile_with_budget(source: &str, file: &str, budget: usize) -> Result<Compiled, CompileError> {
    let mut too_many = None;
    for blowup in BLOWUP_TENTHS {
        match compile_grouped(source, file, budget, blowup)? {
            Ok(compiled) => return Ok(compiled),
            Err(e) => too_many = Some(e),
        }
    }
    Err(too_many.unwrap_or_else(|| CompileError {
        file: file.to_string(),
        line: None,
        rule: None,
        message: "no grouping of the patterns fits a bundle".into(),
    }))
}

/// What one grouping gives: the bundle, or (inner error) a policy that
/// needs more DFAs than a bundle holds, which a looser grouping may fit.
type Grouped = Result<Compiled, CompileError>;

/// [`compile_with_budget`] with patterns grouped so that a group's DFA has
/// at most `blowup` tenths of its patterns' states built alone.
fn compile_grouped(source: &str, file: &str, budget: usize, blowup: usize) -> Result<Grouped, CompileError> {
    let ctx = Ctx { file, source };
    let policy: PolicyFile = toml::from_str(source).map_err(|e| ctx.err(e.span(), None, e.message().to_string()))?;
    if policy.version != 1 {
        return Err(ctx.err(None, None, format!("policy version {} is not supported (expected 1)", policy.version)));
    }
    let default = decision(&ctx, policy.default.get_ref(), "default", None)
        .map_err(|e| CompileError { line: Some(ctx.line_of(policy.default.span().start)), ..e })?;
    let tw = &policy.tripwire;
    // List entries the guard could never match are refused.
    entries::check_lists(&ctx, tw)?;

    // Rules: pattern rules first, then one per path rule.
    let mut rules: Vec<RuleEntry> = Vec::new();
    let mut patterns: [Vec<(String, usize)>; FieldClass::COUNT] = Default::default();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for spanned in &policy.rules {
        let span = spanned.span();
        let rule = spanned.get_ref();
        let at = |message: String| ctx.err(Some(span.clone()), Some(&rule.id), message);
        if rule.id.is_empty() {
            return Err(at("rule id must not be empty".into()));
        }
        if ids.insert(rule.id.clone(), rules.len()).is_some() {
            return Err(at("rule id is used twice".into()));
        }
        let class = match rule.class.as_str() {
            "command" => FieldClass::Command,
            "path" => FieldClass::Path,
            "url" => FieldClass::Url,
            "text" => FieldClass::Text,
            "arg" | "any" => FieldClass::Arg,
            "code" => FieldClass::Code,
            other => return Err(at(format!("class `{other}` is not one of command, path, url, text, arg, code"))),
        };
        let decision_byte = match rule.decision.as_str() {
            "score" => bundle::SCORE_ONLY,
            d => decision(&ctx, d, "decision", Some(&rule.id))
                .map_err(|e| CompileError { line: Some(ctx.line_of(span.start)), ..e })? as u8,
        };
        let severity = match rule.severity.as_deref().unwrap_or("medium") {
            "info" => 0,
            "low" => 1,
            "medium" => 2,
            "high" => 3,
            "critical" => 4,
            other => return Err(at(format!("severity `{other}` is not one of info, low, medium, high, critical"))),
        };
        let mut list: Vec<&String> = rule.patterns.iter().collect();
        if let Some(p) = &rule.pattern {
            list.push(p);
        }
        if list.is_empty() {
            return Err(at("a rule needs `pattern` or `patterns`".into()));
        }
        let index = rules.len();
        for p in list {
            // Syntax errors are reported here, with the rule; size is
            // checked when the class's DFAs are built.
            syntax::parse_with(p, &syntax_config()).map_err(|e| at(format!("pattern `{p}`: {e}")))?;
            patterns[class as usize].push((p.clone(), index));
        }
        let weight = policy.scorer.weights.get(&rule.id).copied().unwrap_or(rule.weight);
        let rule_access = match (class, rule.access.as_deref()) {
            (FieldClass::Path, None | Some("any")) => access::ANY,
            (FieldClass::Path, Some("read")) => access::READ,
            (FieldClass::Path, Some("write")) => access::WRITE,
            (FieldClass::Path, Some(other)) => {
                return Err(at(format!("access `{other}` is not one of read, write, any")));
            }
            (_, None) => 0,
            (_, Some(_)) => return Err(at("`access` applies to path rules only".into())),
        };
        rules.push(RuleEntry {
            id: rule.id.clone(),
            reason: rule.reason.clone(),
            decision: decision_byte,
            severity,
            class,
            access: rule_access,
            weight,
        });
    }
    for id in policy.scorer.weights.keys() {
        if !ids.contains_key(id) {
            return Err(ctx.err(None, Some(id), "scorer weight for a rule that does not exist"));
        }
    }
    let home_roots: Vec<String> =
        tw.home_roots.clone().unwrap_or_else(|| DEFAULT_HOME_ROOTS.iter().map(|r| r.to_string()).collect());
    let mut path_rules = Vec::new();
    for spanned in &tw.paths {
        let p = spanned.get_ref();
        let id = p.id.clone().unwrap_or_else(|| format!("path:{}", p.prefix));
        let at = |message: String| ctx.err(Some(spanned.span()), Some(&id), message);
        let d = decision(&ctx, &p.decision, "decision", Some(&id))
            .map_err(|e| CompileError { line: Some(ctx.line_of(spanned.span().start)), ..e })?;
        let access = match p.access.as_str() {
            "read" => access::READ,
            "write" => access::WRITE,
            "any" => access::ANY,
            other => return Err(at(format!("access `{other}` is not one of read, write, any"))),
        };
        // Absolute or home-based (`~/.ssh`, `/etc/shadow`), as every
        // judged path is by then: no working directory to resolve against.
        if let Some(message) = entries::path_prefix(&p.prefix) {
            return Err(at(message));
        }
        let mut buf = crate::path::PathBuf::new();
        let normalized = crate::path::normalize(&p.prefix, "", &mut buf)
            .map_err(|e| at(format!("prefix `{}` is not a usable path: {e:?}", p.prefix)))?;
        // The home's spellings fold into `~`, as every judged path does.
        let mut folded = crate::path::PathBuf::new();
        let prefix = crate::path::fold_home(normalized, home_roots.iter().map(String::as_str), &mut folded).to_string();
        if ids.insert(id.clone(), rules.len()).is_some() {
            return Err(at("rule id is used twice".into()));
        }
        path_rules.push((prefix, d, access, rules.len()));
        rules.push(RuleEntry {
            id,
            reason: p.reason.clone().unwrap_or_else(|| format!("access to {}", p.prefix)),
            decision: d as u8,
            severity: 3,
            class: FieldClass::Path,
            access,
            weight: 0,
        });
    }
    if rules.len() > bundle::MAX_RULES {
        return Err(ctx.err(None, None, format!("{} rules: at most {} are supported", rules.len(), bundle::MAX_RULES)));
    }

    // DFAs per class, split until each fits.
    let rule_words = rules.len().div_ceil(64).max(1);
    let mut dfas = Vec::new();
    for class in FieldClass::ALL {
        // A pattern whose every match starts at the input's start goes into
        // an anchored DFA, which stops at the first byte no pattern can
        // take. The others scan the whole input. Both kinds are gated when
        // their patterns have useful literals: anchored ones behind the
        // class's anchored prefilter (the strings every match begins with
        // — for a command pattern, its program: only the DFAs of the
        // program that starts the line run), floating ones behind the
        // floating prefilter (required literals, all found in one pass).
        let mut anchored = Vec::new();
        let mut anchored_gated = Vec::new();
        let mut gated = Vec::new();
        let mut floating = Vec::new();
        let mut required: HashMap<(String, usize), Vec<Vec<u8>>> = HashMap::new();
        for (p, rule) in &patterns[class as usize] {
            let hir = syntax::parse_with(p, &syntax_config()).map_err(|e| {
                let line = policy.rules.get(*rule).map(|r| ctx.line_of(r.span().start));
                CompileError { line, ..ctx.err(None, Some(&rules[*rule].id), format!("pattern `{p}`: {e}")) }
            })?;
            let starts = hir.properties().look_set_prefix().contains(regex_syntax::hir::Look::Start);
            let literals = if starts { literals::leading(&hir) } else { literals::required(&hir) };
            match (starts, literals) {
                (true, Some(literals)) => {
                    required.insert((p.clone(), *rule), literals);
                    anchored_gated.push((p.clone(), *rule));
                }
                (true, None) => anchored.push((p.clone(), *rule)),
                (false, Some(literals)) => {
                    required.insert((p.clone(), *rule), literals);
                    gated.push((p.clone(), *rule));
                }
                (false, None) => floating.push((p.clone(), *rule)),
            }
        }
        // Literals naming gated DFAs: `[floating, anchored]`.
        let mut prefilter: [Vec<(Vec<u8>, usize)>; 2] = [Vec::new(), Vec::new()];
        let first_of_class = dfas.len();
        for (list, kind, flags) in [
            (&anchored, Start::Anchored, bundle::DFA_ANCHORED),
            (&anchored_gated, Start::Anchored, bundle::DFA_ANCHORED | bundle::DFA_GATED),
            (&floating, Start::Floating, 0),
            (&gated, Start::Floating, bundle::DFA_GATED),
        ] {
            if list.is_empty() {
                continue;
            }
            // Each pattern alone.
            // (A pattern too big alone counts as the whole budget; the
            // split names it.)
            let alone = alone_states(list, kind, budget);
            let mut groups = Vec::new();
            split_into_groups(list, &alone, kind, budget, blowup, &mut groups).map_err(|(p, rule, e)| {
                let line = policy.rules.get(rule).map(|r| ctx.line_of(r.span().start));
                CompileError {
                    line,
                    ..ctx.err(None, Some(&rules[rule].id), format!("pattern `{p}` does not fit the DFA budget: {e}"))
                }
            })?;
            for (group, dfa) in groups {
                if flags & bundle::DFA_GATED != 0 {
                    // This DFA's index, named by the prefilter for each
                    // required literal of each of its patterns.
                    let index = dfas.len();
                    // Any part of a required literal is required too;
                    // short ones keep the prefilter's trie small.
                    let all = group.iter().flat_map(|key| required[key].iter().cloned()).collect();
                    let kind = usize::from(flags & bundle::DFA_ANCHORED != 0);
                    for literal in literals::prefix_free(all) {
                        prefilter[kind].push((literal, index));
                    }
                }
                let exported = export(class, kind, flags, &group, &dfa, rule_words, budget)
                    .map_err(|e| ctx.err(None, None, format!("exporting a {} DFA: {e}", class.as_str())))?;
                dfas.push(exported);
            }
        }
        for (anchored, mut literals) in prefilter.into_iter().enumerate() {
            if literals.is_empty() {
                continue;
            }
            literals.sort();
            literals.dedup();
            let exported = if anchored == 1 {
                literals::export_anchored_prefilter(class, &literals, budget)
            } else {
                literals::export_prefilter(class, &literals, budget)
            };
            match exported {
                Ok(exported) => dfas.push(exported),
                // Too many literals for one table: the DFAs it would have
                // gated run ungated (slower, the same matches).
                Err(_) => {
                    for (report, body) in &mut dfas[first_of_class..] {
                        // (The flags byte may also say sparse.)
                        let flags = body[1];
                        if flags & bundle::DFA_GATED != 0 && usize::from(flags & bundle::DFA_ANCHORED != 0) == anchored
                        {
                            body[1] &= !bundle::DFA_GATED;
                            report.start = start_name(body[1]);
                        }
                    }
                }
            }
        }
    }
    if dfas.len() > bundle::MAX_DFAS {
        return Ok(Err(ctx.err(
            None,
            None,
            format!("{} DFAs needed, at most {} fit a bundle", dfas.len(), bundle::MAX_DFAS),
        )));
    }

    let lists: Vec<(u32, Vec<String>)> = vec![
        (list::TOOLS_ALLOW, policy.tools.allow.clone()),
        (list::TOOLS_DENY, policy.tools.deny.clone()),
        (list::TOOLS_ESCALATE, policy.tools.escalate.clone()),
        (list::WORKSPACE_ROOTS, entry_texts(&tw.workspace_roots)),
        (list::ALLOWED_DOMAINS, tw.allowed_domains.iter().map(|d| d.get_ref().to_ascii_lowercase()).collect()),
        (list::ALLOWED_IPS, entry_texts(&tw.allowed_ips)),
        (list::BANNED_PROGRAMS, entry_texts(&tw.banned_programs)),
        (list::HOME_ROOTS, home_roots.clone()),
        (list::PUBLIC_FILES, tw.public_files.clone()),
    ];
    for root in lists.iter().filter(|(k, _)| *k == list::HOME_ROOTS).flat_map(|(_, l)| l) {
        let dir = root.strip_suffix("/*").unwrap_or(root);
        if !dir.starts_with('/') || dir.len() < 2 || dir.contains(['*', '?', '[']) || dir.ends_with('/') {
            return Err(ctx.err(
                None,
                None,
                format!("tripwire.home_roots: `{root}` must be an absolute directory, optionally ending in `/*`"),
            ));
        }
    }
    let mut s = [0u8; settings::LEN];
    let d = |v: &Option<String>, what: &str, default: Decision| opt_decision(&ctx, v, what, default).map(|d| d as u8);
    s[settings::DEFAULT] = default as u8;
    s[settings::UNKNOWN_TOOL] = d(&policy.tools.unknown, "tools.unknown", Decision::Deny)?;
    s[settings::OUTSIDE_WORKSPACE] = d(&tw.outside_workspace, "tripwire.outside_workspace", Decision::Deny)?;
    s[settings::HTTPS_REQUIRED] = u8::from(tw.https_required.unwrap_or(true));
    s[settings::PLAIN_HTTP] = d(&tw.plain_http, "tripwire.plain_http", Decision::Deny)?;
    s[settings::IP_LITERAL] = d(&tw.ip_literals, "tripwire.ip_literals", Decision::Deny)?;
    s[settings::UNLISTED_DOMAIN] = d(&tw.unlisted_domain, "tripwire.unlisted_domain", Decision::Escalate)?;
    s[settings::UNLISTED_DOMAIN_UPLOAD] =
        d(&tw.unlisted_domain_upload, "tripwire.unlisted_domain_upload", Decision::Deny)?;
    s[settings::USERINFO] = d(&tw.userinfo, "tripwire.userinfo", Decision::Deny)?;
    s[settings::SHELL_METACHARACTERS] = d(&tw.shell_metacharacters, "tripwire.shell_metacharacters", Decision::Allow)?;
    s[settings::NON_ASCII_PROGRAM] = d(&tw.non_ascii_program, "tripwire.non_ascii_program", Decision::Deny)?;
    s[settings::BANNED_PROGRAM] = d(&tw.banned_program, "tripwire.banned_program", Decision::Deny)?;
    s[settings::SHELL_UNPARSEABLE] = d(&tw.shell_unparseable, "tripwire.shell_unparseable", Decision::Deny)?;
    s[settings::SHORT_JUSTIFICATION] = d(&tw.short_justification, "tripwire.short_justification", Decision::Escalate)?;
    s[settings::UNKNOWN_COMMAND] = d(&tw.unknown_command, "tripwire.unknown_command", Decision::Allow)?;
    s[settings::OPAQUE_CODE] = d(&tw.opaque_code, "tripwire.opaque_code", Decision::Deny)?;
    s[settings::UNRESOLVED] = d(&tw.unresolved, "tripwire.unresolved", Decision::Escalate)?;
    s[settings::LOOPBACK_HTTP] = d(&tw.loopback_http, "tripwire.loopback_http", Decision::Allow)?;
    s[settings::MIN_JUSTIFICATION..settings::MIN_JUSTIFICATION + 2]
        .copy_from_slice(&tw.min_justification.unwrap_or(0).to_le_bytes());
    s[settings::SCORE_ESCALATE..settings::SCORE_ESCALATE + 4].copy_from_slice(&policy.scorer.escalate_at.to_le_bytes());
    s[settings::SCORE_DENY..settings::SCORE_DENY + 4].copy_from_slice(&policy.scorer.deny_at.to_le_bytes());

    let mut w = Writer::default();
    let name_ref = w.string(&policy.name);
    s[settings::NAME..settings::NAME + 8].copy_from_slice(&name_ref);
    let mut lists_bytes = (lists.len() as u32).to_le_bytes().to_vec();
    for (kind, entries) in &lists {
        lists_bytes.extend_from_slice(&kind.to_le_bytes());
        lists_bytes.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for e in entries {
            lists_bytes.extend_from_slice(&w.string(e));
        }
    }
    let mut rules_bytes = (rules.len() as u32).to_le_bytes().to_vec();
    for r in &rules {
        rules_bytes.extend_from_slice(&w.string(&r.id));
        rules_bytes.extend_from_slice(&w.string(&r.reason));
        rules_bytes.extend_from_slice(&[r.decision, r.severity, r.class as u8, r.access]);
        rules_bytes.extend_from_slice(&r.weight.to_le_bytes());
    }
    // Sorted by search key, then rule (docs/bundle.md).
    path_rules.sort_by(|a, b| (bundle::path_key(&a.0), a.3).cmp(&(bundle::path_key(&b.0), b.3)));
    let mut path_bytes = (path_rules.len() as u32).to_le_bytes().to_vec();
    for (prefix, d, acc, rule) in &path_rules {
        path_bytes.extend_from_slice(&w.string(prefix));
        path_bytes.extend_from_slice(&[*d as u8, *acc, 0, 0]);
        path_bytes.extend_from_slice(&(*rule as u32).to_le_bytes());
    }
    let mut sections: Vec<(u32, Vec<u8>)> = vec![
        (section::STRINGS, core::mem::take(&mut w.pool)),
        (section::SETTINGS, s.to_vec()),
        (section::LISTS, lists_bytes),
        (section::PATH_RULES, path_bytes),
        (section::RULES, rules_bytes),
    ];
    let mut reports = Vec::new();
    for (report, body) in dfas {
        reports.push(report);
        sections.push((section::DFA, body));
    }
    let bundle = assemble(&sections);
    // The compiler's output must be accepted by the loader: same code path
    // as every judge.
    crate::bundle::Bundle::load(&bundle).map_err(|e| {
        ctx.err(None, None, format!("internal error: the compiled bundle does not load: {}", e.as_str()))
    })?;
    Ok(Ok(Compiled { bundle, name: policy.name.clone(), rules: rules.len(), dfas: reports }))
}

/// The texts of a list's entries, in order.
fn entry_texts(list: &[toml::Spanned<String>]) -> Vec<String> {
    list.iter().map(|e| e.get_ref().clone()).collect()
}

#[derive(Default)]
struct Writer {
    pool: Vec<u8>,
    seen: HashMap<String, [u8; 8]>,
}

impl Writer {
    fn string(&mut self, s: &str) -> [u8; 8] {
        if let Some(r) = self.seen.get(s) {
            return *r;
        }
        let mut r = [0u8; 8];
        r[..4].copy_from_slice(&(self.pool.len() as u32).to_le_bytes());
        r[4..].copy_from_slice(&(s.len() as u32).to_le_bytes());
        self.pool.extend_from_slice(s.as_bytes());
        self.seen.insert(s.to_string(), r);
        r
    }
}

fn assemble(sections: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let table_end = bundle::HEADER_LEN + sections.len() * bundle::SECTION_ENTRY_LEN;
    let mut offsets = Vec::new();
    let mut at = table_end.next_multiple_of(8);
    for (_, body) in sections {
        offsets.push(at);
        at = (at + body.len()).next_multiple_of(8);
    }
    let total = offsets.last().map_or(table_end, |&o| o + sections.last().map_or(0, |s| s.1.len()));
    let mut out = vec![0u8; total];
    out[..8].copy_from_slice(&bundle::MAGIC);
    out[8..10].copy_from_slice(&bundle::VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&(total as u32).to_le_bytes());
    out[16..20].copy_from_slice(&(sections.len() as u32).to_le_bytes());
    for (i, ((kind, body), offset)) in sections.iter().zip(&offsets).enumerate() {
        let entry = bundle::HEADER_LEN + i * bundle::SECTION_ENTRY_LEN;
        out[entry..entry + 4].copy_from_slice(&kind.to_le_bytes());
        out[entry + 4..entry + 8].copy_from_slice(&(*offset as u32).to_le_bytes());
        out[entry + 8..entry + 12].copy_from_slice(&(body.len() as u32).to_le_bytes());
        out[*offset..*offset + body.len()].copy_from_slice(body);
    }
    let digest = bundle::digest(&out);
    out[bundle::DIGEST_RANGE].copy_from_slice(&digest);
    out
}

fn syntax_config() -> syntax::Config {
    syntax::Config::new().unicode(false).utf8(false)
}

/// Where a DFA's matches may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// Only at the input's start (every pattern begins with `^`).
    Anchored,
    /// Anywhere.
    Floating,
}

/// Builds a DFA over `patterns`. Not minimized: minimizing took a third of
/// the compile time and saved under a tenth of the table bytes.
///
/// `max_states`: the most states (as [`state_count`] counts them) the
/// caller will accept; the build stops as soon as the DFA grows past them
/// (or past `budget` bytes), instead of finishing a DFA that would be
/// thrown away. Exact: the size checked while determinizing only grows,
/// and the finished DFA is at least as large, so a build stopped here
/// would have failed [`state_count`]'s test; a DFA that passes is the one
/// built without the limit.
fn build_dfa(
    patterns: &[&str],
    kind: Start,
    budget: usize,
    max_states: Option<usize>,
) -> Result<dense::DFA<Vec<u32>>, String> {
    let start_kind = match kind {
        Start::Anchored => StartKind::Anchored,
        Start::Floating => StartKind::Unanchored,
    };
    let nfa = build_nfa(patterns)?;
    let limit = match max_states {
        // `state_count` ≤ n ⟺ memory < (n + 1) rows of `stride_of` u32s.
        Some(n) => budget.min((n + 1).saturating_mul(stride_of(&nfa)).saturating_mul(4).saturating_sub(1)),
        None => budget,
    };
    dense::Builder::new()
        .configure(
            dense::Config::new()
                .match_kind(MatchKind::All)
                .start_kind(start_kind)
                .unicode_word_boundary(false)
                .minimize(false)
                .dfa_size_limit(Some(limit))
                .determinize_size_limit(Some(budget.saturating_mul(2))),
        )
        .build_from_nfa(&nfa)
        .map_err(|e| e.to_string())
}

/// The NFA a DFA over `patterns` is built from: byte-oriented, without
/// captures (a DFA has none).
fn build_nfa(patterns: &[&str]) -> Result<thompson::NFA, String> {
    thompson::Compiler::new()
        .syntax(syntax_config())
        .configure(thompson::Config::new().utf8(false).which_captures(thompson::WhichCaptures::None))
        .build_many(patterns)
        .map_err(|e| e.to_string())
}

/// The row length (a power of two: the byte classes and end of input) of
/// the DFA built from `nfa` with [`build_dfa`]'s configuration, which adds
/// no quit bytes.
fn stride_of(nfa: &thompson::NFA) -> usize {
    1 << nfa.byte_classes().stride2()
}

type Group = Vec<(String, usize)>;

/// How many times the states of its patterns' DFAs built alone a group's
/// DFA may have before the group is split, in tenths, tried in order
/// until the DFAs fit a bundle: patterns whose partial matches overlap
/// (counted repetitions, gaps like `[^;]*`) multiply states when they
/// share a DFA, and apart they cost only a little more scanning. At 1.2
/// (it was 2 alone) the default pack's tables are 34 KB smaller (392,280
/// → 358,576 bytes, 80 → 108 DFAs) for 3.2 % more instructions per intent;
/// a policy with a thousand more rules needs the looser 2.
const BLOWUP_TENTHS: [usize; 3] = [12, 20, 40];

/// Approximate state count of a dense DFA (its table over its stride).
fn state_count(dfa: &dense::DFA<Vec<u32>>) -> usize {
    dfa.memory_usage() / (dfa.stride() * 4)
}

/// The states of each pattern's DFA built alone (a pattern too big alone
/// counts as `budget`), the halves of a long list on two threads.
fn alone_states(list: &[(String, usize)], kind: Start, budget: usize) -> Vec<usize> {
    let states = |part: &[(String, usize)]| -> Vec<usize> {
        part.iter()
            .map(|(p, _)| build_dfa(&[p.as_str()], kind, budget, None).map_or(budget, |d| state_count(&d)))
            .collect()
    };
    if list.len() < PARALLEL_SPLIT {
        return states(list);
    }
    let (first, second) = list.split_at(list.len() / 2);
    let (mut out, rest) = both(|| states(first), || states(second));
    out.extend(rest);
    out
}

/// Runs `first` on another thread while `second` runs here, and returns
/// both results. Where no thread can be started, both run here, `second`
/// first; a panic in `first` is raised again here, as without a thread.
fn both<A: Send, B>(first: impl Fn() -> A + Sync, second: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|scope| {
        let other = std::thread::Builder::new().spawn_scoped(scope, &first);
        let b = second();
        let a = match other.map(|thread| thread.join()) {
            Ok(Ok(a)) => a,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => first(),
        };
        (a, b)
    })
}

/// Splits `list` into groups whose DFA fits `budget` and has at most
/// `blowup` tenths of the states of its patterns built alone (`alone`, one
/// per pattern); hands back each group with its DFA. Errors
/// name the pattern that cannot fit alone.
fn split_into_groups(
    list: &[(String, usize)],
    alone: &[usize],
    kind: Start,
    budget: usize,
    blowup: usize,
    out: &mut Vec<(Group, dense::DFA<Vec<u32>>)>,
) -> Result<(), (String, usize, String)> {
    let patterns: Vec<&str> = list.iter().map(|(p, _)| p.as_str()).collect();
    let max_states = blowup.saturating_mul(alone.iter().sum::<usize>()) / 10;
    let fits = match build_dfa(&patterns, kind, budget, (list.len() > 1).then_some(max_states)) {
        Ok(dfa) if list.len() == 1 || state_count(&dfa) <= max_states => {
            out.push((list.to_vec(), dfa));
            return Ok(());
        }
        Ok(_) => String::new(),
        Err(e) => e,
    };
    if list.len() == 1 {
        return Err((list[0].0.clone(), list[0].1, fits));
    }
    let half = list.len() / 2;
    if list.len() < PARALLEL_SPLIT {
        split_into_groups(&list[..half], &alone[..half], kind, budget, blowup, out)?;
        return split_into_groups(&list[half..], &alone[half..], kind, budget, blowup, out);
    }
    // The halves are independent: the first is built on another thread.
    // The groups come out in the same order, and the error reported is
    // the one the first half would have stopped at.
    let mut second = Vec::new();
    let (first, rest) = both(
        || {
            let mut groups = Vec::new();
            split_into_groups(&list[..half], &alone[..half], kind, budget, blowup, &mut groups).map(|()| groups)
        },
        || split_into_groups(&list[half..], &alone[half..], kind, budget, blowup, &mut second),
    );
    out.extend(first?);
    rest?;
    out.append(&mut second);
    Ok(())
}

/// Patterns in a list from which its split halves are built in parallel
/// (below, a thread costs more than it saves).
const PARALLEL_SPLIT: usize = 8;

/// How a DFA with these flags runs, as `policy compile` reports it.
fn start_name(flags: u8) -> &'static str {
    match flags & !bundle::DFA_SPARSE {
        bundle::DFA_ANCHORED => "anchored",
        f if f == bundle::DFA_ANCHORED | bundle::DFA_GATED => "anchored+gated",
        bundle::DFA_GATED => "gated",
        bundle::DFA_PREFILTER => "prefilter",
        f if f == bundle::DFA_PREFILTER | bundle::DFA_ANCHORED => "anchored prefilter",
        _ => "floating",
    }
}

/// Builds the group's DFA and exports it to the flat form.
fn export(
    class: FieldClass,
    kind: Start,
    flags: u8,
    group: &Group,
    dfa: &dense::DFA<Vec<u32>>,
    rule_words: usize,
    budget: usize,
) -> Result<(DfaReport, Vec<u8>), String> {
    let classes = dfa.byte_classes();
    let alphabet = classes.alphabet_len(); // byte classes + EOI
    let mut representative = vec![None; alphabet - 1];
    for b in 0..=255u8 {
        let c = classes.get(b) as usize;
        if representative[c].is_none() {
            representative[c] = Some(b);
        }
    }
    let anchored = match kind {
        Start::Anchored => Anchored::Yes,
        Start::Floating => Anchored::No,
    };
    let start =
        dfa.start_state(&start::Config::new().anchored(anchored)).map_err(|e| format!("no start state: {e}"))?;
    // Breadth-first over reachable states.
    let mut index = HashMap::new();
    let mut order = vec![start];
    index.insert(start, 0u32);
    let mut transitions: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let id = order[i];
        if dfa.is_quit_state(id) {
            return Err("the pattern needs Unicode-aware matching; write it for bytes/ASCII".into());
        }
        let columns = representative.iter().map(Some).chain(core::iter::once(None));
        for column in columns {
            let next = match column {
                None => dfa.next_eoi_state(id),
                Some(rep) => dfa.next_state(id, rep.unwrap_or(0)),
            };
            let n = *index.entry(next).or_insert_with(|| {
                order.push(next);
                (order.len() - 1) as u32
            });
            transitions.push(n);
        }
        i += 1;
        if order.len().saturating_mul(alphabet).saturating_mul(4) > budget.saturating_mul(2) {
            return Err("the exported table exceeds the budget".into());
        }
    }
    // Match sets, deduplicated.
    let mut sets: Vec<Vec<u64>> = Vec::new();
    let mut set_index: HashMap<Vec<u64>, u32> = HashMap::new();
    let mut matches = Vec::with_capacity(order.len());
    for &id in &order {
        if !dfa.is_match_state(id) {
            matches.push(None);
            continue;
        }
        let mut bits = vec![0u64; rule_words];
        for k in 0..dfa.match_len(id) {
            let rule = group[dfa.match_pattern(id, k).as_usize()].1;
            bits[rule / 64] |= 1 << (rule % 64);
        }
        let n = *set_index.entry(bits.clone()).or_insert_with(|| {
            sets.push(bits);
            (sets.len() - 1) as u32
        });
        matches.push(Some(n));
    }
    // The dead state, when reachable: no match from it, never left.
    let dead = order.iter().position(|&id| dfa.is_dead_state(id)).map(|i| i as u32);
    let mut byte_class = [0u8; 256];
    for (b, c) in byte_class.iter_mut().enumerate() {
        *c = classes.get(b as u8);
    }
    Ok(flat_dfa(&DenseDfa {
        class,
        flags,
        patterns: group.len(),
        byte_class: &byte_class,
        alphabet,
        transitions: &transitions,
        matches: &matches,
        sets: &sets,
        start: 0,
        dead,
    }))
}

/// Largest floating prefilter kept dense, in table entries.
const DENSE_PREFILTER_ENTRIES: usize = 3 * 1024;

/// A sparse transition table: per state a default (a next state, or a
/// template row) and the columns that differ from it, packed into one comb
/// (docs/bundle.md).
struct Comb {
    /// Per state: a next state, or `states + k` = template `k`'s entry.
    defaults: Vec<u32>,
    /// `templates × alphabet` next states.
    templates: Vec<u32>,
    bases: Vec<u32>,
    /// Owner of each slot; `states` = nobody's.
    checks: Vec<u32>,
    nexts: Vec<u32>,
}

/// Packs the dense `transitions` (`states × alphabet`, start state
/// `start`). Each state's default is its most frequent target, or a
/// template row when fewer columns differ from that. Template candidates
/// are the rows of the start state and of each state's most frequent
/// target (in a DFA that matches anywhere, a byte that continues no
/// partial match leads where it leads from the state that byte usually
/// leads to); a candidate becomes a template when it saves more comb
/// entries than its row costs. The columns that differ go into the comb,
/// first fit, rows with the most exceptions first.
fn comb_pack(transitions: &[u32], states: usize, alphabet: usize, start: usize) -> Comb {
    let row = |s: usize| &transitions[s * alphabet..(s + 1) * alphabet];
    let differing = |a: &[u32], b: &[u32]| a.iter().zip(b).filter(|(x, y)| x != y).count();
    let mut modes = Vec::with_capacity(states);
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for s in 0..states {
        counts.clear();
        for &t in row(s) {
            *counts.entry(t).or_default() += 1;
        }
        // The most frequent target; the smallest on ties (deterministic).
        let (mode, n) =
            counts.iter().max_by_key(|&(t, n)| (*n, core::cmp::Reverse(*t))).map_or((0, 0), |(t, n)| (*t, *n));
        modes.push((mode as usize, alphabet - n));
    }
    // Savings of each candidate template, over the states that would use it.
    let mut savings: HashMap<usize, usize> = HashMap::new();
    for (s, &(mode, exceptions)) in modes.iter().enumerate() {
        let candidates = [start, mode];
        for &t in &candidates[..if mode == start { 1 } else { 2 }] {
            *savings.entry(t).or_default() += exceptions.saturating_sub(differing(row(s), row(t)));
        }
    }
    let mut chosen: Vec<usize> = savings.into_iter().filter(|&(_, n)| n > alphabet).map(|(t, _)| t).collect();
    chosen.sort_unstable();
    let template_of: HashMap<usize, usize> = chosen.iter().enumerate().map(|(k, &t)| (t, k)).collect();
    let mut defaults = Vec::with_capacity(states);
    let mut exceptions: Vec<Vec<(usize, u32)>> = Vec::with_capacity(states);
    for (s, &(mode, mut fewest)) in modes.iter().enumerate() {
        let mut best = None;
        for t in [start, mode] {
            if let Some(&k) = template_of.get(&t) {
                let n = differing(row(s), row(t));
                if n < fewest {
                    fewest = n;
                    best = Some((k, t));
                }
            }
        }
        match best {
            Some((k, t)) => {
                defaults.push((states + k) as u32);
                exceptions.push(
                    row(s)
                        .iter()
                        .zip(row(t))
                        .enumerate()
                        .filter(|(_, (a, b))| a != b)
                        .map(|(c, (&a, _))| (c, a))
                        .collect(),
                );
            }
            None => {
                defaults.push(mode as u32);
                exceptions.push(
                    row(s).iter().enumerate().filter(|&(_, &t)| t as usize != mode).map(|(c, &t)| (c, t)).collect(),
                );
            }
        }
    }
    let templates = chosen.iter().flat_map(|&t| row(t).iter().copied()).collect();
    let mut order: Vec<usize> = (0..states).collect();
    order.sort_by_key(|&s| (core::cmp::Reverse(exceptions[s].len()), s));
    let mut used: Vec<bool> = Vec::new();
    let mut bases = vec![0u32; states];
    let mut checks: Vec<u32> = Vec::new();
    let mut nexts: Vec<u32> = Vec::new();
    let mut first_free: usize = 0;
    for s in order {
        let row = &exceptions[s];
        let mut base = if row.is_empty() { 0 } else { first_free.saturating_sub(row[0].0) };
        while !row.iter().all(|&(c, _)| !used.get(base + c).copied().unwrap_or(false)) {
            base += 1;
        }
        for &(c, t) in row {
            let slot = base + c;
            if used.len() <= slot {
                used.resize(slot + 1, false);
                checks.resize(slot + 1, states as u32);
                nexts.resize(slot + 1, 0);
            }
            used[slot] = true;
            checks[slot] = s as u32;
            nexts[slot] = t;
        }
        while used.get(first_free).copied().unwrap_or(false) {
            first_free += 1;
        }
        bases[s] = base as u32;
    }
    // The comb ends after its last used slot (past it, slots are nobody's):
    // a row's window may run over the end. At least one slot, so that
    // every base (0 for a row with no exceptions) lies inside.
    let len = used.len().max(1);
    checks.resize(len, states as u32);
    nexts.resize(len, 0);
    Comb { defaults, templates, bases, checks, nexts }
}

/// A DFA as the exporters hand it over: dense rows in any state order.
pub(crate) struct DenseDfa<'a> {
    pub(crate) class: FieldClass,
    pub(crate) flags: u8,
    pub(crate) patterns: usize,
    pub(crate) byte_class: &'a [u8; 256],
    /// Byte classes + 1 (end of input).
    pub(crate) alphabet: usize,
    /// `states × alphabet` next states.
    pub(crate) transitions: &'a [u32],
    /// Per state: the index of its match set, if it matches.
    pub(crate) matches: &'a [Option<u32>],
    pub(crate) sets: &'a [Vec<u64>],
    pub(crate) start: u32,
    pub(crate) dead: Option<u32>,
}

/// Writes a DFA section (docs/bundle.md, "6 DFA") and its report. The
/// states are renumbered so that the matching ones come first.
fn flat_dfa(dfa: &DenseDfa<'_>) -> (DfaReport, Vec<u8>) {
    let DenseDfa { class, flags, patterns, byte_class, alphabet, sets, .. } = *dfa;
    let states = dfa.matches.len();
    // Matching states first, then the dead state (so that one comparison
    // per byte finds both: see `dfa::run`), then the rest, each group in
    // its original order.
    let mut order: Vec<usize> = (0..states).filter(|&s| dfa.matches[s].is_some()).collect();
    let match_states = order.len();
    let dead = dfa.dead.map(|d| d as usize).filter(|&d| dfa.matches[d].is_none());
    order.extend(dead);
    order.extend((0..states).filter(|&s| dfa.matches[s].is_none() && Some(s) != dead));
    let mut renumber = vec![0u32; states];
    for (new, &old) in order.iter().enumerate() {
        renumber[old] = new as u32;
    }
    let transitions: Vec<u32> = order
        .iter()
        .flat_map(|&old| dfa.transitions[old * alphabet..(old + 1) * alphabet].iter().map(|&t| renumber[t as usize]))
        .collect();
    let match_index: Vec<u32> = order[..match_states].iter().filter_map(|&old| dfa.matches[old]).collect();
    let start = renumber[dfa.start as usize];
    let dead = dfa.dead.map_or(bundle::NO_DEAD_STATE, |d| renumber[d as usize]);
    let rule_words = sets.first().map_or(1, Vec::len);
    let comb = comb_pack(&transitions, states, alphabet, start as usize);
    let template_count = comb.templates.len() / alphabet;
    // Sparse when that takes less room than the dense table — except a
    // floating prefilter with a small dense table: it reads every byte of
    // every input of its class, and a dense step is one table read
    // instead of up to three.
    let dense_len = states * alphabet;
    let sparse_len = states * 2 + comb.templates.len() + comb.checks.len() * 2;
    let hot = dfa.flags == bundle::DFA_PREFILTER && dense_len <= DENSE_PREFILTER_ENTRIES;
    let sparse = sparse_len < dense_len && !hot;
    let template_count = if sparse { template_count } else { 0 };
    // 16-bit entries when every value fits: state ids, the marks at and
    // above `states`, match set indices and comb bases.
    let narrow = states + template_count < 0xFFFF && sets.len() <= 0x1_0000 && (!sparse || comb.checks.len() <= 0xFFFF);
    let width: u8 = if narrow { 2 } else { 4 };
    let flags = if sparse { flags | bundle::DFA_SPARSE } else { flags };
    let mut body = Vec::new();
    body.extend_from_slice(&[class as u8, flags, width, 0]);
    for value in [
        states as u32,
        alphabet as u32,
        start,
        rule_words as u32,
        sets.len() as u32,
        dead,
        if sparse { comb.checks.len() as u32 } else { 0 },
        match_states as u32,
        template_count as u32,
    ] {
        body.extend_from_slice(&value.to_le_bytes());
    }
    debug_assert_eq!(body.len(), bundle::DFA_HEADER_LEN);
    body.extend_from_slice(byte_class);
    // Entries `width` bytes wide, little-endian.
    let push = |values: &[u32], body: &mut Vec<u8>| {
        for &value in values {
            if width == 2 {
                body.extend_from_slice(&(value as u16).to_le_bytes());
            } else {
                body.extend_from_slice(&value.to_le_bytes());
            }
        }
    };
    if sparse {
        push(&comb.defaults, &mut body);
        push(&comb.bases, &mut body);
        push(&comb.templates, &mut body);
        push(&comb.checks, &mut body);
        push(&comb.nexts, &mut body);
    } else {
        push(&transitions, &mut body);
    }
    push(&match_index, &mut body);
    body.resize(body.len().next_multiple_of(8), 0);
    for set in sets {
        for w in set {
            body.extend_from_slice(&w.to_le_bytes());
        }
    }
    let report = DfaReport {
        class: class.as_str(),
        start: start_name(flags),
        sparse,
        templates: template_count as u32,
        patterns,
        states: states as u32,
        alphabet: alphabet as u32,
        bytes: body.len(),
    };
    (report, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pattern lists whose DFAs range from a few states to blow-ups
    /// (overlapping gaps, counted repeats), anchored and floating.
    const LISTS: &[&[&str]] = &[
        &["rm -rf", "curl"],
        &[r"^git\s+push(\s+\S+)*\s+--force", r"^git\s+reset\s+--hard"],
        &[r"a[^;]*b[^;]*c", r"x[^;]*y[^;]*z", r"[0-9]{3}-[0-9]{4}"],
        &[r"(?i)password\s*=\s*\S{8,}", r"secret[^\n]{0,20}key", r"\bsudo\b"],
        &[r"^[a-z]+ --flag-[0-9]+( |$)"],
    ];

    #[test]
    fn the_row_length_is_known_before_the_dfa_is_built() {
        let mut checked = 0;
        for list in LISTS {
            for kind in [Start::Anchored, Start::Floating] {
                let nfa = build_nfa(list).unwrap();
                // (A list too big for the budget has no DFA to compare.)
                if let Ok(dfa) = build_dfa(list, kind, DFA_BUDGET, None) {
                    assert_eq!(stride_of(&nfa), dfa.stride(), "{list:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked >= 8, "only {checked} DFAs compared");
    }

    #[test]
    fn a_state_limit_refuses_exactly_the_dfas_with_more_states() {
        // At and around the exact state count, a limited build that
        // passes `split_into_groups`' own test (built, and no more states
        // than the limit) is exactly an unlimited one that passes it, and
        // is the same DFA. (The limit may let a DFA a little over it be
        // built — what is added after determinizing is not counted while
        // determinizing — and the test after the build refuses it then.)
        let mut checked = 0;
        for list in LISTS {
            for kind in [Start::Anchored, Start::Floating] {
                let full = build_dfa(list, kind, DFA_BUDGET, None);
                let states = full.as_ref().map_or(usize::MAX, state_count);
                let around =
                    [0, 1, 20, 100, 1000, states / 2, states.saturating_sub(1), states, states + 1, states * 2];
                for limit in around.into_iter().filter(|&n| n != usize::MAX) {
                    let limited = build_dfa(list, kind, DFA_BUDGET, Some(limit));
                    let accepted = limited.as_ref().is_ok_and(|dfa| state_count(dfa) <= limit);
                    assert_eq!(accepted, states <= limit, "{list:?} {kind:?}: {states} states, limit {limit}");
                    if accepted {
                        let (Ok(dfa), Ok(full)) = (&limited, &full) else { unreachable!() };
                        assert_eq!(dfa.to_bytes_little_endian(), full.to_bytes_little_endian());
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked >= 60, "only {checked} limits checked");
    }
}
