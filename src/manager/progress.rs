//! What a long operation is doing, on one updating line of stderr: only when stderr is a
//! terminal and the front end turned it on (not with `--quiet`, never as nixos-container).
//! Whatever else writes to stderr meanwhile calls [`clear`] first, so lines never mix.

use std::io::Write;
use std::sync::Mutex;

struct State {
    enabled: bool,
    shown: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    enabled: false,
    shown: false,
});

/// Wider lines would wrap, and `\r` would then redraw only their last row.
const MAX_WIDTH: usize = 79;

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Show progress from now on (the front end: a terminal, no `--quiet`).
pub fn enable(on: bool) {
    state().enabled = on;
}

/// Replace the line with `text`.
pub fn show(text: &str) {
    let mut s = state();
    if !s.enabled {
        return;
    }
    let text: String = text.chars().take(MAX_WIDTH).collect();
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[K{text}");
    let _ = err.flush();
    s.shown = true;
}

/// Remove the line, if one is shown (before other output on stderr, and at the end).
pub fn clear() {
    let mut s = state();
    if s.shown {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
        s.shown = false;
    }
}

/// Replace the line with `text` and keep it (the outcome: `reached multi-user.target in …`).
pub fn finish(text: &str) {
    let mut s = state();
    if !s.enabled {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\r\x1b[K{text}");
    let _ = err.flush();
    s.shown = false;
}

/// Clears the line when dropped, so an error (or any early return) leaves no half line.
pub struct Line;

impl Drop for Line {
    fn drop(&mut self) {
        clear();
    }
}
