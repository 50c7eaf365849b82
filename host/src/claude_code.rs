//! Claude Code's `PreToolUse` hook: its JSON input mapped to a Vigil intent
//! (docs/intent.md, "Claude Code"), and a verdict mapped to the hook's
//! answer (`permissionDecision` allow, deny or ask). Pure functions: the
//! `vigil hook` command and the daemon's HTTP hook route are front ends.

use serde_json::{Map, Value, json};
use vigil_guard::eval::ArgClass;
use vigil_guard::intent::{MAX_INTENT_BYTES, MAX_STRING};

/// The agent name intents from the hook carry.
pub const AGENT: &str = "claude-code";

/// Bytes of a long text value per intent argument: values longer than
/// [`MAX_STRING`] are judged in overlapping pieces of this size
/// (`content`, `content.2`, …), so a pattern up to [`PIECE_OVERLAP`]
/// bytes long is seen whole in at least one piece.
pub const PIECE_BYTES: usize = MAX_STRING;
/// How much consecutive pieces overlap.
pub const PIECE_OVERLAP: usize = 512;

/// Why a hook input cannot become an intent. The hook answers these with
/// `deny` (malformed input) or `ask` (too large to judge), never `allow`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookInputError {
    /// Not the JSON of a `PreToolUse` hook call.
    #[error("not a PreToolUse hook input: {0}")]
    Malformed(String),
    /// The call is larger than one intent can carry: the guard cannot
    /// judge all of it.
    #[error("{0}")]
    TooLarge(String),
}

/// A hook call as Vigil judges it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The intents (JSON form): one, or — when the call's long values do
    /// not fit one intent — several, each with every short argument and
    /// some of the long values' pieces. The call is allowed only if every
    /// one is ([`answer_verdicts`]).
    pub intents: Vec<Value>,
    /// The Claude Code tool name.
    pub tool_name: String,
}

/// The most intents one hook call is judged as (≈ 900 KB of long text).
pub const MAX_INTENTS_PER_CALL: usize = 256;

fn text<'a>(input: &'a Map<String, Value>, key: &str) -> Result<&'a str, HookInputError> {
    input
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| HookInputError::Malformed(format!("tool_input.{key} is missing or not text")))
}

/// Any JSON value as intent argument text: strings as they are, anything
/// else as compact JSON.
fn as_text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_string)
}

/// Adds `key` = `value`; two arguments never share a name.
fn put(args: &mut Map<String, Value>, key: String, value: &str) -> Result<(), HookInputError> {
    if args.contains_key(&key) {
        return Err(HookInputError::Malformed(format!(
            "two arguments would both be named `{key}` (a long value's pieces are named `NAME.2`, `NAME.3`, …); rename the argument"
        )));
    }
    args.insert(key, Value::String(value.to_string()));
    Ok(())
}

/// Adds `value` under `key`, cut into overlapping pieces when it is longer
/// than one argument may be (`key`, `key.2`, `key.3`, …; their names go
/// to `pieces`). Only values the judge reads as free text are cut: a
/// command line, path or URL (by the argument's name, as the guard classes
/// them) judged in pieces would be judged as something it is not, so a
/// long one is too large to judge.
fn put_long(
    args: &mut Map<String, Value>,
    pieces: &mut Vec<String>,
    key: &str,
    value: &str,
) -> Result<(), HookInputError> {
    if value.len() <= PIECE_BYTES {
        return put(args, key.to_string(), value);
    }
    if ArgClass::of(key) != ArgClass::Other {
        return Err(HookInputError::TooLarge(format!(
            "the argument `{key}` is {} bytes; a command line, path or URL is judged whole, and the guard judges at most {MAX_STRING} bytes of one",
            value.len()
        )));
    }
    let mut start = 0;
    let mut n = 1;
    while start < value.len() {
        let mut end = (start + PIECE_BYTES).min(value.len());
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        let name = if n == 1 { key.to_string() } else { format!("{key}.{n}") };
        put(args, name.clone(), &value[start..end])?;
        pieces.push(name);
        if end == value.len() {
            break;
        }
        let mut next = end - PIECE_OVERLAP;
        while !value.is_char_boundary(next) {
            next -= 1;
        }
        start = next;
        n += 1;
    }
    Ok(())
}

