//! Properties of the policy engine: the compiler's flat DFAs agree with
//! regex-automata, arbitrary bytes never panic the decoder or evaluator,
//! verdicts are deterministic, corrupted bundles are refused, and compile
//! errors name the file, line and rule.

use std::sync::OnceLock;

use proptest::prelude::*;
use regex_automata::Input;
use regex_automata::dfa::{Automaton, dense};
use vigil_guard::Decision;
use vigil_guard::bundle::{self, Bundle, BundleError, FieldClass};
use vigil_guard::compile::compile;
use vigil_guard::dfa::{self, RuleSet};
use vigil_guard::eval::evaluate;
use vigil_guard::intent::json::to_cbor;

const PATTERNS: &[&str] = &[
    r"^rm( [^ ]+)* -r( [^ ]+)* /( |$)",
    r"curl[^|]*\|[ ]*(ba)?sh",
    r"(?i)drop[ ]+table",
    r"ab+c",
    r"^x$",
    r"[0-9]{3}-[0-9]{2}",
    r"\.env$",
    r"(^|/)id_rsa",
    // Overlapping literals (`env` inside `printenv`), gated behind the
    // prefilter; an anchored one; one with no literal at all.
    r"printenv[^;]*nc",
    r"env *\|",
    r"(?i)Rm -rF",
    r"^(ls|cat)( |$)",
    r"[a-c]{2}x",
    // Multi-byte characters (zero-width space, right-to-left override,
    // left-to-right isolate): gated behind their UTF-8 encodings.
    r"(\x{200B}|\x{202E}|\x{2066})",
];

fn policy_with(patterns: &[&str]) -> String {
    let mut s = String::from("version = 1\nname = \"t\"\ndefault = \"allow\"\n[tools]\nallow = [\"shell\"]\n");
    for (i, p) in patterns.iter().enumerate() {
        s.push_str(&format!(
            "[[rules]]\nid = \"r{i}\"\nclass = \"command\"\npattern = '''{p}'''\ndecision = \"deny\"\nreason = \"t\"\n"
        ));
    }
    s
}

fn default_pack() -> Vec<u8> {
    static PACK: OnceLock<Vec<u8>> = OnceLock::new();
    PACK.get_or_init(|| {
        let source = include_str!("../../../policies/default.toml");
        compile(source, "policies/default.toml").expect("default pack compiles").bundle
    })
    .clone()
}

fn test_policy() -> &'static [u8] {
    static POLICY: OnceLock<Vec<u8>> = OnceLock::new();
    POLICY.get_or_init(|| compile(&policy_with(PATTERNS), "t.toml").unwrap().bundle)
}

/// Each of [`PATTERNS`] compiled alone: small DFAs, some of them dense.
fn single_pattern_policies() -> &'static [Vec<u8>] {
    static POLICIES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    POLICIES.get_or_init(|| PATTERNS.iter().map(|p| compile(&policy_with(&[p]), "t.toml").unwrap().bundle).collect())
}

fn reference_matches(index: usize, input: &[u8]) -> bool {
    static REFERENCE: OnceLock<Vec<dense::DFA<Vec<u32>>>> = OnceLock::new();
    let dfas = REFERENCE.get_or_init(|| {
        PATTERNS
            .iter()
            .map(|p| {
                dense::Builder::new()
                    .syntax(regex_automata::util::syntax::Config::new().unicode(false).utf8(false))
                    .thompson(regex_automata::nfa::thompson::Config::new().utf8(false))
                    .build(p)
                    .unwrap()
            })
            .collect()
    });
    dfas[index].try_search_fwd(&Input::new(input)).unwrap().is_some()
}

