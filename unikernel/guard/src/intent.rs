//! The intent: one tool call an agent proposes, as a CBOR map
//! (docs/intent.md). Decoding borrows every string from the input buffer,
//! allocates nothing and enforces the limits; anything malformed is an
//! [`IntentError`], which the evaluator turns into DENY (`malformed`).

use minicbor::Decoder;
use minicbor::data::Type;

/// Largest encoded intent.
pub const MAX_INTENT_BYTES: usize = 16 * 1024;
/// Longest string (key or value), in bytes.
pub const MAX_STRING: usize = 4 * 1024;
/// Most entries in `args`.
pub const MAX_ARGS: usize = 32;

/// Why an intent was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntentError {
    /// Larger than [`MAX_INTENT_BYTES`].
    TooLarge,
    /// Not well-formed CBOR, or a value of the wrong type.
    Cbor,
    /// The top level or `args` is not a map with text keys.
    NotAMap,
    /// Indefinite-length maps or strings are not accepted.
    IndefiniteLength,
    /// A key this version does not define.
    UnknownKey,
    /// A key appears twice.
    DuplicateKey,
    /// A required field is missing.
    Missing(&'static str),
    /// A string is longer than [`MAX_STRING`].
    StringTooLong,
    /// More than [`MAX_ARGS`] arguments.
    TooManyArgs,
    /// Bytes after the intent map.
    TrailingBytes,
    /// `tool` is empty.
    EmptyTool,
}

impl IntentError {
    /// Short machine-readable reason.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentError::TooLarge => "too_large",
            IntentError::Cbor => "bad_cbor",
            IntentError::NotAMap => "not_a_map",
            IntentError::IndefiniteLength => "indefinite_length",
            IntentError::UnknownKey => "unknown_key",
            IntentError::DuplicateKey => "duplicate_key",
            IntentError::Missing(_) => "missing_field",
            IntentError::StringTooLong => "string_too_long",
            IntentError::TooManyArgs => "too_many_args",
            IntentError::TrailingBytes => "trailing_bytes",
            IntentError::EmptyTool => "empty_tool",
        }
    }
}

/// What was refused, for a person: `the required field `args` is missing`.
impl core::fmt::Display for IntentError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IntentError::TooLarge => write!(f, "the encoded intent is over {MAX_INTENT_BYTES} bytes"),
            IntentError::Cbor => f.write_str("not well-formed CBOR, or a field of the wrong type"),
            IntentError::NotAMap => f.write_str("the intent or its args is not a map with text keys"),
            IntentError::IndefiniteLength => f.write_str("indefinite-length maps and strings are not accepted"),
            IntentError::UnknownKey => f.write_str(
                "a top-level key this version does not define (it has id, agent, session, tool, args, cwd, justification)",
            ),
            IntentError::DuplicateKey => f.write_str("a key appears twice"),
            IntentError::Missing(field) => write!(f, "the required field `{field}` is missing"),
            IntentError::StringTooLong => write!(f, "a key or value is over {MAX_STRING} bytes"),
            IntentError::TooManyArgs => write!(f, "args has over {MAX_ARGS} entries"),
            IntentError::TrailingBytes => f.write_str("bytes follow the intent map"),
            IntentError::EmptyTool => f.write_str("`tool` is empty"),
        }
    }
}

impl From<minicbor::decode::Error> for IntentError {
    fn from(_: minicbor::decode::Error) -> Self {
        IntentError::Cbor
    }
}

/// The tool arguments: a flat text → text map, in the order given.
#[derive(Clone, Copy, Debug)]
pub struct Args<'a> {
    entries: [(&'a str, &'a str); MAX_ARGS],
    len: usize,
}

