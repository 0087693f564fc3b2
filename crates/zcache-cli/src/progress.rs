//! Progress bars on stderr (indicatif), drawn only when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Hands out progress bars, visible only when stderr is a terminal.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    visible: bool,
}

impl Progress {
    /// Bars drawn on stderr when it is a terminal, hidden otherwise.
    pub fn for_stderr() -> Progress {
        Progress {
            visible: std::io::stderr().is_terminal(),
        }
    }

    /// Bars that are never drawn.
    #[cfg(test)]
    pub fn hidden() -> Progress {
        Progress { visible: false }
    }

    /// A bar of `len` steps with a message.
    pub fn bar(&self, len: u64, message: &str) -> ProgressBar {
        let target = if self.visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(len), target);
        let style =
            ProgressStyle::with_template("{spinner} {msg:28!} [{wide_bar}] {pos}/{len} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(message.to_string());
        bar
    }
}
