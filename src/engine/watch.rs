//! The supervisor's view of every target's running step: its package progress and the
//! remaining-time estimates (target and run), from the [`Estimator`] the run started with.
//!
//! Pure: the caller passes the clock (`now_us`, microseconds since the Unix epoch) and the
//! checkpoint; nothing here reads files or the time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Checkpoint;
use crate::progress::emergelog;
use crate::progress::eta::{run_remaining_ms, Estimator, StepNow};
use crate::progress::Progress;

/// A target's running step as front ends show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shown {
    /// The step.
    pub step: String,
    /// Its package progress, once it reported any.
    pub progress: Option<Progress>,
    /// The target's remaining milliseconds when this was computed.
    pub eta_ms: Option<u64>,
    /// When it was computed (microseconds since the Unix epoch): a front end counts down
    /// from here.
    pub at_us: u64,
}

#[derive(Debug, Clone)]
struct Running {
    step: String,
    started_us: u64,
    changed_us: u64,
    progress: Option<Progress>,
    /// Milliseconds each completed package took (between changes of the current package).
    done_ms: Vec<u64>,
}

/// Progress and estimates of a run's targets.
#[derive(Debug, Default)]
pub struct Watch {
    est: Estimator,
    running: BTreeMap<String, Running>,
}

impl Watch {
    /// A watch estimating from `est`.
    pub fn new(est: Estimator) -> Watch {
        Watch {
            est,
            running: BTreeMap::new(),
        }
    }

    /// The estimator (to add times or save them).
    pub fn estimator(&self) -> &Estimator {
        &self.est
    }

    /// Adds the merges of an `emerge.log`'s text.
    pub fn add_emerge_log(&mut self, text: &str) {
        let merges = emergelog::merges(text);
        self.est
            .add_package_times(emergelog::times_by_package(&merges));
    }

    /// `step` of `target` started.
    pub fn step_started(&mut self, target: &str, step: &str, now_us: u64) {
        self.running.insert(
            target.to_string(),
            Running {
                step: step.to_string(),
                started_us: now_us,
                changed_us: now_us,
                progress: None,
                done_ms: Vec::new(),
            },
        );
    }

    /// The running step of `target` ended.
    pub fn step_finished(&mut self, target: &str) {
        self.running.remove(target);
    }

    /// The running step of `target` reported `progress`; `false` when it is not the step
    /// that runs (a late message).
    pub fn progress(&mut self, target: &str, step: &str, progress: Progress, now_us: u64) -> bool {
        let Some(r) = self.running.get_mut(target).filter(|r| r.step == step) else {
            return false;
        };
        let same_package = r
            .progress
            .as_ref()
            .is_some_and(|p| p.current == progress.current);
        if !same_package {
            if r.progress.as_ref().is_some_and(|p| p.current.is_some()) {
                r.done_ms.push(now_us.saturating_sub(r.changed_us) / 1000);
            }
            r.changed_us = now_us;
        }
        r.progress = Some(progress);
        true
    }

    fn step_now(r: &Running, now_us: u64) -> StepNow {
        StepNow {
            elapsed_ms: now_us.saturating_sub(r.started_us) / 1000,
            progress: r.progress.clone(),
            current_ms: now_us.saturating_sub(r.changed_us) / 1000,
            done_ms: r.done_ms.clone(),
        }
    }

    /// Remaining milliseconds of `target`, whose steps not done yet are those of `cp`.
    pub fn target_eta_ms(&self, cp: &Checkpoint, target: &str, now_us: u64) -> Option<u64> {
        let rec = cp.targets.iter().find(|t| t.target.to_string() == target)?;
        if rec.steps.iter().all(|s| s.state.is_done()) {
            return Some(0);
        }
        let running = self.running.get(target);
        let pending: Vec<String> = rec
            .steps
            .iter()
            .filter(|s| !s.state.is_done())
            .filter(|s| running.is_none_or(|r| r.step != s.name))
            .map(|s| s.name.clone())
            .collect();
        let now = running.map(|r| (r.step.as_str(), Self::step_now(r, now_us)));
        self.est
            .target_remaining_ms(target, now.as_ref().map(|(s, n)| (*s, n)), &pending)
    }

