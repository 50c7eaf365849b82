//! Text that comes from inside the guest — console lines, panic messages,
//! symbol names of a custom image — is shown on terminals and written to
//! logs. The guest chooses those bytes, so before anything shows them they
//! are made inert: invalid UTF-8 becomes U+FFFD, and every control or
//! invisible formatting character (C0 and C1 controls, DEL, bidirectional
//! overrides and isolates, zero-width characters, the BOM) is written as an
//! escape (`\x1b`, `\u{202e}`), as is the backslash itself, so an escaped
//! line is unambiguous and cannot move the cursor, recolour the terminal,
//! rewrite earlier output or reorder what a reader sees.

/// Whether `c` must not reach a terminal as itself.
fn hazardous(c: char) -> bool {
    c.is_control() // C0, DEL, C1
        || matches!(c,
            '\u{061C}' // Arabic letter mark
            | '\u{200B}'..='\u{200F}' // zero-width and directional marks
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
            | '\u{2060}'..='\u{2069}' // word joiner, invisible operators, isolates
            | '\u{FEFF}' // byte order mark
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotations
        )
}

/// Guest bytes as displayable, inert text (see the module docs).
pub fn escape(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x80 && hazardous(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if hazardous(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_control_and_reordering_characters_come_out_escaped() {
        let hostile = "ok\x1b[2J\x1b]0;pwned\x07\rDENY\u{8}\u{9b}31m \u{202e}gnp.exe\u{2066}x\u{200b}\\n";
        let shown = escape(hostile.as_bytes());
        assert_eq!(
            shown,
            "ok\\x1b[2J\\x1b]0;pwned\\x07\\x0dDENY\\x08\\u{9b}31m \\u{202e}gnp.exe\\u{2066}x\\u{200b}\\\\n"
        );
        assert!(shown.chars().all(|c| !hazardous(c)));
        assert_eq!(escape(b"plain text, caf\xc3\xa9"), "plain text, café");
        assert_eq!(escape(b"bad \xff utf-8"), "bad \u{fffd} utf-8");
        // Every byte value and a sample of code points: nothing hazardous
        // survives.
        let all: Vec<u8> = (0..=255).collect();
        assert!(escape(&all).chars().all(|c| !hazardous(c)));
        for cp in (0..0x11_0000).step_by(7).filter_map(char::from_u32) {
            let mut buf = [0u8; 4];
            assert!(escape(cp.encode_utf8(&mut buf).as_bytes()).chars().all(|c| !hazardous(c)), "{cp:?}");
        }
    }
}