/// Maps a `PreToolUse` hook input to an intent with id `id`.
///
/// | Claude Code tool | intent |
/// |---|---|
/// | `Bash` | `shell` {command} |
/// | `Read` | `read_file` {path} |
/// | `Write` | `write_file` {path, content} |
/// | `Edit`, `MultiEdit`, `NotebookEdit` | `write_file` {path, content: the new text} |
/// | `WebFetch` | `http` {url, method GET} |
/// | `Glob` | `read_file` {path: the searched directory (cwd when none), pattern} |
/// | `Grep` | `read_file` {path: the searched directory (cwd when none), recursive: true, pattern} |
/// | `mcp__SERVER__TOOL` | `mcp:SERVER/TOOL` {each input field as text} |
/// | any other | `claude:NAME` {each input field as text} |
pub fn intent_of(input: &Value, id: u64) -> Result<Mapped, HookInputError> {
    let object = input.as_object().ok_or_else(|| HookInputError::Malformed("the input is not a JSON object".into()))?;
    if let Some(event) = object.get("hook_event_name").and_then(Value::as_str)
        && event != "PreToolUse"
    {
        return Err(HookInputError::Malformed(format!("hook_event_name is {event}, not PreToolUse")));
    }
    let tool_name = object
        .get("tool_name")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| HookInputError::Malformed("tool_name is missing".into()))?;
    let empty = Map::new();
    let tool_input = match object.get("tool_input") {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => &empty,
        Some(_) => return Err(HookInputError::Malformed("tool_input is not an object".into())),
    };
    let cwd = object.get("cwd").and_then(Value::as_str).filter(|c| !c.is_empty());
    let mut args = Map::new();
    let mut pieces = Vec::new();
    let tool = match tool_name {
        "Bash" => {
            args.insert("command".into(), text(tool_input, "command")?.into());
            "shell".to_string()
        }
        "Read" => {
            args.insert("path".into(), text(tool_input, "file_path")?.into());
            "read_file".to_string()
        }
        "Write" => {
            args.insert("path".into(), text(tool_input, "file_path")?.into());
            put_long(
                &mut args,
                &mut pieces,
                "content",
                tool_input.get("content").and_then(Value::as_str).unwrap_or(""),
            )?;
            "write_file".to_string()
        }
        "Edit" => {
            args.insert("path".into(), text(tool_input, "file_path")?.into());
            put_long(
                &mut args,
                &mut pieces,
                "content",
                tool_input.get("new_string").and_then(Value::as_str).unwrap_or(""),
            )?;
            "write_file".to_string()
        }
        "MultiEdit" => {
            args.insert("path".into(), text(tool_input, "file_path")?.into());
            let edits = tool_input.get("edits").and_then(Value::as_array).cloned().unwrap_or_default();
            let new: Vec<&str> = edits.iter().filter_map(|e| e.get("new_string").and_then(Value::as_str)).collect();
            put_long(&mut args, &mut pieces, "content", &new.join("\n"))?;
            "write_file".to_string()
        }
        "NotebookEdit" => {
            args.insert("path".into(), text(tool_input, "notebook_path")?.into());
            put_long(
                &mut args,
                &mut pieces,
                "content",
                tool_input.get("new_source").and_then(Value::as_str).unwrap_or(""),
            )?;
            "write_file".to_string()
        }
        "WebFetch" => {
            args.insert("url".into(), text(tool_input, "url")?.into());
            args.insert("method".into(), "GET".into());
            "http".to_string()
        }
        "Glob" | "Grep" => {
            let dir = tool_input.get("path").and_then(Value::as_str).filter(|p| !p.is_empty()).or(cwd).unwrap_or(".");
            put(&mut args, "path".into(), dir)?;
            if tool_name == "Grep" {
                // A search reads every file below its path; its `glob`
                // filter only narrows that, so the whole tree is judged.
                put(&mut args, "recursive".into(), "true")?;
            }
            if let Some(pattern) = tool_input.get("pattern") {
                put_long(&mut args, &mut pieces, "pattern", &as_text(pattern))?;
            }
            "read_file".to_string()
        }
        other => {
            for (key, value) in tool_input {
                put_long(&mut args, &mut pieces, key, &as_text(value))?;
            }
            match other.strip_prefix("mcp__").and_then(|rest| rest.split_once("__")) {
                Some((server, tool)) if !server.is_empty() && !tool.is_empty() => format!("mcp:{server}/{tool}"),
                _ => format!("claude:{other}"),
            }
        }
    };
    let mut base = json!({ "agent": AGENT, "tool": tool, "args": {} });
    if let Some(session) = object.get("session_id").and_then(Value::as_str) {
        base["session"] = session.into();
    }
    if let Some(cwd) = cwd {
        base["cwd"] = cwd.into();
    }
    let intents = split_into_intents(&base, args, &pieces, id)
        .map_err(|why| HookInputError::TooLarge(format!("the {tool_name} call cannot be judged: {why}")))?;
    Ok(Mapped { intents, tool_name: tool_name.to_string() })
}

