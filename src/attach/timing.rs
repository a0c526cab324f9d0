//! How long an attach takes, end to end, as the user sees it: with
//! `BH_ATTACH_TIMING=<file>` set, a TUI client ([`super::client::run`]) appends one line to
//! `<file>` once it has drawn its first frame with every target's pane filled:
//!
//! ```text
//! targets=3 connected_ms=4.1 snapshot_ms=9.8 full_frame_ms=57.3
//! ```
//!
//! Each figure is milliseconds since the process's `main` started ([`mark_process_start`];
//! the exec and dynamic loading before it are not included): `connected` when the hello
//! exchange is done ([`super::client::connect`]), `snapshot` when a `screen` message has
//! arrived for every target of the snapshot's checkpoint, `full_frame` when the drawing
//! thread has drawn a frame (to the terminal, written and flushed) in which every target of
//! the checkpoint has a pane whose screen shows something. A run with a pane that shows
//! nothing yet gives no line until it does. Only reports: the client behaves the same with
//! or without it; a line that cannot be written is lost silently (the TUI owns the
//! terminal, there is nowhere to say so). Used by `scripts/bench-attach.sh`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::config::Target;
use crate::ui::tui::app::{App, Pane};

/// The environment variable naming the file the timing line is appended to.
pub const ENV: &str = "BH_ATTACH_TIMING";

static START: OnceLock<Instant> = OnceLock::new();

/// Notes the process's start; called first thing in `main` (later calls change nothing).
pub fn mark_process_start() {
    let _ = START.get_or_init(Instant::now);
}

/// The marks of one attach, shared by the socket-reading and the drawing threads.
#[derive(Debug)]
pub struct Timing {
    file: PathBuf,
    start: Instant,
    marks: Mutex<Marks>,
}

#[derive(Debug, Default)]
struct Marks {
    connected: Option<Duration>,
    snapshot: Option<Duration>,
    /// The targets whose `screen` message has been applied.
    screens: Vec<Target>,
    written: bool,
}

impl Timing {
    /// A timing for this process when `BH_ATTACH_TIMING` names a file, else `None`.
    pub fn from_env() -> Option<Timing> {
        let file = std::env::var_os(ENV).filter(|v| !v.is_empty())?;
        Some(Timing::new(
            PathBuf::from(file),
            *START.get_or_init(Instant::now),
        ))
    }

    /// A timing that counts from `start` and writes to `file`.
    pub fn new(file: PathBuf, start: Instant) -> Timing {
        Timing {
            file,
            start,
            marks: Mutex::new(Marks::default()),
        }
    }

    fn marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.marks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The hello exchange is done.
    pub fn connected(&self) {
        let at = self.start.elapsed();
        self.marks().connected.get_or_insert(at);
    }

    /// Called with the state after the `screen` message of `target` is applied: marks the
    /// snapshot received once every target of the checkpoint has had its `screen`.
    pub fn screen_applied(&self, app: &App, target: &Target) {
        let mut m = self.marks();
        if m.snapshot.is_some() {
            return;
        }
        if !m.screens.contains(target) {
            m.screens.push(target.clone());
        }
        let all = app
            .cp
            .as_ref()
            .is_some_and(|cp| cp.targets.iter().all(|r| m.screens.contains(&r.target)));
        if all {
            m.snapshot = Some(self.start.elapsed());
        }
    }

    /// Called after each frame drawn; writes the line at the first frame with every pane
    /// filled. Returns whether the line is done (written or given up), so that the caller
    /// stops calling.
    pub fn frame_drawn(&self, app: &App) -> bool {
        let mut m = self.marks();
        if m.written {
            return true;
        }
        let filled = every_target_has_a_pane(app, |p| !p.screen().contents().trim().is_empty());
        if !filled {
            return false;
        }
        let full = self.start.elapsed();
        m.written = true;
        let ms = |d: Option<Duration>| {
            d.map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
                .unwrap_or_else(|| "-".into())
        };
        let line = format!(
            "targets={} connected_ms={} snapshot_ms={} full_frame_ms={}\n",
            app.panes.len(),
            ms(m.connected),
            ms(m.snapshot),
            ms(Some(full)),
        );
        let _ = append(&self.file, &line);
        true
    }
}

/// Whether the checkpoint is known and every target in it has a pane for which `ok` holds.
fn every_target_has_a_pane(app: &App, ok: impl Fn(&Pane) -> bool) -> bool {
    let Some(cp) = &app.cp else {
        return false;
    };
    !cp.targets.is_empty()
        && cp
            .targets
            .iter()
            .all(|r| app.panes.iter().any(|p| p.target == r.target && ok(p)))
}

fn append(file: &Path, line: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?
        .write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::{Checkpoint, TargetRecord};

    fn target(name: &str) -> Target {
        Target::parse(&format!("x86_64-unknown-linux-musl.{name}")).unwrap()
    }

    #[test]
    fn one_line_at_the_first_frame_with_every_pane_filled_and_none_before() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("timing");
        let t = Timing::new(file.clone(), Instant::now());
        let (a, b) = (target("a"), target("b"));
        let mut app = App::new();
        app.checkpoint(&Checkpoint {
            run_id: "r".into(),
            run_steps: vec![],
            toolchain_ready: vec![],
            targets: [&a, &b]
                .into_iter()
                .map(|t| TargetRecord {
                    target: t.clone(),
                    steps: vec![],
                })
                .collect(),
            finished: false,
            distcc_hosts: None,
        });
        t.connected();
        assert!(!t.frame_drawn(&app), "panes without output are not filled");
        app.load_screen(&a, (5, 20), b"", b"hello from a", None);
        t.screen_applied(&app, &a);
        assert!(t.marks().snapshot.is_none(), "b's screen has not come yet");
        // b's screen arrives empty: the snapshot is complete, the frame not yet full.
        app.load_screen(&b, (5, 20), b"", b"", None);
        t.screen_applied(&app, &b);
        assert!(t.marks().snapshot.is_some());
        assert!(!t.frame_drawn(&app));
        assert!(!file.exists(), "nothing written before the full frame");
        app.output(&b, b"hello from b");
        assert!(t.frame_drawn(&app));
        assert!(t.frame_drawn(&app), "done stays done");
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let fields: Vec<(&str, &str)> = text
            .split_whitespace()
            .map(|f| f.split_once('=').unwrap())
            .collect();
        assert_eq!(fields[0], ("targets", "2"));
        let ms: Vec<f64> = fields[1..]
            .iter()
            .map(|(_, v)| v.parse().unwrap())
            .collect();
        assert_eq!(
            fields[1..].iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            ["connected_ms", "snapshot_ms", "full_frame_ms"]
        );
        assert!(
            ms.windows(2).all(|w| w[0] <= w[1]),
            "marks in order: {text}"
        );
    }
}
