//! The guest's serial console: bytes become lines (escaped: the guest
//! chooses them, see [`super::guest_text`]), lines go to `tracing` and into
//! a bounded ring kept for diagnostics.

use std::collections::VecDeque;

/// Longest line kept; longer lines are cut (and marked).
pub const MAX_LINE: usize = 1024;
/// Lines kept.
pub const MAX_LINES: usize = 256;

/// Console output of one guest.
#[derive(Default, Debug)]
pub struct ConsoleLog {
    partial: Vec<u8>,
    lines: VecDeque<String>,
}

impl ConsoleLog {
    /// Appends bytes written by the guest.
    pub fn push(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            match byte {
                b'\n' => self.end_line(),
                b'\r' => {}
                _ if self.partial.len() < MAX_LINE => self.partial.push(byte),
                _ => {}
            }
        }
    }

    fn end_line(&mut self) {
        let mut line = super::guest_text::escape(&self.partial);
        if self.partial.len() >= MAX_LINE {
            line.push_str(" [cut]");
        }
        self.partial.clear();
        tracing::info!(target: "vigil::guest", "{line}");
        if self.lines.len() == MAX_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// Completed lines (oldest first) and the unfinished one, if any.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.lines.iter().cloned().collect();
        if !self.partial.is_empty() {
            lines.push(super::guest_text::escape(&self.partial));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_assembled_bounded_and_cut() {
        let mut log = ConsoleLog::default();
        log.push(b"hel");
        log.push(b"lo\r\nwor");
        assert_eq!(log.lines(), ["hello", "wor"]);
        log.push(&vec![b'x'; MAX_LINE * 3]);
        log.push(b"\n");
        assert!(log.lines()[1].ends_with(" [cut]"));
        for _ in 0..MAX_LINES * 2 {
            log.push(b"y\n");
        }
        assert_eq!(log.lines().len(), MAX_LINES);
        let mut log = ConsoleLog::default();
        log.push(b"\x1b[31mfake\x1b[0m \xe2\x80\xae\n");
        assert_eq!(log.lines(), ["\\x1b[31mfake\\x1b[0m \\u{202e}"]);
    }
}