/// What one intent can carry: argument count, value sizes, total size.
fn fits(intent: &Value) -> Result<(), String> {
    let args = intent["args"].as_object().map_or(0, Map::len);
    let cbor = vigil_guard::intent::json::to_cbor(intent).map_err(|e| e.to_string())?;
    if cbor.len() > MAX_INTENT_BYTES || args > vigil_guard::intent::MAX_ARGS {
        return Err(format!(
            "{} bytes with {args} arguments as an intent; the guard judges at most {MAX_INTENT_BYTES} bytes and {} arguments",
            cbor.len(),
            vigil_guard::intent::MAX_ARGS
        ));
    }
    Ok(())
}

/// `base` (an intent without id and args) with `args`: one intent when it
/// fits, else several, each with every argument not in `pieces` and as
/// many pieces as fit, in order; ids `id`, `id + 1`, ….
fn split_into_intents(
    base: &Value,
    mut args: Map<String, Value>,
    pieces: &[String],
    id: u64,
) -> Result<Vec<Value>, String> {
    let with = |args: Map<String, Value>, n: u64| {
        let mut intent = base.clone();
        intent["id"] = id.wrapping_add(n).into();
        intent["args"] = Value::Object(args);
        intent
    };
    let whole = with(args.clone(), 0);
    let Err(why) = fits(&whole) else { return Ok(vec![whole]) };
    if pieces.is_empty() {
        return Err(why);
    }
    let long: Vec<(String, Value)> = pieces.iter().filter_map(|k| args.remove(k).map(|v| (k.clone(), v))).collect();
    let short = args;
    fits(&with(short.clone(), 0)).map_err(|why| format!("its short arguments alone are {why}"))?;
    let mut intents: Vec<Value> = Vec::new();
    let mut current = short.clone();
    for (i, (key, value)) in long.into_iter().enumerate() {
        let mut trial = current.clone();
        trial.insert(key.clone(), value.clone());
        if i > 0 && fits(&with(trial.clone(), 0)).is_err() {
            intents.push(with(std::mem::replace(&mut current, short.clone()), intents.len() as u64));
            if intents.len() >= MAX_INTENTS_PER_CALL {
                return Err(format!("it needs more than {MAX_INTENTS_PER_CALL} intents"));
            }
            trial = current.clone();
            trial.insert(key.clone(), value);
        }
        fits(&with(trial.clone(), 0))
            .map_err(|why| format!("its argument `{key}` beside the short ones alone is {why}"))?;
        current = trial;
    }
    intents.push(with(current, intents.len() as u64));
    Ok(intents)
}

/// One hook call's bytes as the intents to judge (CBOR, id, no detail),
/// or why it cannot be judged — for the caller to have the guard judge it
/// as malformed (a recorded DENY that says why).
pub fn intents_of_text(input: &[u8], id: u64) -> Result<Vec<crate::recording::Converted>, String> {
    let text = std::str::from_utf8(input).map_err(|e| format!("the hook input is not UTF-8: {e}"))?;
    let value =
        vigil_guard::intent::json::parse_strict(text).map_err(|e| format!("the hook input is not valid JSON: {e}"))?;
    let mapped = intent_of(&value, id).map_err(|e| e.to_string())?;
    mapped
        .intents
        .iter()
        .map(|intent| {
            let id = intent["id"].as_u64().unwrap_or(id);
            vigil_guard::intent::json::to_cbor(intent).map(|cbor| (cbor, id, None)).map_err(|e| e.to_string())
        })
        .collect()
}

