//! Progress bars for file transfer and `get -o` (indicatif), on stderr and
//! only when it is a terminal.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use socketkit::services::recv::TransferObserver;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by `-q`: no bars even on a terminal.
static QUIET: AtomicBool = AtomicBool::new(false);

/// `-q` was given (called once, by `main`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether bars should be drawn at all: stderr is a terminal and no -q.
pub fn wanted() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// A bar for `name`: bytes, rate and ETA when the size is known, a spinner
/// otherwise.
pub fn bar(name: &str, total: Option<u64>, offset: u64) -> ProgressBar {
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            "{msg} {bytes}/{total_bytes} {wide_bar} {bytes_per_sec} ETA {eta}",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{msg} {bytes} {spinner} {bytes_per_sec}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(name.to_owned());
    bar.set_position(offset);
    bar
}

/// One bar per file being received.
#[derive(Debug, Default)]
pub struct ReceiveBars {
    bars: MultiProgress,
    active: Mutex<HashMap<u64, ProgressBar>>,
}

impl ReceiveBars {
    fn with_active<T>(&self, f: impl FnOnce(&mut HashMap<u64, ProgressBar>) -> T) -> T {
        let mut active = self
            .active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut active)
    }
}

impl TransferObserver for ReceiveBars {
    fn started(&self, id: u64, name: &str, total: Option<u64>, offset: u64) {
        let bar = self.bars.add(bar(name, total, offset));
        self.with_active(|active| active.insert(id, bar));
    }

    fn advanced(&self, id: u64, bytes: u64) {
        self.with_active(|active| active.get(&id).map(|bar| bar.inc(bytes)));
    }

    fn finished(&self, id: u64, _stored: bool) {
        if let Some(bar) = self.with_active(|active| active.remove(&id)) {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
    }
}
