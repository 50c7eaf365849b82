//! Progress bars for long work: shown on a terminal's stderr, hidden
//! otherwise (so pipes, CI logs and `--json` output stay clean).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar labelled `label` over `total` steps.
pub fn bar(label: &'static str, total: usize) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() { ProgressBar::new(total as u64) } else { ProgressBar::hidden() };
    if let Ok(style) = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label);
    bar
}