    /// Remaining milliseconds of the run: the longest of its targets'; `None` while any
    /// target's is unknown.
    pub fn run_eta_ms(&self, cp: &Checkpoint, now_us: u64) -> Option<u64> {
        run_remaining_ms(
            cp.targets
                .iter()
                .map(|t| self.target_eta_ms(cp, &t.target.to_string(), now_us)),
        )
    }

    /// What front ends show for `target` now.
    pub fn shown(&self, cp: &Checkpoint, target: &str, now_us: u64) -> Option<Shown> {
        let r = self.running.get(target)?;
        Some(Shown {
            step: r.step.clone(),
            progress: r.progress.clone(),
            eta_ms: self.target_eta_ms(cp, target, now_us),
            at_us: now_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Phase;

    fn cp() -> Checkpoint {
        serde_json::from_value(serde_json::json!({
            "run_id": "r", "run_steps": [], "toolchain_ready": [], "finished": false,
            "targets": [
                {"target": {"tuple": "x86_64-unknown-linux-musl", "name": "a"},
                 "steps": [
                    {"name": "env", "state": "done", "attempts": 1},
                    {"name": "world", "state": "running", "attempts": 1},
                    {"name": "images", "state": "pending", "attempts": 0}]},
                {"target": {"tuple": "x86_64-unknown-linux-musl", "name": "b"},
                 "steps": [{"name": "world", "state": "pending", "attempts": 0}]}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn estimates_follow_progress_and_the_longest_target_sets_the_run() {
        let mut est = Estimator::default();
        est.step_ms.insert(
            "x86_64-unknown-linux-musl.a".into(),
            BTreeMap::from([("world".into(), 100_000), ("images".into(), 10_000)]),
        );
        est.step_ms.insert(
            "x86_64-unknown-linux-musl.b".into(),
            BTreeMap::from([("world".into(), 50_000)]),
        );
        let mut w = Watch::new(est);
        let a = "x86_64-unknown-linux-musl.a";
        let cp = cp();
        let s = 1_000_000_000;
        w.step_started(a, "world", s);
        // 20 s in, no progress: 80 s of world + 10 s of images.
        assert_eq!(w.target_eta_ms(&cp, a, s + 20_000_000), Some(90_000));
        let p = Progress {
            phase: Phase::Build,
            done: 3,
            total: 4,
            current: Some("a/d-1".into()),
        };
        assert!(w.progress(a, "world", p.clone(), s + 30_000_000));
        assert!(!w.progress(a, "other", w.running[a].progress.clone().unwrap(), s));
        // 3 done in 30 s: 10 s each; the 4th started now.
        assert_eq!(w.target_eta_ms(&cp, a, s + 30_000_000), Some(20_000));
        assert_eq!(w.run_eta_ms(&cp, s + 30_000_000), Some(50_000));
        let shown = w.shown(&cp, a, s + 30_000_000).unwrap();
        assert_eq!(shown.progress.unwrap().short(), "3/4 a/d-1");
        // a/d-1 took 8 s: the last package comes at that rate.
        let p = Progress {
            done: 4,
            total: 5,
            current: Some("a/e-1".into()),
            ..p
        };
        assert!(w.progress(a, "world", p, s + 38_000_000));
        assert_eq!(w.running[a].done_ms, vec![8_000]);
        w.step_finished(a);
        assert!(w.shown(&cp, a, s).is_none());
    }

    #[test]
    fn emerge_log_text_adds_package_times() {
        let mut w = Watch::default();
        w.add_emerge_log(
            "10:  >>> emerge (1 of 1) a/b-1 to /\n70:  ::: completed emerge (1 of 1) a/b-1 to /\n",
        );
        assert_eq!(w.estimator().package_ms("a/b-2"), Some(60_000));
    }
}