fn scan_all(bundle: &Bundle<'_>, input: &[u8]) -> RuleSet {
    let mut out = RuleSet::default();
    dfa::scan_class(bundle, FieldClass::Command, input, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn flat_dfa_agrees_with_regex_automata(input in proptest::collection::vec(prop_oneof![
        Just(b' '), Just(b'/'), Just(b'r'), Just(b'm'), Just(b'-'), Just(b'|'), Just(b'a'), Just(b'b'),
        Just(b'c'), Just(b'x'), Just(b'1'), Just(b'.'), Just(b'e'), Just(b'n'), Just(b'v'), Just(b'p'),
        Just(b'R'), Just(b'F'), Just(b'l'), Just(b's'), Just(b'i'), Just(b't'), Just(0xE2), Just(0x80),
        Just(0x81), Just(0x8B), Just(0xAE), Just(0xA6), any::<u8>()], 0..40)) {
        let bundle = Bundle::load(test_policy()).unwrap();
        let got = scan_all(&bundle, &input);
        for (i, p) in PATTERNS.iter().enumerate() {
            prop_assert_eq!(got.contains(i), reference_matches(i, &input), "pattern {} on {:?}", p, input);
            let alone = Bundle::load(&single_pattern_policies()[i]).unwrap();
            prop_assert_eq!(scan_all(&alone, &input).contains(0), reference_matches(i, &input), "pattern {} alone on {:?}", p, input);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_are_deterministic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let bundle_bytes = default_pack();
        let bundle = Bundle::load(&bundle_bytes).unwrap();
        let a = evaluate(&bundle, &bytes);
        let b = evaluate(&bundle, &bytes);
        prop_assert_eq!(&a, &b);
        // Almost all random bytes are malformed; whatever decodes is judged.
        if vigil_guard::intent::decode(&bytes).is_err() {
            prop_assert_eq!(a.decision, Decision::Deny);
        }
    }

    #[test]
    fn arbitrary_commands_never_panic(command in ".{0,300}", cwd in "(/[a-z]{0,5}){0,3}") {
        let bundle_bytes = default_pack();
        let bundle = Bundle::load(&bundle_bytes).unwrap();
        let intent = serde_json::json!({"id": 1, "agent": "p", "tool": "shell", "args": {"command": command}, "cwd": cwd});
        let cbor = to_cbor(&intent).unwrap();
        let a = evaluate(&bundle, &cbor);
        prop_assert_eq!(a, evaluate(&bundle, &cbor));
    }

    #[test]
    fn corrupted_bundles_are_refused_or_safe(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = default_pack();
        for (at, value) in flips {
            let i = at % bytes.len();
            bytes[i] ^= value | 1;
        }
        // Either refused, or every evaluation completes without panicking.
        if let Ok(bundle) = Bundle::load(&bytes) {
            let intent = to_cbor(&serde_json::json!({"id": 2, "agent": "p", "tool": "shell", "args": {"command": "rm -rf /"}, "cwd": "/w"})).unwrap();
            let _ = evaluate(&bundle, &intent);
        }
    }
}

#[test]
fn truncated_and_mislabelled_bundles_are_refused() {
    let bytes = default_pack();
    assert!(Bundle::load(&bytes).is_ok());
    for cut in [0, 8, 31, 32, bytes.len() / 2, bytes.len() - 1] {
        assert!(Bundle::load(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(Bundle::load(&bad).unwrap_err(), BundleError::BadMagic);
    let mut bad = bytes.clone();
    bad[8] = 9;
    assert_eq!(Bundle::load(&bad).unwrap_err(), BundleError::UnsupportedVersion(9));
    // A transition pointing past the last state.
    let compiled = compile(&policy_with(&["abc"]), "t.toml").unwrap();
    let mut bad = compiled.bundle.clone();
    let len = bad.len();
    let bundle = Bundle::load(&compiled.bundle).unwrap();
    let dfa = bundle.dfas().next().unwrap();
    let table = if dfa.sparse { dfa.nexts } else { dfa.transitions };
    let offset = table.as_ptr() as usize - compiled.bundle.as_ptr() as usize;
    bad[offset..offset + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(Bundle::load(&bad).unwrap_err(), BundleError::Digest);
    // Even with the digest recomputed, the structure is still validated.
    let digest = vigil_guard::bundle::digest(&bad);
    bad[vigil_guard::bundle::DIGEST_RANGE].copy_from_slice(&digest);
    assert_eq!(Bundle::load(&bad).unwrap_err(), BundleError::BadDfa);
    assert_eq!(bad.len(), len);
    // The header's reserved bytes after the digest must be zero, whatever
    // the digest says.
    for at in vigil_guard::bundle::DIGEST_RANGE.end..vigil_guard::bundle::HEADER_LEN {
        let mut bad = compiled.bundle.clone();
        bad[at] = 1;
        assert_eq!(Bundle::load(&bad).unwrap_err(), BundleError::Digest, "byte {at}");
        let digest = vigil_guard::bundle::digest(&bad);
        bad[vigil_guard::bundle::DIGEST_RANGE].copy_from_slice(&digest);
        assert_eq!(Bundle::load(&bad).unwrap_err(), BundleError::BadField, "byte {at}");
    }
}

#[test]
fn compile_errors_name_file_line_and_rule() {
    let source = "version = 1\nname = \"t\"\n\n[[rules]]\nid = \"broken\"\nclass = \"command\"\npattern = '(unclosed'\ndecision = \"deny\"\nreason = \"x\"\n";
    let err = compile(source, "my.toml").unwrap_err();
    assert_eq!(err.file, "my.toml");
    assert_eq!(err.line, Some(4));
    assert_eq!(err.rule.as_deref(), Some("broken"));
    assert!(err.to_string().starts_with("my.toml:4: rule `broken`: pattern `(unclosed`"), "{err}");

    let err = compile("version = 1\nname = \"t\"\nbogus = 3\n", "p.toml").unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
    let err = compile("version = 1\nname = \"t\"\n[[rules]]\nid = \"a\"\nclass = \"nope\"\npattern = 'x'\ndecision = \"deny\"\nreason = \"r\"\n", "p.toml").unwrap_err();
    assert!(err.to_string().contains("class `nope`"), "{err}");
    let err = compile("version = 2\nname = \"t\"\n", "p.toml").unwrap_err();
    assert!(err.to_string().contains("version 2"), "{err}");
    let dup = format!(
        "{}{}",
        policy_with(&["a"]),
        "[[rules]]\nid = \"r0\"\nclass = \"command\"\npattern = 'b'\ndecision = \"deny\"\nreason = \"t\"\n"
    );
    assert!(compile(&dup, "p.toml").unwrap_err().to_string().contains("used twice"));
}

#[test]
fn oversized_pattern_is_named() {
    let policy = policy_with(&[r"[a-z]{0,60}x[a-z]{60}y"]);
    let err = vigil_guard::compile::compile_with_budget(&policy, "big.toml", 64 * 1024).unwrap_err();
    assert!(err.to_string().contains("r0") && err.to_string().contains("pattern"), "{err}");
}

#[test]
fn large_rule_sets_split_into_several_dfas() {
    let patterns: Vec<String> = (0..300).map(|i| format!("tool{i}[a-z]*x{i}")).collect();
    let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
    let compiled = vigil_guard::compile::compile_with_budget(&policy_with(&refs), "many.toml", 256 * 1024).unwrap();
    assert!(compiled.dfas.len() > 1, "expected a split, got {} DFA", compiled.dfas.len());
    let bundle = Bundle::load(&compiled.bundle).unwrap();
    let got = scan_all(&bundle, b"run tool123abcx123 now");
    assert!(got.contains(123) && !got.contains(12));
}

/// A class whose literals do not fit one prefilter runs its DFAs ungated
/// (sparse ones too): the bundle loads and nothing is lost.
#[test]
fn too_many_literals_for_a_prefilter_run_ungated() {
    let patterns: Vec<String> = (0..400).map(|i| format!("w{i:03}q[a-z]*z")).collect();
    let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
    let compiled = vigil_guard::compile::compile_with_budget(&policy_with(&refs), "many.toml", 64 * 1024).unwrap();
    assert!(compiled.dfas.iter().all(|d| d.start == "floating"), "{:?}", compiled.dfas);
    assert!(compiled.dfas.iter().any(|d| d.sparse), "a sparse DFA among them");
    let bundle = Bundle::load(&compiled.bundle).unwrap();
    let got = scan_all(&bundle, b"run w123qabcz now");
    assert!(got.contains(123) && !got.contains(12) && got.iter().count() == 1);
}

/// The property test above runs every kind of DFA: anchored and
/// floating, gated with their prefilter, sparse and dense tables.
#[test]
fn the_compiler_numbers_the_dead_state_right_after_the_matching_ones() {
    let bytes = default_pack();
    let bundle = Bundle::load(&bytes).unwrap();
    let mut dead = 0;
    for dfa in (0..bundle::MAX_DFAS).filter_map(|i| bundle.dfa(i)) {
        if let Some(d) = dfa.dead {
            assert_eq!(d, dfa.match_states, "{:?} DFA with {} states", dfa.class, dfa.states);
            dead += 1;
        }
    }
    assert!(dead > 10, "only {dead} DFAs with a dead state");
}

#[test]
fn the_property_policy_holds_every_kind_of_dfa() {
    let compiled = compile(&policy_with(PATTERNS), "t.toml").unwrap();
    let kinds: Vec<&str> = compiled.dfas.iter().map(|d| d.start).collect();
    for kind in ["gated", "prefilter", "anchored", "floating", "anchored+gated", "anchored prefilter"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // With the single-pattern bundles: both encodings, and template rows.
    let mut dfas = compiled.dfas.clone();
    for p in PATTERNS {
        dfas.extend(compile(&policy_with(&[p]), "t.toml").unwrap().dfas);
    }
    assert!(dfas.iter().any(|d| d.sparse) && dfas.iter().any(|d| !d.sparse), "both encodings");
    assert!(dfas.iter().any(|d| d.templates > 1), "several template rows");
    assert!(dfas.iter().any(|d| d.sparse && d.templates == 0), "sparse without templates");
}

/// The digest computed in steps (as the guard does between requests) is
/// the digest; a wrong one is refused.
#[test]
fn a_digest_in_steps_is_the_digest() {
    use vigil_guard::bundle::{Digester, digest};
    let bytes = test_policy();
    // As docs/bundle.md defines it: SHA-256 of the bundle with bytes 32..64
    // read as zeros.
    let mut zeroed = bytes.to_vec();
    zeroed[32..64].fill(0);
    assert_eq!(digest(bytes), <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(&zeroed)));
    assert_eq!(bytes[32..64], digest(bytes));
    for step in [1, 7, 31, 32, 33, 48, 63, 64, 65, 79, 80, 81, 4096, usize::MAX] {
        let mut d = Digester::new();
        let mut rounds = 0;
        while !d.advance(bytes, step) {
            rounds += 1;
            assert!(rounds <= bytes.len(), "step {step} never finishes");
        }
        let got = d.finish();
        assert_eq!(got, digest(bytes), "step {step}");
        assert!(Bundle::load_digested(bytes, got).is_ok());
    }
    let mut wrong = digest(bytes);
    wrong[0] ^= 1;
    assert_eq!(Bundle::load_digested(bytes, wrong).err(), Some(BundleError::Digest));
}

#[test]
fn every_single_bit_flip_of_a_bundle_is_refused() {
    // Exhaustively, on a small bundle.
    // Every kind of DFA: gated ones and their prefilters (anchored too),
    // anchored, floating.
    let compiled =
        compile(&policy_with(&["abc", "rm -rf", "curl[^|]*\\| *sh", "^ls( |$)", "^\\$[a-z]", "[0-9]{3}"]), "t.toml")
            .unwrap();
    let kinds: Vec<&str> = compiled.dfas.iter().map(|d| d.start).collect();
    for kind in ["gated", "prefilter", "anchored", "floating", "anchored+gated", "anchored prefilter"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert!(compiled.dfas.iter().any(|d| d.sparse) && compiled.dfas.iter().any(|d| !d.sparse), "both encodings");
    let bytes = compiled.bundle;
    assert!(Bundle::load(&bytes).is_ok());
    for bit in 0..bytes.len() * 8 {
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(Bundle::load(&bad).is_err(), "bit {bit} of {}", bytes.len() * 8);
    }
}

#[test]
fn flips_in_the_default_pack_are_refused_where_they_once_let_attacks_through() {
    let bytes = default_pack();
    assert!(Bundle::load(&bytes).is_ok());
    // Every bit of the header and of the settings section (the tripwire
    // settings, where one flip once let 33 dangerous corpus cases through),
    // every 7th bit of the section table, every 61st of the other sections
    // (lists, path rules, rules), and a stride through the DFA tables —
    // each load hashes the whole 2 MB bundle.
    use vigil_guard::bundle::{HEADER_LEN, section};
    let count = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    let mut ranges = vec![(0..HEADER_LEN, 1), (HEADER_LEN..HEADER_LEN + count * 16, 7)];
    for i in 0..count {
        let entry = HEADER_LEN + i * 16;
        let kind = u32::from_le_bytes(bytes[entry..entry + 4].try_into().unwrap());
        let offset = u32::from_le_bytes(bytes[entry + 4..entry + 8].try_into().unwrap()) as usize;
        let len = u32::from_le_bytes(bytes[entry + 8..entry + 12].try_into().unwrap()) as usize;
        match kind {
            section::SETTINGS => ranges.push((offset..offset + len, 1)),
            section::DFA => {}
            _ => ranges.push((offset..offset + len, 61)),
        }
    }
    ranges.push((0..bytes.len(), 99_991));
    let mut tried = 0;
    for (range, step) in ranges {
        for bit in (range.start * 8..range.end * 8).step_by(step) {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Bundle::load(&bad).is_err(), "bit {bit}");
            tried += 1;
        }
    }
    assert!(tried > 1000, "{tried}");
}

/// Every DFA of `class` run on `input`, gated or not: what the class
/// matches with no prefilter at all.
fn scan_ungated(bundle: &Bundle<'_>, class: FieldClass, input: &[u8]) -> RuleSet {
    let mut out = RuleSet::default();
    for d in bundle.dfas().filter(|d| d.class == class && !d.prefilter) {
        dfa::scan(d, input, &mut out);
    }
    out
}

/// Texts from the corpus (commands, paths, URLs, code) to mutate.
fn corpus_texts() -> &'static [String] {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    TEXTS.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus");
        let mut texts = Vec::new();
        for entry in std::fs::read_dir(dir).expect("tests/corpus") {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let case: serde_json::Value = serde_json::from_str(line).unwrap();
                if let Some(args) = case["intent"]["args"].as_object() {
                    texts.extend(args.values().filter_map(|v| v.as_str()).map(str::to_string));
                }
            }
        }
        texts
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// In the default pack, the prefilter never hides a match: for every
    /// field class, running the class (prefilter, then the DFAs it names)
    /// finds exactly what running every DFA finds — on corpus texts with
    /// bytes changed, inserted, removed and their case flipped.
    #[test]
    fn the_prefilter_never_hides_a_match_in_the_default_pack(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 0..6),
    ) {
        let bytes = default_pack();
        let bundle = Bundle::load(&bytes).unwrap();
        let texts = corpus_texts();
        let mut input = texts[pick.index(texts.len())].clone().into_bytes();
        for (at, kind, byte) in edits {
            let i = if input.is_empty() { 0 } else { at.index(input.len()) };
            match kind {
                0 if !input.is_empty() => input[i] = byte,
                1 => input.insert(i, byte),
                2 if !input.is_empty() => { input.remove(i); }
                _ if !input.is_empty() => input[i] = input[i].to_ascii_uppercase(),
                _ => {}
            }
        }
        for class in FieldClass::ALL {
            let mut gated = RuleSet::default();
            dfa::scan_class(&bundle, class, &input, &mut gated);
            prop_assert_eq!(gated, scan_ungated(&bundle, class, &input), "class {:?} on {:?}", class, String::from_utf8_lossy(&input));
        }
    }
}

/// The DFA sections of `bytes`: (offset, length).
fn dfa_sections(bytes: &[u8]) -> Vec<(usize, usize)> {
    use vigil_guard::bundle::{HEADER_LEN, section};
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    (0..u32_at(16))
        .map(|i| HEADER_LEN + i * 16)
        .filter(|&entry| u32_at(entry) == section::DFA as usize)
        .map(|entry| (u32_at(entry + 4), u32_at(entry + 8)))
        .collect()
}

/// Structural lies in a bundle whose digest was made again to match (what
/// a forger who can recompute the digest, but not the signature, would
/// try): a dead state that is not dead, a sparse row outside its comb, a
/// prefilter that names an ungated DFA, a gated DFA without its flag.
#[test]
fn rehashed_structural_lies_are_refused() {
    use vigil_guard::bundle::{
        DFA_ANCHORED, DFA_GATED, DFA_HEADER_LEN, DFA_PREFILTER, DFA_SPARSE, DIGEST_RANGE, digest,
    };
    let compiled =
        compile(&policy_with(&["abc", "rm -rf", "curl[^|]*\\| *sh", "^ls( |$)", "[0-9]{3}"]), "t.toml").unwrap();
    let bytes = compiled.bundle;
    let rehash = |mut b: Vec<u8>| {
        let d = digest(&b);
        b[DIGEST_RANGE].copy_from_slice(&d);
        b
    };
    assert!(Bundle::load(&rehash(bytes.clone())).is_ok(), "re-hashing alone changes nothing");
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let mut tried = [false; 7];
    for (offset, _) in dfa_sections(&bytes) {
        let flags = bytes[offset + 1];
        let dead = u32_at(&bytes, offset + 24);
        if flags & DFA_ANCHORED != 0 && dead != u32::MAX && dead != 0 {
            // The start state claimed dead.
            let mut b = bytes.clone();
            b[offset + 24..offset + 28].copy_from_slice(&0u32.to_le_bytes());
            assert_eq!(Bundle::load(&rehash(b)).err(), Some(BundleError::BadDfa), "false dead state");
            tried[0] = true;
        }
        if flags & DFA_SPARSE != 0 {
            let states = u32_at(&bytes, offset + 4) as usize;
            let width = bytes[offset + 2] as usize;
            let templates = u32_at(&bytes, offset + 36) as usize;
            let defaults = offset + DFA_HEADER_LEN + 256;
            let bases = defaults + states * width;
            // A row starting past the end of the comb.
            let mut b = bytes.clone();
            b[bases..bases + width].fill(0xFF);
            assert_eq!(Bundle::load(&rehash(b)).err(), Some(BundleError::BadDfa), "base outside the comb");
            // A default naming a template row that does not exist.
            let mut b = bytes.clone();
            b[defaults..defaults + width].copy_from_slice(&((states + templates) as u32).to_le_bytes()[..width]);
            assert_eq!(Bundle::load(&rehash(b)).err(), Some(BundleError::BadDfa), "default past the templates");
            tried[1] = true;
        }
        {
            // More matching states than states.
            let mut b = bytes.clone();
            let states = u32_at(&bytes, offset + 4);
            b[offset + 32..offset + 36].copy_from_slice(&(states + 1).to_le_bytes());
            assert_eq!(Bundle::load(&rehash(b)).err(), Some(BundleError::BadDfa), "more matching states than states");
            tried[4] = true;
        }
        if flags & DFA_GATED != 0 {
            // Ungated, while the prefilter still names it.
            let mut b = bytes.clone();
            b[offset + 1] &= !DFA_GATED;
            assert_eq!(Bundle::load(&rehash(b)).err(), Some(BundleError::BadDfa), "prefilter names an ungated DFA");
            tried[2] = true;
        }
        if flags & DFA_PREFILTER != 0 {
            // A prefilter that is also gated.
            let mut b = bytes.clone();
            b[offset + 1] |= DFA_GATED;
            assert_eq!(Bundle::load(&rehash(b)).err(), Some(BundleError::BadDfa), "gated prefilter");
            // The other kind of prefilter: it names DFAs not of its kind
            // (or the class now has two of one kind).
            let mut b = bytes.clone();
            b[offset + 1] ^= DFA_ANCHORED;
            assert_eq!(Bundle::load(&rehash(b)).err(), Some(BundleError::BadDfa), "prefilter of the other kind");
            tried[3] = true;
            tried[5 + usize::from(flags & DFA_ANCHORED != 0)] = true;
        }
    }
    assert_eq!(tried, [true; 7], "every kind of lie was tried");
}

/// Every path rule `path` hits, by checking each (what the judge did
/// before path rules were sorted and searched).
fn path_rules_hit_linearly(bundle: &Bundle<'_>, path: &str, tree: bool) -> Vec<u32> {
    let mut hits: Vec<u32> = bundle
        .path_rules()
        .filter(|r| {
            vigil_guard::path::is_within(path, r.prefix)
                || tree && vigil_guard::path::is_within(r.prefix, path) && path != "/"
        })
        .map(|r| r.rule)
        .collect();
    hits.sort();
    hits
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    /// The binary search over sorted path rules finds exactly the rules a
    /// linear check finds: on the default pack's own prefixes, their
    /// parents and children, with bytes changed, and on odd spellings.
    #[test]
    fn sorted_path_rules_find_what_checking_each_finds(
        pick in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        suffix in prop_oneof![Just(String::new()), "/[a-z._]{0,6}", "[a-z]{1,3}", Just("/".to_string()), Just("//x".to_string())],
        odd in prop_oneof![Just(None), Just(Some("/")), Just(Some("//")), Just(Some("~")), Just(Some("")), Just(Some("~/")), Just(Some("/etc"))],
        tree in any::<bool>(),
    ) {
        let bytes = default_pack();
        let bundle = Bundle::load(&bytes).unwrap();
        let prefixes: Vec<&str> = bundle.path_rules().map(|r| r.prefix).collect();
        let base = prefixes[pick.index(prefixes.len())];
        let path = match odd {
            Some(p) => p.to_string(),
            None => {
                // A parent (cut at a byte), or the prefix with more after it.
                let at = cut.index(base.len() + 1);
                if base.is_char_boundary(at) && at < base.len() { base[..at].to_string() } else { format!("{base}{suffix}") }
            }
        };
        let mut found = Vec::new();
        bundle.path_rules_hit(&path, tree, &mut |r| found.push(r.rule));
        found.sort();
        found.dedup();
        prop_assert_eq!(found, path_rules_hit_linearly(&bundle, &path, tree), "path {:?} tree {}", path, tree);
    }
}

/// Path rules out of order are refused (the judge's search depends on it).
#[test]
fn unsorted_path_rules_are_refused() {
    use vigil_guard::bundle::{DIGEST_RANGE, HEADER_LEN, PATH_RULE_ENTRY_LEN, digest, section};
    let bytes = default_pack();
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let entry =
        (0..u32_at(16)).map(|i| HEADER_LEN + i * 16).find(|&e| u32_at(e) == section::PATH_RULES as usize).unwrap();
    let offset = u32_at(entry + 4);
    assert!(u32_at(offset) > 2);
    // Swap the first two entries (different keys in the default pack).
    let mut b = bytes.clone();
    let (first, second) = (offset + 4, offset + 4 + PATH_RULE_ENTRY_LEN);
    let a: Vec<u8> = b[first..second].to_vec();
    let c: Vec<u8> = b[second..second + PATH_RULE_ENTRY_LEN].to_vec();
    b[first..second].copy_from_slice(&c);
    b[second..second + PATH_RULE_ENTRY_LEN].copy_from_slice(&a);
    let d = digest(&b);
    b[DIGEST_RANGE].copy_from_slice(&d);
    assert_eq!(Bundle::load(&b).err(), Some(BundleError::BadField));
}

/// Sparse rows may run past the end of their comb (format 8: the comb ends
/// after its last used slot, and a slot past it is nobody's): the bundles
/// the property tests above judge have such rows, so that path is what
/// they check against `regex-automata`; and the default pack is smaller
/// for it than with every row's window inside.
#[test]
fn sparse_rows_run_past_the_comb_end_in_the_tested_bundles() {
    let runs_past = |bytes: &[u8]| {
        let bundle = Bundle::load(bytes).unwrap();
        bundle.dfas().filter(|d| d.sparse).any(|d| {
            let w = usize::from(d.width);
            let comb = d.checks.len() / w;
            d.bases.chunks_exact(w).any(|b| {
                let base = if w == 2 {
                    usize::from(u16::from_le_bytes([b[0], b[1]]))
                } else {
                    u32::from_le_bytes(b.try_into().unwrap()) as usize
                };
                base + d.alphabet as usize > comb
            })
        })
    };
    assert!(runs_past(test_policy()), "the property-tested bundle has no row past its comb's end");
    assert!(runs_past(&default_pack()));
}

/// The default pack's tables fit the on-chip block RAM the FPGA judge is
/// planned for (an ECP5-85K has ≈ 468 KB; the budget is 384 KiB).
#[test]
fn the_default_pack_fits_the_block_ram_budget() {
    let bytes = default_pack();
    assert!(bytes.len() <= 384 * 1024, "default pack is {} bytes, over the 384 KiB budget", bytes.len());
}

/// Compiling is a function of the source: the compiler builds parts of a
/// split on other threads, and the bundle must not depend on which
/// finishes first (compiled again here while other tests run).
#[test]
fn the_default_pack_compiles_to_the_same_bytes_every_time() {
    let source = include_str!("../../../policies/default.toml");
    let again: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let runs: Vec<_> =
            (0..2).map(|_| scope.spawn(|| compile(source, "policies/default.toml").unwrap().bundle)).collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for bytes in again {
        assert!(bytes == default_pack(), "a second compile of the default pack gave other bytes");
    }
}

/// What the evaluator reads of a rule without its texts (decision, class,
/// access, weight) is what the policy wrote, for pattern and path rules of
/// every decision; past the last rule there is none. The rules are found
/// by id (the compiler orders them its own way).
#[test]
fn a_rules_effect_is_what_the_policy_wrote() {
    use vigil_guard::bundle::access;
    let source = r#"version = 1
name = "t"
default = "allow"
[tools]
allow = ["shell"]
[[tripwire.paths]]
id = "p.write"
prefix = "/var/log"
decision = "deny"
access = "write"
reason = "t"
[[tripwire.paths]]
id = "p.any"
prefix = "~/.ssh"
decision = "escalate"
reason = "t"
[[rules]]
id = "r.deny"
class = "command"
pattern = '^rm '
decision = "deny"
reason = "t"
[[rules]]
id = "r.escalate"
class = "arg"
pattern = 'secret'
decision = "escalate"
weight = 7
reason = "t"
[[rules]]
id = "r.score"
class = "text"
pattern = 'urgent'
decision = "score"
weight = 5
reason = "t"
"#;
    let bytes = compile(source, "t.toml").unwrap().bundle;
    let bundle = Bundle::load(&bytes).unwrap();
    let expected = [
        ("p.write", Some(Decision::Deny), FieldClass::Path, access::WRITE, 0),
        ("p.any", Some(Decision::Escalate), FieldClass::Path, access::ANY, 0),
        ("r.deny", Some(Decision::Deny), FieldClass::Command, 0, 0),
        ("r.escalate", Some(Decision::Escalate), FieldClass::Arg, 0, 7),
        ("r.score", None, FieldClass::Text, 0, 5),
    ];
    assert_eq!(bundle.rule_count(), expected.len());
    for index in 0..bundle.rule_count() {
        let id = bundle.rule(index).unwrap().id;
        let (_, decision, class, rule_access, weight) =
            *expected.iter().find(|e| e.0 == id).unwrap_or_else(|| panic!("unexpected rule {id}"));
        let effect = bundle.rule_effect(index).unwrap();
        assert_eq!(
            (effect.decision, effect.class, effect.access, effect.weight),
            (decision, class, rule_access, weight),
            "{id}"
        );
    }
    assert!(bundle.rule_effect(bundle.rule_count()).is_none());
}

/// A policy that needs more DFAs than a bundle holds when patterns are
/// grouped tightly is grouped more loosely, not refused: the default pack
/// with a thousand more command rules compiles and loads.
#[test]
fn many_more_rules_are_grouped_loosely_enough_to_fit() {
    let mut source = include_str!("../../../policies/default.toml").to_string();
    for i in 0..1000 {
        source.push_str(&format!(
            "\n[[rules]]\nid = \"extra.r{i}\"\nclass = \"command\"\npattern = '^tool{i}( [^ ]+)* --flag-{i}( |$)'\ndecision = \"escalate\"\nreason = \"extra rule {i}\"\n"
        ));
    }
    let compiled = compile(&source, "extra.toml").expect("a thousand more rules compile");
    assert!(compiled.dfas.len() <= vigil_guard::bundle::MAX_DFAS);
    let bundle = Bundle::load(&compiled.bundle).unwrap();
    let intent = to_cbor(
        &serde_json::json!({"id": 1, "agent": "a", "tool": "shell", "args": {"command": "tool999 x --flag-999"}}),
    )
    .unwrap();
    let verdict = evaluate(&bundle, &intent);
    let matched: Vec<&str> = verdict.rules.iter().filter_map(|i| bundle.rule(i)).map(|r| r.id).collect();
    assert!(matched.contains(&"extra.r999") && !matched.contains(&"extra.r998"), "{matched:?}");
}

/// The default pack loaded with dense copies of its sparse DFAs: all of
/// them, or as many as the default arena holds (made once per test binary).
fn densified_default_pack(all: bool) -> &'static (Bundle<'static>, usize) {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    static ALL: OnceLock<(Bundle<'static>, usize)> = OnceLock::new();
    static SOME: OnceLock<(Bundle<'static>, usize)> = OnceLock::new();
    let bytes = BYTES.get_or_init(default_pack);
    let make = |len: usize| {
        let arena: &'static mut [u8] = Box::leak(vec![0u8; len].into_boxed_slice());
        let mut bundle = Bundle::load(bytes).unwrap();
        let used = bundle.densify(arena);
        (bundle, used)
    };
    if all {
        let sparse = Bundle::load(bytes).unwrap();
        let total = sparse.dfas().map(vigil_guard::dense::dense_len).sum();
        ALL.get_or_init(|| make(total))
    } else {
        SOME.get_or_init(|| make(vigil_guard::dense::DEFAULT_ARENA_LEN))
    }
}

/// Every corpus intent gets the same verdict, field for field, from the
/// default pack as loaded and with dense copies of its tables — all of them,
/// or as many as the default arena holds.
#[test]
fn dense_copies_change_no_corpus_verdict() {
    let bytes = default_pack();
    let sparse = Bundle::load(&bytes).unwrap();
    let (all, all_used) = densified_default_pack(true);
    let (some, some_used) = densified_default_pack(false);
    assert!(
        some_used < all_used && *some_used > 0,
        "the default arena holds some of the copies ({some_used} of {all_used} bytes)"
    );
    assert!(
        sparse.dfas().zip(all.dfas()).all(|(s, d)| !d.sparse || vigil_guard::dense::dense_len(s) == 0),
        "every DFA that can have a dense copy has one"
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus");
    let mut judged = 0;
    for entry in std::fs::read_dir(dir).expect("tests/corpus") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines().filter(|l| !l.trim().is_empty()) {
            let case: serde_json::Value = serde_json::from_str(line).unwrap();
            let Ok(cbor) = to_cbor(&case["intent"]) else { continue };
            let expected = evaluate(&sparse, &cbor);
            assert_eq!(evaluate(all, &cbor), expected, "{line}");
            assert_eq!(evaluate(some, &cbor), expected, "{line}");
            judged += 1;
        }
    }
    assert!(judged > 1000, "only {judged} corpus intents");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Dense copies match what the sparse tables match, class by class, on
    /// corpus texts with bytes changed and on arbitrary bytes.
    #[test]
    fn dense_copies_match_what_the_sparse_tables_match(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let bytes = default_pack();
        let sparse = Bundle::load(&bytes).unwrap();
        let (dense, _) = densified_default_pack(true);
        let texts = corpus_texts();
        let mut text = texts[pick.index(texts.len())].clone().into_bytes();
        for (at, byte) in edits {
            if !text.is_empty() {
                let i = at.index(text.len());
                text[i] = byte;
            }
        }
        for input in [&text, &noise] {
            for class in FieldClass::ALL {
                let (mut want, mut got) = (RuleSet::default(), RuleSet::default());
                dfa::scan_class(&sparse, class, input, &mut want);
                dfa::scan_class(dense, class, input, &mut got);
                prop_assert_eq!(got, want, "class {:?} on {:?}", class, String::from_utf8_lossy(input));
            }
        }
    }
}