impl<'a> Args<'a> {
    const EMPTY: Args<'static> = Args { entries: [("", ""); MAX_ARGS], len: 0 };

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// All entries.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.entries.iter().take(self.len).copied()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A decoded intent. Every string borrows from the encoded bytes.
#[derive(Clone, Copy, Debug)]
pub struct Intent<'a> {
    /// Caller-chosen identifier.
    pub id: u64,
    /// Which agent proposes it.
    pub agent: &'a str,
    /// Agent session ("" when absent).
    pub session: &'a str,
    /// Tool name: `shell`, `read_file`, `write_file`, `http`, or another.
    pub tool: &'a str,
    /// Tool arguments.
    pub args: Args<'a>,
    /// Working directory ("" when absent).
    pub cwd: &'a str,
    /// Why the agent wants it ("" when absent).
    pub justification: &'a str,
}

impl Intent<'_> {
    /// Every field empty (id 0, no arguments): what [`decode_into`] fills.
    pub const EMPTY: Intent<'static> =
        Intent { id: 0, agent: "", session: "", tool: "", args: Args::EMPTY, cwd: "", justification: "" };
}

fn text<'b>(d: &mut Decoder<'b>) -> Result<&'b str, IntentError> {
    string(d, IntentError::Cbor)
}

/// A map key: text only.
fn key<'b>(d: &mut Decoder<'b>) -> Result<&'b str, IntentError> {
    string(d, IntentError::NotAMap)
}

/// A definite-length text string of at most [`MAX_STRING`] bytes; an item
/// of another type is `other` (an indefinite-length string, or a string
/// that is not UTF-8, has its own error). The type is looked at only when
/// the string cannot be read.
fn string<'b>(d: &mut Decoder<'b>, other: IntentError) -> Result<&'b str, IntentError> {
    let at = d.position();
    match d.str() {
        Ok(s) if s.len() > MAX_STRING => Err(IntentError::StringTooLong),
        Ok(s) => Ok(s),
        Err(_) => {
            d.set_position(at);
            Err(match d.datatype()? {
                Type::String => IntentError::Cbor,
                Type::StringIndef => IntentError::IndefiniteLength,
                _ => other,
            })
        }
    }
}

fn map_len(d: &mut Decoder<'_>) -> Result<u64, IntentError> {
    match d.datatype()? {
        Type::Map => {}
        Type::MapIndef => return Err(IntentError::IndefiniteLength),
        _ => return Err(IntentError::NotAMap),
    }
    d.map()?.ok_or(IntentError::IndefiniteLength)
}

const KEYS: [&str; 7] = ["id", "agent", "session", "tool", "args", "cwd", "justification"];

/// Decodes and checks one intent.
pub fn decode(bytes: &[u8]) -> Result<Intent<'_>, IntentError> {
    let mut intent = Intent::EMPTY;
    decode_into(bytes, &mut intent).map(|()| intent)
}

/// [`decode`] into `intent`, whose every field is overwritten (absent
/// optional fields become empty): the evaluator decodes into an intent of
/// its own stack frame instead of moving a kilobyte-sized one out of a
/// `Result`. After an error `intent` holds whatever was decoded so far.
pub fn decode_into<'a>(bytes: &'a [u8], intent: &mut Intent<'a>) -> Result<(), IntentError> {
    intent.id = 0;
    intent.agent = "";
    intent.session = "";
    intent.tool = "";
    intent.args.len = 0;
    intent.cwd = "";
    intent.justification = "";
    if bytes.len() > MAX_INTENT_BYTES {
        return Err(IntentError::TooLarge);
    }
    let mut d = Decoder::new(bytes);
    let entries = map_len(&mut d)?;
    if entries > KEYS.len() as u64 {
        return Err(IntentError::DuplicateKey);
    }
    let mut seen = [false; KEYS.len()];
    for _ in 0..entries {
        let key = key(&mut d)?;
        let slot = KEYS.iter().position(|k| *k == key).ok_or(IntentError::UnknownKey)?;
        if core::mem::replace(&mut seen[slot], true) {
            return Err(IntentError::DuplicateKey);
        }
        match slot {
            0 => {
                if !matches!(d.datatype()?, Type::U8 | Type::U16 | Type::U32 | Type::U64) {
                    return Err(IntentError::Cbor);
                }
                intent.id = d.u64()?;
            }
            1 => intent.agent = text(&mut d)?,
            2 => intent.session = text(&mut d)?,
            3 => intent.tool = text(&mut d)?,
            4 => args(&mut d, &mut intent.args)?,
            5 => intent.cwd = text(&mut d)?,
            _ => intent.justification = text(&mut d)?,
        }
    }
    if d.position() != bytes.len() {
        return Err(IntentError::TrailingBytes);
    }
    for (slot, name) in [(0, "id"), (1, "agent"), (3, "tool"), (4, "args")] {
        if !seen[slot] {
            return Err(IntentError::Missing(name));
        }
    }
    if intent.tool.is_empty() {
        return Err(IntentError::EmptyTool);
    }
    Ok(())
}