/// The hook's answer (its stdout, or the HTTP response body).
pub fn answer(decision: &str, reason: &str) -> Value {
    json!({
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": decision,
            "permissionDecisionReason": reason,
        }
    })
}

/// The hook's answer when no verdict could be had: `deny`, saying why.
pub fn no_verdict(why: &str) -> Value {
    answer("deny", &format!("vigil: no verdict, so deny (fail-closed): {why}"))
}

/// A fresh random id for the intents of one hook call (53 bits: exact in
/// JSON numbers everywhere); 0 if the system has no randomness to give.
pub fn call_id() -> u64 {
    crate::random::bytes::<8>().map(|b| u64::from_le_bytes(b) >> 11).unwrap_or(0)
}

/// The hook's answer to a verdict (a daemon or `vigil eval` verdict JSON):
/// ALLOW → allow, DENY → deny, ESCALATE → ask (an approval already given
/// or refused by a person decides instead), anything else → deny.
pub fn answer_verdict(verdict: &Value) -> Value {
    let decision = verdict["approval"]["decision"].as_str().or(verdict["decision"].as_str()).unwrap_or("");
    let why = match (verdict["rule"].as_str(), verdict["stage"].as_str(), verdict["reason"].as_str()) {
        (Some(rule), ..) => format!("rule {rule}"),
        (None, Some(stage), Some(reason)) => format!("{stage}/{reason}"),
        _ => "no reason given".to_string(),
    };
    let detail = verdict["detail"].as_str().map(|d| format!(": {d}")).unwrap_or_default();
    let decided = verdict["decision"].as_str().unwrap_or("?");
    match decision {
        "ALLOW" => answer("allow", &format!("vigil: {decided} ({why})")),
        "ESCALATE" => answer("ask", &format!("vigil: ESCALATE ({why}{detail}): a person must decide")),
        "DENY" => answer("deny", &format!("vigil: {decided} ({why}{detail})")),
        _ => answer("deny", "vigil: no verdict (fail-closed)"),
    }
}

/// The hook's answer to the verdicts on every intent of one call: the
/// most severe decides (no verdict or DENY, then ESCALATE, then ALLOW; an
/// approval given or refused counts as its decision).
pub fn answer_verdicts(verdicts: &[Value]) -> Value {
    let severity = |v: &Value| match v["approval"]["decision"].as_str().or(v["decision"].as_str()) {
        Some("ALLOW") => 0,
        Some("ESCALATE") => 1,
        _ => 2,
    };
    match verdicts.iter().max_by_key(|v| severity(v)) {
        Some(worst) => answer_verdict(worst),
        None => answer("deny", "vigil: no verdict (fail-closed)"),
    }
}

/// Why a settings file was left alone.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(String);

/// Whether `hooks` (a hook handler list) already holds `ours`.
fn holds(entry: &Value, ours: &Value) -> bool {
    entry["hooks"].as_array().is_some_and(|hooks| {
        hooks.iter().any(|h| {
            h["type"] == ours["type"]
                && match ours["type"].as_str() {
                    Some("http") => h["url"] == ours["url"],
                    _ => h["command"] == ours["command"],
                }
        })
    })
}

