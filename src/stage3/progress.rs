//! Progress of a long transfer or check: rate-limited lines `done/total MiB, rate, ETA` for
//! every front end, or an indicatif bar (bytes, rate, ETA) on a terminal in plain mode.
//!
//! Not for: deciding what to transfer (`download.rs`, `kept.rs`).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives human-readable progress lines.
pub(super) type Progress<'a> = &'a mut (dyn FnMut(String) + Send);

/// At most one progress line per this interval while bytes flow.
const EVERY: Duration = Duration::from_millis(500);
const MIB: f64 = (1u64 << 20) as f64;

/// Rate-limited progress of one transfer of `total` bytes.
pub(super) struct Meter {
    verb: &'static str,
    total: u64,
    started: Instant,
    /// Bytes already there when the meter started (resumed transfers): not in the rate.
    base: u64,
    last: Option<Instant>,
    bar: Option<ProgressBar>,
}

impl Meter {
    /// A meter for `total` bytes, `base` of which are already done. With `bar` and a
    /// terminal on stderr, draws an indicatif bar there instead of progress lines.
    pub(super) fn new(verb: &'static str, total: u64, base: u64, bar: bool) -> Meter {
        let bar = (bar && std::io::stderr().is_terminal()).then(|| {
            let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "stage3: {msg}{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            pb.set_style(style);
            pb.set_message(verb);
            pb.set_position(base);
            pb.reset_eta();
            pb
        });
        Meter {
            verb,
            total,
            started: Instant::now(),
            base,
            last: None,
            bar,
        }
    }

    /// Records that `done` of the total bytes are done; emits a line at most every 500 ms.
    pub(super) fn tick(&mut self, done: u64, progress: Progress<'_>) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        if self.last.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        progress(format!("stage3: {}{}", self.verb, self.line(done)));
    }

    /// `120/496 MiB, 95.2 MiB/s, ETA 4 s` (bytes for small totals; no rate at the start).
    fn line(&self, done: u64) -> String {
        let amount = if self.total >= 1 << 20 {
            format!("{}/{} MiB", done >> 20, self.total >> 20)
        } else {
            format!("{done}/{} bytes", self.total)
        };
        let secs = self.started.elapsed().as_secs_f64();
        let moved = done.saturating_sub(self.base) as f64;
        if secs < 0.2 || moved <= 0.0 {
            return amount;
        }
        let rate = moved / secs;
        let eta = self.total.saturating_sub(done) as f64 / rate;
        format!("{amount}, {:.1} MiB/s, ETA {:.0} s", rate / MIB, eta)
    }

    /// Removes the bar, if any.
    pub(super) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.finish();
    }
}