/// Decodes `args` into `args` (empty before, filled in place: the table is
/// a kilobyte).
fn args<'b>(d: &mut Decoder<'b>, args: &mut Args<'b>) -> Result<(), IntentError> {
    let entries = map_len(d)?;
    if entries > MAX_ARGS as u64 {
        return Err(IntentError::TooManyArgs);
    }
    for i in 0..entries as usize {
        let key = key(d)?;
        let value = text(d)?;
        if args.entries[..i].iter().any(|(k, _)| *k == key) {
            return Err(IntentError::DuplicateKey);
        }
        args.entries[i] = (key, value);
        args.len = i + 1;
    }
    Ok(())
}

/// Host-side conversion of the JSON form users type into the CBOR form the
/// guard decodes (same fields, same limits). Feature `json`.
///
/// This is the one conversion: `vigil eval` (the JSON as submitted) and the
/// labelled test cases of `vigil policy test` (their `intent` field) both
/// go through [`parse_strict`] and [`to_cbor`]. Whatever cannot become
/// exactly one CBOR intent is a [`JsonError`], which the host judges and
/// records as malformed (DENY), never as some other reading of the text.
#[cfg(feature = "json")]
pub mod json {
    extern crate std;
    use std::string::{String, ToString};
    use std::vec::Vec;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    use super::{KEYS, MAX_INTENT_BYTES};

