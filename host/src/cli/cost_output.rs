//! How `vigil cost` shows what it found: tables, CSV, and a self-contained
//! SVG bar chart (no scripts, no external resources).

use std::fmt::Write as _;

use vigil::cost_audit::{Group, VerifyReport};

/// The counters every view shows, in order.
const COLUMNS: [&str; 6] = ["wall_ns", "cpu_ns", "guard_ticks", "cycles", "instructions", "vm_exits"];

/// Prints a verify report.
pub fn print_verify(report: &VerifyReport) {
    println!(
        "cost statements {} (both signatures verified), cost records {}, verdicts {}{}",
        report.statements,
        report.records,
        report.verdicts,
        if report.contents_checked { "" } else { " (signatures only: contents not checked)" }
    );
    for (seq, flags) in &report.flagged {
        for flag in flags {
            println!("  flagged  record {seq}: {flag}");
        }
    }
    for problem in &report.problems {
        println!("  FAIL     {problem}");
    }
    println!("{}", if report.ok() { "costs verify" } else { "costs do NOT verify" });
}

fn value(g: &Group, name: &str) -> String {
    g.counters.get(name).map_or_else(|| "-".into(), u64::to_string)
}

/// Prints groups as a table.
pub fn print_table(groups: &[Group]) {
    print!("{:<32} {:>9} {:>8}", "key", "verdicts", "flagged");
    for c in COLUMNS {
        print!(" {c:>14}");
    }
    println!(" {:>12}", "price");
    for g in groups {
        print!("{:<32} {:>9} {:>8}", vigil::vmm::guest_text::escape(g.key.as_bytes()), g.verdicts, g.flagged);
        for c in COLUMNS {
            print!(" {:>14}", value(g, c));
        }
        println!(" {:>12}", g.price.map_or_else(|| "-".into(), |p| format!("{p:.6}")));
    }
}

/// Groups as CSV (RFC 4180 quoting).
pub fn csv(groups: &[Group]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = format!("key,verdicts,flagged,{},price\n", COLUMNS.join(","));
    for g in groups {
        let _ = write!(out, "{},{},{}", quote(&g.key), g.verdicts, g.flagged);
        for c in COLUMNS {
            let _ = write!(out, ",{}", g.counters.get(c).map_or_else(String::new, u64::to_string));
        }
        let _ = writeln!(out, ",{}", g.price.map_or_else(String::new, |p| format!("{p}")));
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            '"' => "&quot;".into(),
            '\'' => "&apos;".into(),
            c if c.is_control() => "\u{fffd}".into(),
            c => c.to_string(),
        })
        .collect()
}

/// A horizontal bar chart of each group's wall time (or price, when
/// priced): one self-contained SVG document.
pub fn svg(groups: &[Group]) -> String {
    let priced = groups.iter().any(|g| g.price.is_some());
    let metric =
        |g: &Group| if priced { g.price.unwrap_or(0.0) } else { *g.counters.get("wall_ns").unwrap_or(&0) as f64 };
    let max = groups.iter().map(metric).fold(0.0_f64, f64::max).max(f64::MIN_POSITIVE);
    let (row, left, width) = (24, 260, 420);
    let height = 40 + row * groups.len().max(1);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n",
        left + width + 160
    );
    let title = if priced { "cost (price)" } else { "wall time (ns)" };
    let _ = writeln!(out, "<text x=\"10\" y=\"20\" font-weight=\"bold\">vigil cost report: {title}</text>");
    for (i, g) in groups.iter().enumerate() {
        let y = 32 + i * row;
        let w = (metric(g) / max * width as f64).round() as usize;
        let _ = writeln!(out, "<text x=\"10\" y=\"{}\">{}</text>", y + 14, xml_escape(&g.key));
        let _ = writeln!(out, "<rect x=\"{left}\" y=\"{y}\" width=\"{w}\" height=\"18\" fill=\"#4a7ab5\"/>");
        let label = if priced { format!("{:.6}", metric(g)) } else { format!("{}", metric(g) as u64) };
        let _ = writeln!(out, "<text x=\"{}\" y=\"{}\">{label} ({} verdicts)</text>", left + w + 6, y + 14, g.verdicts);
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_keys_are_escaped_in_svg_and_csv() {
        let g = Group { key: "<script>\"x\",".into(), verdicts: 2, ..Group::default() };
        let svg = svg(std::slice::from_ref(&g));
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        assert!(csv(&[g]).contains("\"<script>\"\"x\"\",\""));
    }
}