/// Adds the `PreToolUse` hook `ours` (a handler: `{"type": "command", …}`
/// or `{"type": "http", …}`) for every tool to a Claude Code settings file
/// (`settings`: its text, `None` if it does not exist). Other settings and
/// other hooks are kept — top-level keys in their order, their values as
/// written. Returns the new text, or `None` when the hook is already there
/// (nothing to change).
pub fn install_hook(settings: Option<&str>, ours: &Value) -> Result<Option<String>, SettingsError> {
    type Top = indexmap::IndexMap<String, Box<serde_json::value::RawValue>>;
    let mut top: Top = match settings {
        None => Top::new(),
        Some(text) if text.trim().is_empty() => Top::new(),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| SettingsError(format!("the settings file is not a JSON object ({e}); fix it first")))?,
    };
    let mut hooks: Value = match top.get("hooks") {
        Some(raw) => serde_json::from_str(raw.get()).map_err(|e| SettingsError(e.to_string()))?,
        None => json!({}),
    };
    let Some(hooks_map) = hooks.as_object_mut() else {
        return Err(SettingsError("`hooks` in the settings file is not an object; fix it first".into()));
    };
    let pre = hooks_map.entry("PreToolUse").or_insert_with(|| json!([]));
    let Some(entries) = pre.as_array_mut() else {
        return Err(SettingsError("`hooks.PreToolUse` in the settings file is not a list; fix it first".into()));
    };
    if entries.iter().any(|e| holds(e, ours)) {
        return Ok(None);
    }
    entries.push(json!({ "matcher": "*", "hooks": [ours] }));
    let raw = serde_json::value::to_raw_value(&hooks).map_err(|e| SettingsError(e.to_string()))?;
    top.insert("hooks".into(), raw);
    let mut out = String::from("{\n");
    for (i, (key, value)) in top.iter().enumerate() {
        let key = serde_json::to_string(key).map_err(|e| SettingsError(e.to_string()))?;
        let value = if key == "\"hooks\"" {
            serde_json::to_string_pretty(&hooks).map_err(|e| SettingsError(e.to_string()))?.replace('\n', "\n  ")
        } else {
            value.get().to_string()
        };
        out.push_str(&format!("  {key}: {value}{}\n", if i + 1 < top.len() { "," } else { "" }));
    }
    out.push_str("}\n");
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(tool: &str, input: Value) -> Value {
        json!({"session_id": "s1", "cwd": "/home/dev/p", "hook_event_name": "PreToolUse", "tool_name": tool, "tool_input": input})
    }

    #[test]
    fn each_tool_maps_to_its_intent() {
        let cases = [
            (hook("Bash", json!({"command": "ls -la", "description": "list"})), "shell", json!({"command": "ls -la"})),
            (hook("Read", json!({"file_path": "/etc/passwd"})), "read_file", json!({"path": "/etc/passwd"})),
            (
                hook("Write", json!({"file_path": "a.txt", "content": "hi"})),
                "write_file",
                json!({"path": "a.txt", "content": "hi"}),
            ),
            (
                hook("Edit", json!({"file_path": "a.rs", "old_string": "x", "new_string": "y"})),
                "write_file",
                json!({"path": "a.rs", "content": "y"}),
            ),
            (
                hook(
                    "MultiEdit",
                    json!({"file_path": "a.rs", "edits": [{"old_string": "a", "new_string": "b"}, {"old_string": "c", "new_string": "d"}]}),
                ),
                "write_file",
                json!({"path": "a.rs", "content": "b\nd"}),
            ),
            (
                hook("WebFetch", json!({"url": "https://x.org", "prompt": "p"})),
                "http",
                json!({"url": "https://x.org", "method": "GET"}),
            ),
            (
                hook("Grep", json!({"pattern": "TODO"})),
                "read_file",
                json!({"path": "/home/dev/p", "recursive": "true", "pattern": "TODO"}),
            ),
            (
                hook("Grep", json!({"pattern": "key", "path": "/home/dev/", "glob": "*.pem"})),
                "read_file",
                json!({"path": "/home/dev/", "recursive": "true", "pattern": "key"}),
            ),
            (
                hook("Glob", json!({"pattern": "*.rs", "path": "/src"})),
                "read_file",
                json!({"path": "/src", "pattern": "*.rs"}),
            ),
            (
                hook("mcp__github__create_issue", json!({"title": "t", "labels": ["a"]})),
                "mcp:github/create_issue",
                json!({"title": "t", "labels": "[\"a\"]"}),
            ),
            (hook("TodoWrite", json!({"todos": []})), "claude:TodoWrite", json!({"todos": "[]"})),
        ];
        for (input, tool, args) in cases {
            let mapped = intent_of(&input, 9).unwrap();
            assert_eq!(mapped.intents.len(), 1);
            let intent = &mapped.intents[0];
            assert_eq!(intent["tool"], tool, "{input}");
            assert_eq!(intent["args"], args, "{input}");
            assert_eq!(intent["agent"], AGENT);
            assert_eq!(intent["session"], "s1");
            assert_eq!(intent["cwd"], "/home/dev/p");
            assert!(vigil_guard::intent::json::to_cbor(intent).is_ok());
        }
    }

    #[test]
    fn long_content_is_judged_in_overlapping_pieces_across_intents() {
        // A secret straddling the first piece boundary is whole in the second.
        let mut content = "x".repeat(PIECE_BYTES - 20);
        content.push_str("-----BEGIN RSA PRIVATE KEY-----");
        content.push_str(&"y".repeat(3000));
        let mapped = intent_of(&hook("Write", json!({"file_path": "k", "content": content})), 1).unwrap();
        assert_eq!(mapped.intents.len(), 1);
        let args = mapped.intents[0]["args"].as_object().unwrap();
        assert!(args["content"].as_str().unwrap().len() <= PIECE_BYTES);
        assert!(args["content.2"].as_str().unwrap().contains("-----BEGIN RSA PRIVATE KEY-----"));
        // Too long for one intent: several, each with the path, every piece
        // in exactly one, every byte in some piece, each intent judgeable.
        let big: String = (0..40_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let mapped = intent_of(&hook("Write", json!({"file_path": "/p/big.txt", "content": big})), 100).unwrap();
        assert!(mapped.intents.len() >= 3, "{}", mapped.intents.len());
        let mut names = std::collections::BTreeSet::new();
        let mut bytes = 0;
        for (n, intent) in mapped.intents.iter().enumerate() {
            assert_eq!(intent["id"], 100 + n as u64);
            assert_eq!(intent["args"]["path"], "/p/big.txt");
            let cbor = vigil_guard::intent::json::to_cbor(intent).unwrap();
            assert!(cbor.len() <= MAX_INTENT_BYTES);
            for (key, value) in intent["args"].as_object().unwrap() {
                if key.starts_with("content") {
                    assert!(names.insert(key.clone()), "{key} twice");
                    bytes += value.as_str().unwrap().len();
                }
            }
        }
        assert!(bytes >= big.len());
        assert!(names.contains("content") && names.contains("content.10"), "{names:?}");
        // More than a call may be judged as.
        let huge = "z".repeat(MAX_INTENTS_PER_CALL * 3 * PIECE_BYTES);
        assert!(matches!(
            intent_of(&hook("Write", json!({"file_path": "k", "content": huge})), 1),
            Err(HookInputError::TooLarge(_))
        ));
    }

    #[test]
    fn command_path_and_url_values_are_never_cut_and_piece_names_never_collide() {
        let long = format!("echo {} ; rm -rf ~", "a".repeat(5000));
        for key in ["command", "shell_cmd", "Deploy-Script", "file_path", "target.dir", "webhook"] {
            let input = hook("mcp__runner__run", json!({ key: long }));
            assert!(matches!(intent_of(&input, 1), Err(HookInputError::TooLarge(_))), "{key}");
        }
        let collide = hook("mcp__notes__save", json!({"text": "x".repeat(5000), "text.2": "harmless"}));
        assert!(matches!(intent_of(&collide, 1), Err(HookInputError::Malformed(_))));
        // Both orders of the map, and a piece name that is itself long.
        let collide = hook("mcp__notes__save", json!({"a.2": "y".repeat(5000), "a": "x".repeat(5000)}));
        assert!(matches!(intent_of(&collide, 1), Err(HookInputError::Malformed(_))));
        // Names that merely look alike are fine.
        let fine = hook("mcp__notes__save", json!({"text": "x".repeat(5000), "text.2x": "y"}));
        assert_eq!(intent_of(&fine, 1).unwrap().intents.len(), 1);
    }

    #[test]
    fn hook_text_that_cannot_be_judged_says_why() {
        assert!(intents_of_text(b"\xff", 1).unwrap_err().contains("UTF-8"));
        assert!(intents_of_text(b"{", 1).unwrap_err().contains("JSON"));
        assert!(intents_of_text(br#"{"tool_name": "Read", "tool_input": {}}"#, 1).unwrap_err().contains("file_path"));
        let ok = intents_of_text(br#"{"tool_name": "Read", "tool_input": {"file_path": "a"}}"#, 5).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].1, 5);
    }

    #[test]
    fn the_most_severe_verdict_of_a_call_decides() {
        let d = |v: Value| {
            answer_verdicts(v.as_array().unwrap())["hookSpecificOutput"]["permissionDecision"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(d(json!([{"decision": "ALLOW"}, {"decision": "ALLOW"}])), "allow");
        assert_eq!(d(json!([{"decision": "ALLOW"}, {"decision": "ESCALATE"}])), "ask");
        assert_eq!(d(json!([{"decision": "DENY"}, {"decision": "ESCALATE"}, {"decision": "ALLOW"}])), "deny");
        assert_eq!(d(json!([{"decision": "ALLOW"}, {}])), "deny");
        assert_eq!(d(json!([])), "deny");
    }

    #[test]
    fn malformed_inputs_are_refused() {
        for bad in [
            json!([1]),
            json!({"tool_input": {}}),
            json!({"tool_name": "Bash", "tool_input": {"command": 3}}),
            json!({"tool_name": "Read", "tool_input": {}}),
            json!({"tool_name": "Bash", "tool_input": "ls"}),
            json!({"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"}}),
        ] {
            assert!(matches!(intent_of(&bad, 1), Err(HookInputError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn install_keeps_other_settings_and_hooks_and_is_idempotent() {
        let ours = json!({"type": "command", "command": "/usr/bin/vigil hook claude-code", "timeout": 30});
        let before = r#"{
  "model": "opus",
  "permissions": {"allow": ["Bash(ls:*)"]},
  "hooks": {"PostToolUse": [{"matcher": "Write", "hooks": [{"type": "command", "command": "fmt"}]}],
            "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "other-check"}]}]}
}"#;
        let after = install_hook(Some(before), &ours).unwrap().unwrap();
        let v: Value = serde_json::from_str(&after).unwrap();
        assert_eq!(v["model"], "opus");
        assert_eq!(v["permissions"]["allow"][0], "Bash(ls:*)");
        assert_eq!(v["hooks"]["PostToolUse"][0]["hooks"][0]["command"], "fmt");
        assert_eq!(v["hooks"]["PreToolUse"][0]["hooks"][0]["command"], "other-check");
        assert_eq!(v["hooks"]["PreToolUse"][1]["hooks"][0], ours);
        assert!(after.find("\"model\"").unwrap() < after.find("\"permissions\"").unwrap(), "key order kept");
        assert_eq!(install_hook(Some(&after), &ours).unwrap(), None, "a second install changes nothing");
        // No file yet: one is made; broken files are left alone.
        let fresh: Value = serde_json::from_str(&install_hook(None, &ours).unwrap().unwrap()).unwrap();
        assert_eq!(fresh["hooks"]["PreToolUse"][0]["hooks"][0], ours);
        for broken in ["[1]", "{", r#"{"hooks": 3}"#, r#"{"hooks": {"PreToolUse": {}}}"#] {
            assert!(install_hook(Some(broken), &ours).is_err(), "{broken}");
        }
    }

    #[test]
    fn verdicts_map_to_decisions_and_nothing_unknown_allows() {
        let d = |v: Value| answer_verdict(&v)["hookSpecificOutput"]["permissionDecision"].as_str().unwrap().to_string();
        assert_eq!(d(json!({"decision": "ALLOW", "rule": "known.git"})), "allow");
        assert_eq!(d(json!({"decision": "DENY", "rule": "fs.rm"})), "deny");
        assert_eq!(d(json!({"decision": "ESCALATE", "stage": "tripwire", "reason": "unlisted_domain"})), "ask");
        assert_eq!(d(json!({"decision": "ESCALATE", "approval": {"decision": "ALLOW"}})), "allow");
        assert_eq!(d(json!({"decision": "ESCALATE", "approval": {"decision": "DENY"}})), "deny");
        assert_eq!(d(json!({"decision": "MAYBE"})), "deny");
        assert_eq!(d(json!(null)), "deny");
        let reason = answer_verdict(&json!({"decision": "DENY", "rule": "fs.rm-recursive-critical"}));
        assert!(
            reason["hookSpecificOutput"]["permissionDecisionReason"]
                .as_str()
                .unwrap()
                .contains("fs.rm-recursive-critical")
        );
    }
}
