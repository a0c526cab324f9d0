//! The supervisor's part of package progress and "a word when something needs you": it
//! starts the [`Watch`] from the history the run started from, reads the environment's
//! `emerge.log` files once mounted, turns workers' `progress` messages into events with
//! estimates for the front ends, and sends notifications (notify command, bell and title).

use crate::config::Target;
use crate::engine::events::{now_us, Event, Record};
use crate::plan::Plan;
use crate::progress::eta::Estimator;
use crate::progress::watch::{emerge_logs, Watch};
use crate::progress::Progress;

use super::Supervisor;

/// Longest emerge.log read (its tail): years of merges fit in far less.
const MAX_LOG: u64 = 64 << 20;

/// A watch estimating from the metadata of the history the run starts from (step durations
/// and per-package times); empty on a first build.
pub(super) fn start(plan: &Plan) -> Watch {
    let meta = plan
        .layout
        .history
        .as_ref()
        .and_then(|(h, _)| crate::history::Meta::load(h));
    let est = match meta {
        Some(m) => Estimator {
            step_ms: m.step_ms,
            package_secs: m.package_secs,
        },
        None => Estimator::default(),
    };
    Watch::new(est)
}

/// The last [`MAX_LOG`] bytes of `path`, if readable.
pub(super) fn read_tail(path: &std::path::Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(MAX_LOG))).ok()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The text of the environment's emerge.log files: the build machine's in the primary
/// target's root, and each target's own (`usr/<target>/var/log/emerge.log` in its root, where
/// its cross emerges with `--root` log).
pub(super) fn environment_times(plan: &Plan) -> Vec<String> {
    let Some(primary) = plan.targets.first() else {
        return Vec::new();
    };
    let mut paths = emerge_logs(&primary.root, &[]);
    for t in &plan.targets {
        paths.extend(
            emerge_logs(&t.root, &[t.target.to_string()])
                .into_iter()
                .skip(1),
        );
    }
    paths.iter().filter_map(|p| read_tail(p)).collect()
}

impl Supervisor {
    pub(super) fn progress_step_started(&mut self, target: &Target, step: &str) {
        if !self.emerge_logs_read {
            self.emerge_logs_read = true;
            for text in environment_times(&self.plan) {
                self.watch.add_emerge_log(&text);
            }
        }
        let now = now_us();
        self.watch.step_started(&target.to_string(), step, now);
        self.show_progress(target, now);
    }

    pub(super) fn progress_report(&mut self, target: &Target, step: &str, progress: Progress) {
        let now = now_us();
        let name = target.to_string();
        if !self.watch.progress(&name, step, progress.clone(), now) {
            return;
        }
        let eta_ms = self.watch.target_eta_ms(&self.cp, &name, now);
        let run_eta_ms = self.watch.run_eta_ms(&self.cp, now);
        self.events.append(Event::Progress {
            target: name,
            step: step.to_string(),
            phase: progress.phase,
            done: progress.done,
            total: progress.total,
            current: progress.current,
            eta_ms,
            run_eta_ms,
        });
        self.show_progress(target, now);
    }

    fn show_progress(&mut self, target: &Target, now: u64) {
        if let Some(shown) = self.watch.shown(&self.cp, &target.to_string(), now) {
            let run = self.watch.run_eta_ms(&self.cp, now);
            self.ui.progress(target, &shown, run);
        }
    }

    /// Something needs the user: rings the bell and sets the terminal title (front ends
    /// that own a terminal), and runs the notify command with `record` as JSON.
    pub(super) fn notify(&mut self, record: &Record, title: &str) {
        self.ui.alert(&format!("build-helper: {title}"));
        if let Some(n) = &self.notifier {
            match serde_json::to_string(record) {
                Ok(json) => {
                    self.notifying.retain(|h| !h.is_finished());
                    self.notifying.push(n.send(json));
                }
                Err(e) => self.ui.say(&format!("cannot encode a notification: {e}")),
            }
        }
    }
}
