//! The supervisor's part of package progress and "a word when something needs you": it
//! starts the [`Watch`] from the history the run started from, reads the environment's
//! `emerge.log` files once mounted, turns workers' `progress` messages into events with
//! estimates for the front ends, and sends notifications (notify command, bell and title).

use crate::config::Target;
use crate::engine::events::{Event, Record};
use crate::engine::watch::Watch;
use crate::plan::Plan;
use crate::progress::eta::Estimator;
use crate::progress::Progress;
use crate::sys::now_us;

use super::Supervisor;

/// Portage's log, relative to a root (`EMERGE_LOG_DIR` default, `_emerge/emergelog.py`).
const EMERGE_LOG: &str = "var/log/emerge.log";

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
            step_ms: m
                .step_ms
                .into_iter()
                .map(|(t, steps)| (t, steps.into_iter().collect()))
                .collect(),
            package_secs: m.package_secs,
        },
        None => Estimator::default(),
    };
    Watch::new(est)
}

/// The last [`MAX_LOG`] bytes of `rel` (relative, plain components: no `..`) below the
/// trusted directory `root`, if readable: through the one reader of files a build made
/// ([`crate::saferoot`]), which follows no symbolic link at any component (the environment's
/// files are not trusted, DESIGN.md "Trust boundaries": a link there must not make the
/// supervisor read a host file) and refuses a FIFO or a device without blocking on it.
pub(super) fn read_tail(root: &std::path::Path, rel: &str) -> Option<String> {
    let rel = std::path::Path::new(rel);
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    let bytes = crate::saferoot::Root::open(root)
        .and_then(|r| r.read_tail(rel, crate::saferoot::Resolve::NoSymlinks, MAX_LOG))
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The text of the environment's emerge.log files: the build machine's in the primary
/// target's root, and each target's own (`usr/<target>/var/log/emerge.log` in its root, where
/// its cross emerges with `--root` log).
pub(super) fn environment_times(plan: &Plan) -> Vec<String> {
    let Some(primary) = plan.targets.first() else {
        return Vec::new();
    };
    let mut found: Vec<String> = read_tail(&primary.root, EMERGE_LOG).into_iter().collect();
    for t in &plan.targets {
        let rel = format!("usr/{}/{EMERGE_LOG}", t.target);
        found.extend(read_tail(&t.root, &rel));
    }
    found
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
        let eta_ms = self
            .watch
            .target_eta_ms(self.engine.checkpoint(), &name, now);
        let run_eta_ms = self.watch.run_eta_ms(self.engine.checkpoint(), now);
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
        if let Some(shown) = self
            .watch
            .shown(self.engine.checkpoint(), &target.to_string(), now)
        {
            let run = self.watch.run_eta_ms(self.engine.checkpoint(), now);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emerge_logs_are_read_inside_the_environment_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("var/log")).unwrap();
        std::fs::write(root.join("var/log/emerge.log"), "1:  x\n").unwrap();
        assert_eq!(read_tail(&root, EMERGE_LOG).as_deref(), Some("1:  x\n"));
        // A link in the environment, to a file or a directory outside it, is not followed.
        let outside = dir.path().join("host-secret");
        std::fs::write(&outside, "secret").unwrap();
        std::fs::create_dir_all(root.join("usr/t/var")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("usr/t/var/log")).unwrap();
        assert_eq!(read_tail(&root, "usr/t/var/log/emerge.log"), None);
        std::fs::remove_file(root.join("var/log/emerge.log")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("var/log/emerge.log")).unwrap();
        assert_eq!(read_tail(&root, EMERGE_LOG), None);
        assert_eq!(read_tail(&root, "var/../var/log/emerge.log"), None);
    }
}