    /// Why intent JSON was refused: it has no single meaning as a CBOR
    /// intent.
    #[derive(Debug, thiserror::Error)]
    pub enum JsonError {
        /// Not JSON, or JSON with more than one reading: a key repeated in
        /// an object (named in the message), a lone surrogate, a number out
        /// of range, trailing characters, nesting deeper than 128 levels.
        #[error("JSON refused: {0}")]
        Json(#[from] serde_json::Error),
        /// The top level is not an object.
        #[error("an intent must be a JSON object")]
        NotAnObject,
        /// A top-level field docs/intent.md does not define (an `intent`
        /// wrapper included: only labelled test cases are unwrapped).
        #[error(
            "unknown intent field `{0}` (expected one of {KEYS:?}; labelled test cases belong to `vigil policy test`)"
        )]
        UnknownField(String),
        /// `id` is not an integer in 0..=2^64-1.
        #[error("`id` must be an integer from 0 to 18446744073709551615")]
        BadId,
        /// A text field holds something else.
        #[error("`{0}` must be text")]
        NotText(&'static str),
        /// `args` is not an object.
        #[error("`args` must be an object of text values")]
        ArgsNotAnObject,
        /// An argument is null, an array or an object.
        #[error("argument `{0}` must be text (integers and booleans are converted to their text)")]
        ArgNotText(String),
        /// An argument is a number without one exact text form.
        #[error(
            "argument `{0}` is a number with a fraction or an exponent, or an integer beyond 64 bits: it has no one text form, write it as a JSON string"
        )]
        InexactNumber(String),
        /// The CBOR intent would exceed [`MAX_INTENT_BYTES`].
        #[error("the intent is {len} bytes as CBOR, over the {MAX_INTENT_BYTES}-byte limit (docs/intent.md)")]
        TooLarge {
            /// Its CBOR length.
            len: usize,
        },
        /// The CBOR encoder failed (writing to memory: not expected).
        #[error("encoding the CBOR intent: {0}")]
        Encode(String),
    }

    impl From<minicbor::encode::Error<core::convert::Infallible>> for JsonError {
        fn from(e: minicbor::encode::Error<core::convert::Infallible>) -> Self {
            JsonError::Encode(e.to_string())
        }
    }

    /// Parses JSON text into a value, refusing what a lenient parser would
    /// resolve silently: an object key repeated at any depth (compared
    /// after unescaping, so `"comm\u0061nd"` repeats `"command"`) — serde_json
    /// alone keeps the last one, so `{"command":"shred …","command":"ls"}`
    /// would be judged as `ls`. Also refused: trailing characters, lone
    /// surrogates, numbers that are not finite, nesting deeper than
    /// serde_json's recursion limit (128; kept, so deep input cannot
    /// overflow the stack).
    pub fn parse_strict(text: &str) -> Result<serde_json::Value, JsonError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = Strict.deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }

    /// Parses intent JSON strictly ([`parse_strict`]) and encodes it
    /// ([`to_cbor`]).
    pub fn text_to_cbor(text: &str) -> Result<Vec<u8>, JsonError> {
        to_cbor(&parse_strict(text)?)
    }

    /// A seed that builds a `serde_json::Value` and fails on a duplicate key.
    #[derive(Clone, Copy)]
    struct Strict;

    impl<'de> DeserializeSeed<'de> for Strict {
        type Value = serde_json::Value;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Strict {
        type Value = serde_json::Value;

        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("a JSON value")
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(v.into())
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(v.into())
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(v.into())
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            serde_json::Number::from_f64(v)
                .map(serde_json::Value::Number)
                .ok_or_else(|| E::custom("a number that is not finite"))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.into())
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(v.into())
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(serde_json::Value::Null)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element_seed(Strict)? {
                out.push(v);
            }
            Ok(serde_json::Value::Array(out))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = serde_json::Map::new();
            // Keys arrive unescaped: `"comm\u0061nd"` is `command` here.
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(de::Error::custom(std::format!(
                        "duplicate key \"{}\": an object with a repeated key is ambiguous",
                        key.escape_debug()
                    )));
                }
                let value = map.next_value_seed(Strict)?;
                out.insert(key, value);
            }
            Ok(serde_json::Value::Object(out))
        }
    }

    /// The text an argument value stands for: strings as they are,
    /// booleans, and integers that fit 64 bits in their (only) decimal
    /// form. JSON integers have no leading zeros or `+`, so that form is
    /// what was written; anything else (`1e2`, `0.1`, `-0`, 2^64) is
    /// refused rather than rounded or respelled.
    fn arg_text(key: &str, value: &serde_json::Value) -> Result<String, JsonError> {
        match value {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Bool(b) => Ok(b.to_string()),
            serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Ok(u.to_string()),
                (None, Some(i)) => Ok(i.to_string()),
                (None, None) => Err(JsonError::InexactNumber(key.to_string())),
            },
            _ => Err(JsonError::ArgNotText(key.to_string())),
        }
    }

    /// Encodes a JSON intent object as a CBOR intent. The JSON must have the
    /// fields of docs/intent.md; `args` values must be strings (integers and
    /// booleans are converted to their text). The result is at most
    /// [`MAX_INTENT_BYTES`]: a larger intent is refused here, before it can
    /// reach a batch.
    pub fn to_cbor(value: &serde_json::Value) -> Result<Vec<u8>, JsonError> {
        let obj = value.as_object().ok_or(JsonError::NotAnObject)?;
        if let Some(key) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(JsonError::UnknownField(key.clone()));
        }
        let mut e = minicbor::Encoder::new(Vec::new());
        let count = KEYS.iter().filter(|k| obj.contains_key(**k)).count();
        e.map(count as u64)?;
        for key in KEYS {
            let Some(v) = obj.get(key) else { continue };
            e.str(key)?;
            match key {
                "id" => {
                    e.u64(v.as_u64().ok_or(JsonError::BadId)?)?;
                }
                "args" => {
                    let args = v.as_object().ok_or(JsonError::ArgsNotAnObject)?;
                    e.map(args.len() as u64)?;
                    for (k, v) in args {
                        e.str(k)?.str(&arg_text(k, v)?)?;
                    }
                }
                _ => {
                    e.str(v.as_str().ok_or(JsonError::NotText(key))?)?;
                }
            }
        }
        let cbor = e.into_writer();
        if cbor.len() > MAX_INTENT_BYTES {
            return Err(JsonError::TooLarge { len: cbor.len() });
        }
        Ok(cbor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(f: impl FnOnce(&mut minicbor::Encoder<&mut Vec<u8>>)) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut e = minicbor::Encoder::new(&mut buf);
        f(&mut e);
        buf
    }

    fn sample() -> Vec<u8> {
        encode(|e| {
            e.map(5).unwrap();
            e.str("id").unwrap().u64(7).unwrap();
            e.str("agent").unwrap().str("claude").unwrap();
            e.str("tool").unwrap().str("shell").unwrap();
            e.str("args").unwrap().map(1).unwrap().str("command").unwrap().str("ls -la").unwrap();
            e.str("cwd").unwrap().str("/w").unwrap();
        })
    }

    #[test]
    fn decodes_a_shell_intent() {
        let bytes = sample();
        let intent = decode(&bytes).unwrap();
        assert_eq!(intent.id, 7);
        assert_eq!(intent.tool, "shell");
        assert_eq!(intent.args.get("command"), Some("ls -la"));
        assert_eq!(intent.cwd, "/w");
        assert_eq!(intent.justification, "");
    }

    #[test]
    fn decoding_into_a_used_intent_leaves_nothing_of_the_last_one() {
        let full = encode(|e| {
            e.map(7).unwrap();
            e.str("id").unwrap().u64(9).unwrap();
            e.str("agent").unwrap().str("a").unwrap();
            e.str("session").unwrap().str("s").unwrap();
            e.str("tool").unwrap().str("http").unwrap();
            e.str("args").unwrap().map(2).unwrap();
            e.str("url").unwrap().str("https://x").unwrap().str("method").unwrap().str("POST").unwrap();
            e.str("cwd").unwrap().str("/c").unwrap();
            e.str("justification").unwrap().str("because").unwrap();
        });
        let small = sample();
        let mut intent = Intent::EMPTY;
        decode_into(&full, &mut intent).unwrap();
        assert_eq!(intent.args.len(), 2);
        decode_into(&small, &mut intent).unwrap();
        let fresh = decode(&small).unwrap();
        assert_eq!((intent.id, intent.agent, intent.session, intent.tool), (7, "claude", "", "shell"));
        assert_eq!((intent.cwd, intent.justification), (fresh.cwd, ""));
        assert_eq!(intent.args.iter().collect::<Vec<_>>(), [("command", "ls -la")]);
        assert_eq!(intent.args.get("url"), None);
    }

    #[test]
    fn limits_and_shape_are_enforced() {
        let mut bytes = sample();
        bytes.push(0);
        assert_eq!(decode(&bytes).unwrap_err(), IntentError::TrailingBytes);
        assert_eq!(decode(&sample()[..10]).unwrap_err(), IntentError::Cbor);
        assert_eq!(decode(&[0x80]).unwrap_err(), IntentError::NotAMap);
        assert_eq!(decode(&vec![0; MAX_INTENT_BYTES + 1]).unwrap_err(), IntentError::TooLarge);
        let dup = encode(|e| {
            e.map(2).unwrap();
            e.str("id").unwrap().u64(1).unwrap();
            e.str("id").unwrap().u64(2).unwrap();
        });
        assert_eq!(decode(&dup).unwrap_err(), IntentError::DuplicateKey);
        let unknown = encode(|e| {
            e.map(1).unwrap();
            e.str("idd").unwrap().u64(1).unwrap();
        });
        assert_eq!(decode(&unknown).unwrap_err(), IntentError::UnknownKey);
        let missing = encode(|e| {
            e.map(1).unwrap();
            e.str("id").unwrap().u64(1).unwrap();
        });
        assert_eq!(decode(&missing).unwrap_err(), IntentError::Missing("agent"));
        let long = "x".repeat(MAX_STRING + 1);
        let too_long = encode(|e| {
            e.map(1).unwrap();
            e.str("agent").unwrap().str(&long).unwrap();
        });
        assert_eq!(decode(&too_long).unwrap_err(), IntentError::StringTooLong);
        let indefinite = [0xBF, 0xFF];
        assert_eq!(decode(&indefinite).unwrap_err(), IntentError::IndefiniteLength);
    }

    #[test]
    fn each_wrong_string_has_its_error() {
        // { "agent": <value> } and { <key>: "a" }, by hand.
        let with_value = |value: &[u8]| [&[0xA1, 0x65][..], b"agent", value].concat();
        let with_key = |key: &[u8]| [&[0xA1][..], key, &[0x61, b'a']].concat();
        assert_eq!(decode(&with_value(&[0x7F, 0x61, b'a', 0xFF])).unwrap_err(), IntentError::IndefiniteLength);
        assert_eq!(decode(&with_value(&[0x61, 0xFF])).unwrap_err(), IntentError::Cbor, "not UTF-8");
        assert_eq!(decode(&with_value(&[0x01])).unwrap_err(), IntentError::Cbor, "a number");
        assert_eq!(decode(&with_value(&[0x62, b'a'])).unwrap_err(), IntentError::Cbor, "cut short");
        assert_eq!(decode(&with_key(&[0x7F, 0x61, b'a', 0xFF])).unwrap_err(), IntentError::IndefiniteLength);
        assert_eq!(decode(&with_key(&[0x01])).unwrap_err(), IntentError::NotAMap, "a number as key");
        assert_eq!(decode(&with_key(&[0x61, 0xFF])).unwrap_err(), IntentError::Cbor, "key not UTF-8");
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_round_trip() {
        let value = serde_json::json!({"id": 3, "agent": "a", "tool": "http",
            "args": {"url": "https://x", "method": "GET"}, "justification": "why"});
        let bytes = json::to_cbor(&value).unwrap();
        let intent = decode(&bytes).unwrap();
        assert_eq!(intent.args.get("method"), Some("GET"));
        assert_eq!(intent.justification, "why");
        assert!(json::to_cbor(&serde_json::json!({"id": 1, "bogus": 2})).is_err());
    }

    #[cfg(feature = "json")]
    #[test]
    fn strict_json_refuses_every_ambiguity_a_lenient_parser_resolves() {
        let ok = r#"{"id":1,"agent":"a","tool":"shell","args":{"command":"ls"},"cwd":"/w"}"#;
        assert_eq!(json::text_to_cbor(ok).unwrap(), json::to_cbor(&serde_json::from_str(ok).unwrap()).unwrap());
        for (text, why) in [
            (
                r#"{"tool":"shell","args":{"command":"shred -u /dev/nvme0n1","command":"ls"}}"#,
                r#"duplicate key "command""#,
            ),
            (r#"{"tool":"shell","tool":"read_file","args":{}}"#, r#"duplicate key "tool""#),
            // Compared after unescaping, in keys of every spelling.
            (r#"{"tool":"shell","args":{"command":"rm -rf /","comm\u0061nd":"ls"}}"#, r#"duplicate key "command""#),
            (
                r#"{"tool":"shell","args":{"c\u006fmmand":"rm -rf /","co\u006dmand":"ls"}}"#,
                r#"duplicate key "command""#,
            ),
            (r#"{"a":{"\ud83d\ude00":1,"😀":2}}"#, "duplicate key \"😀\""),
            // At any depth, inside arrays too.
            (r#"{"a":[{"x":1,"x":2}]}"#, r#"duplicate key "x""#),
            (r#"{"a":{"b":{"c":{"d":[[{"e":1,"e":1}]]}}}}"#, r#"duplicate key "e""#),
            (r#"{"id":1} {"id":2}"#, "trailing"),
            (r#"{"id":1"#, "EOF"),
            (r#"{"id":1e400}"#, "number out of range"),
            (r#"{"id":NaN}"#, "expected value"),
            (r#"{"id":Infinity}"#, "expected value"),
            // Lone surrogates have no UTF-8 form.
            (r#"{"tool":"shell","args":{"command":"ls\ud800"}}"#, "escape"),
            (r#"{"tool":"shell","args":{"command":"ls\ud800\u0041"}}"#, "surrogate"),
            (r#"{"tool":"shell","args":{"command":"ls\udc00"}}"#, "surrogate"),
        ] {
            let e = json::parse_strict(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
            assert!(json::text_to_cbor(text).is_err(), "{text}");
        }
        // Deep nesting is an error, not a stack overflow.
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(json::parse_strict(&deep).unwrap_err().to_string().contains("recursion"));
        let deep_objects = r#"{"a":"#.repeat(100_000) + "1" + &"}".repeat(100_000);
        assert!(json::parse_strict(&deep_objects).unwrap_err().to_string().contains("recursion"));
        // The same key in different objects is not a duplicate.
        json::parse_strict(r#"{"args":{"command":"x"},"other":{"command":"y"}}"#).unwrap();
        // Invalid UTF-8 cannot reach the parser: it takes `&str`.
    }

    #[cfg(feature = "json")]
    #[test]
    fn argument_numbers_are_converted_only_when_their_text_is_exact() {
        let arg = |n: &str| {
            let text = std::format!(r#"{{"id":1,"agent":"a","tool":"x","args":{{"n":{n}}}}}"#);
            json::text_to_cbor(&text).map(|cbor| decode(&cbor).unwrap().args.get("n").unwrap().to_string())
        };
        for n in ["0", "7", "-5", "18446744073709551615", "-9223372036854775808"] {
            assert_eq!(arg(n).unwrap(), n);
        }
        assert_eq!(arg("true").unwrap(), "true");
        // Would be rounded or respelled: 1.2345678901234568e22, 100.0, -0.0.
        for n in ["12345678901234567890123", "18446744073709551616", "-9223372036854775809", "1e2", "0.1", "1.0", "-0"]
        {
            let e = arg(n).unwrap_err();
            assert!(matches!(e, json::JsonError::InexactNumber(ref k) if k == "n"), "{n}: {e}");
        }
        for n in ["null", "[]", "{}"] {
            assert!(matches!(arg(n).unwrap_err(), json::JsonError::ArgNotText(_)), "{n}");
        }
        for id in ["-1", "1.0", "1e2", "18446744073709551616", "\"1\""] {
            let text = std::format!(r#"{{"id":{id},"agent":"a","tool":"x","args":{{}}}}"#);
            assert!(matches!(json::text_to_cbor(&text).unwrap_err(), json::JsonError::BadId), "{id}");
        }
    }

    #[cfg(feature = "json")]
    #[test]
    fn the_conversion_refuses_an_intent_over_the_guards_limit() {
        let intent =
            |len: usize| serde_json::json!({"id": 1, "agent": "a", "tool": "x", "args": {"k": "v".repeat(len)}});
        let empty = json::to_cbor(&intent(0)).unwrap().len();
        // The largest the guard takes is converted; one byte more is refused.
        let at_limit = json::to_cbor(&intent(MAX_INTENT_BYTES - empty - 2)).unwrap();
        assert_eq!(at_limit.len(), MAX_INTENT_BYTES);
        assert_eq!(decode(&at_limit).unwrap_err(), IntentError::StringTooLong, "decodes up to the string limit");
        let e = json::to_cbor(&intent(MAX_INTENT_BYTES - empty - 1)).unwrap_err();
        assert!(matches!(e, json::JsonError::TooLarge { len } if len == MAX_INTENT_BYTES + 1), "{e}");
        assert!(e.to_string().contains("16385 bytes as CBOR, over the 16384-byte limit"), "{e}");
    }
}
