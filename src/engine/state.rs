//! The checkpoint: `work/<run>/checkpoint.json`, the one source of truth of a run's progress.
//!
//! Rules (pueue's restore rules, adapted):
//! - it is made durable after every transition: a record of what changed is appended to its
//!   log, and the whole is rewritten atomically (temp, fsync, rename) at start, at the end and
//!   when the log has grown larger than it (`rundir::cplog`);
//! - reading a checkpoint (`rundir::load_checkpoint`) never changes it: `status` of a live run
//!   shows its running steps as running;
//! - the crash rule ([`Checkpoint::restore`]) applies only when the run's supervisor is gone
//!   (its run directory lock is free, see `rundir`): a step recorded `running` becomes
//!   `interrupted` (exit code `None`), so nothing starts by surprise and resume re-runs it
//!   from its start;
//! - a step's state carries what only it has (a finished step its exit code, a failed one its
//!   rescue shell); the times of its last attempt stay on its record;
//! - a step whose worker died under it (killed, or the run stopped) is `interrupted`, not
//!   `failed`: failed means the step itself exited non-zero; a target whose worker ended, or
//!   whose supervisor died, between two of its steps has the next one `interrupted`; a live
//!   target between two steps is `waiting`, never `failed`;
//! - resume runs each target from its first step that is not `done`;
//! - retry resets every step of every target (and the supervisor's `archive-history`);
//! - a tuple is ready when its `toolchain-ready` event was recorded, or when the whole
//!   primary phase is done (so a resumed run never waits for an event that already passed);
//! - a failed step whose rescue shell waits for the user records it in its state
//!   ([`StepState::Failed`]'s `rescue`; the file keeps it on the target) until the user decides: resume (the step starts again), retry
//!   (the target is reset) or abort (its worker exits); the crash rule forgets it (the shell
//!   died with its worker).

use serde::{Deserialize, Serialize};

use crate::config::Target;
use crate::plan::Plan;
use crate::recipe::Phase;

/// The run steps the supervisor records in the checkpoint (`run_steps`), by name: the
/// stage3 download (first builds only).
pub const STAGE3: &str = "stage3";
/// The mounts run step.
pub const MOUNTS: &str = "mounts";
/// The archive run step.
pub const ARCHIVE: &str = "archive-history";

/// A step's state, carrying what only that state has: a finished step its exit code, a
/// failed one also whether its rescue shell waits. The times of the last attempt
/// ([`StepRecord::started_us`], [`StepRecord::duration_ms`]) are the record's: they outlive
/// the state (a retried step keeps them until it runs again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Not run yet (or reset).
    Pending,
    /// Running now.
    Running,
    /// Finished with exit code 0 (`Some(0)`; `None` for a supervisor step, which has no
    /// code).
    Done {
        /// `Some(0)` for a target's step; `None` for a supervisor step.
        exit_code: Option<i32>,
    },
    /// Finished with a non-zero exit code (`None` for a supervisor step).
    Failed {
        /// The exit code (128 + signal when killed); `None` for a supervisor step.
        exit_code: Option<i32>,
        /// Since when (microseconds since the Unix epoch) its rescue shell waits for the
        /// user's decision (resume / retry / abort); `None` when none waits.
        rescue: Option<u64>,
    },
    /// Stopped from outside before it finished: the run was stopped, its worker was killed,
    /// or its supervisor died (crash rule).
    Interrupted,
}

impl StepState {
    /// A finished target step's state for `exit_code`: done for 0, failed otherwise.
    pub fn finished(exit_code: i32) -> StepState {
        if exit_code == 0 {
            StepState::Done { exit_code: Some(0) }
        } else {
            StepState::Failed {
                exit_code: Some(exit_code),
                rescue: None,
            }
        }
    }

    /// A supervisor step that ended well (it has no exit code).
    pub const RUN_STEP_DONE: StepState = StepState::Done { exit_code: None };

    /// A supervisor step that failed (it has no exit code).
    pub const RUN_STEP_FAILED: StepState = StepState::Failed {
        exit_code: None,
        rescue: None,
    };

    /// The state as a word (`pending`, `running`, `done`, `failed`, `interrupted`): what
    /// `status`, the events and the front ends print, and the checkpoint's spelling.
    pub fn word(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Done { .. } => "done",
            StepState::Failed { .. } => "failed",
            StepState::Interrupted => "interrupted",
        }
    }

    /// Whether it finished with exit code 0.
    pub fn is_done(self) -> bool {
        matches!(self, StepState::Done { .. })
    }

    /// Whether it finished with a non-zero exit code.
    pub fn is_failed(self) -> bool {
        matches!(self, StepState::Failed { .. })
    }

    /// Its exit code, when it finished with one.
    pub fn exit_code(self) -> Option<i32> {
        match self {
            StepState::Done { exit_code } | StepState::Failed { exit_code, .. } => exit_code,
            _ => None,
        }
    }
}

/// One step's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StepWire", into = "StepWire")]
pub struct StepRecord {
    /// Step name.
    pub name: String,
    /// Phase (primary or target); `None` for the supervisor's own steps.
    pub phase: Option<Phase>,
    /// State, with its exit code and rescue.
    pub state: StepState,
    /// Start of the last attempt, microseconds since the Unix epoch.
    pub started_us: Option<u64>,
    /// Duration of the last attempt, milliseconds.
    pub duration_ms: Option<u64>,
    /// How many times it was started.
    pub attempts: u32,
    /// What the last attempt's process tree cost (CPU time, peak memory), when measured.
    pub cost: Option<crate::pool::StepCost>,
}

/// A step record as the checkpoint (format 1) and `status --json` spell it: the state as a
/// word beside `exit_code`; a waiting rescue shell is the target's (`rescue`, [`TargetWire`]).
#[derive(Serialize, Deserialize)]
struct StepWire {
    name: String,
    phase: Option<Phase>,
    state: StateWord,
    exit_code: Option<i32>,
    started_us: Option<u64>,
    duration_ms: Option<u64>,
    attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cost: Option<crate::pool::StepCost>,
}

/// [`StepState`]'s word in the checkpoint.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StateWord {
    Pending,
    Running,
    Done,
    Failed,
    Interrupted,
}

impl From<StepWire> for StepRecord {
    fn from(w: StepWire) -> StepRecord {
        let state = match w.state {
            StateWord::Pending => StepState::Pending,
            StateWord::Running => StepState::Running,
            StateWord::Done => StepState::Done {
                exit_code: w.exit_code,
            },
            StateWord::Failed => StepState::Failed {
                exit_code: w.exit_code,
                rescue: None,
            },
            StateWord::Interrupted => StepState::Interrupted,
        };
        StepRecord {
            name: w.name,
            phase: w.phase,
            state,
            started_us: w.started_us,
            duration_ms: w.duration_ms,
            attempts: w.attempts,
            cost: w.cost,
        }
    }
}

impl From<StepRecord> for StepWire {
    fn from(r: StepRecord) -> StepWire {
        let state = match r.state {
            StepState::Pending => StateWord::Pending,
            StepState::Running => StateWord::Running,
            StepState::Done { .. } => StateWord::Done,
            StepState::Failed { .. } => StateWord::Failed,
            StepState::Interrupted => StateWord::Interrupted,
        };
        StepWire {
            name: r.name,
            phase: r.phase,
            state,
            exit_code: r.state.exit_code(),
            started_us: r.started_us,
            duration_ms: r.duration_ms,
            attempts: r.attempts,
            cost: r.cost,
        }
    }
}

impl StepRecord {
    /// A pending step that never ran.
    pub fn new(name: &str, phase: Option<Phase>) -> StepRecord {
        StepRecord {
            name: name.into(),
            phase,
            state: StepState::Pending,
            started_us: None,
            duration_ms: None,
            attempts: 0,
            cost: None,
        }
    }

    /// The record as the checkpoint file holds it: the same without a waiting rescue shell
    /// (which the file keeps on the target).
    pub fn on_disk(&self) -> StepRecord {
        let mut r = self.clone();
        if let StepState::Failed { rescue, .. } = &mut r.state {
            *rescue = None;
        }
        r
    }

    fn reset(&mut self) {
        self.state = StepState::Pending;
    }
}

/// A target's overall state, derived from its steps and worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetState {
    /// Not started: waiting for its toolchain.
    Waiting,
    /// A step is running.
    Running,
    /// A step failed and its rescue shell waits for the user's decision (resume / retry /
    /// abort) since `since_us` (microseconds since the Unix epoch).
    RescueWaiting {
        /// When the rescue shell opened.
        since_us: u64,
    },
    /// A step failed.
    Failed,
    /// A step was interrupted (and none failed).
    Interrupted,
    /// Every step done.
    Done,
}

impl TargetState {
    /// The state as words, as `status` and the front ends print it.
    pub fn word(self) -> &'static str {
        match self {
            TargetState::Waiting => "waiting",
            TargetState::Running => "running",
            TargetState::Failed => "failed",
            TargetState::RescueWaiting { .. } => "rescue shell waiting",
            TargetState::Interrupted => "interrupted",
            TargetState::Done => "done",
        }
    }
}

/// A rescue shell that waits for its user: an interactive worker opened it after `step`
/// failed and asks resume / retry / abort (DESIGN.md, Processes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RescueWait {
    /// The failed step.
    pub step: String,
    /// When the shell opened, microseconds since the Unix epoch.
    pub since_us: u64,
}

/// One target's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "TargetWire", into = "TargetWire")]
pub struct TargetRecord {
    /// The target.
    pub target: Target,
    /// Its steps in plan order (a waiting rescue shell is its failed step's).
    pub steps: Vec<StepRecord>,
}

/// A target record as the checkpoint (format 1) spells it: a waiting rescue shell is the
/// target's `rescue` (absent when none waits, so checkpoints without it read as before).
#[derive(Serialize, Deserialize)]
struct TargetWire {
    target: Target,
    steps: Vec<StepRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rescue: Option<RescueWait>,
}

impl From<TargetWire> for TargetRecord {
    fn from(w: TargetWire) -> TargetRecord {
        let mut t = TargetRecord {
            target: w.target,
            steps: w.steps,
        };
        // A rescue shell waits only on a failed step: one named on another is forgotten.
        t.set_rescue(w.rescue.as_ref());
        t
    }
}

impl From<TargetRecord> for TargetWire {
    fn from(t: TargetRecord) -> TargetWire {
        let rescue = t.rescue_waiting();
        TargetWire {
            target: t.target,
            steps: t.steps.iter().map(StepRecord::on_disk).collect(),
            rescue,
        }
    }
}

impl TargetRecord {
    /// The derived state.
    pub fn state(&self) -> TargetState {
        if self.steps.iter().all(|s| s.state.is_done()) {
            TargetState::Done
        } else if self.steps.iter().any(|s| s.state == StepState::Running) {
            TargetState::Running
        } else if let Some(r) = self.rescue_waiting() {
            TargetState::RescueWaiting {
                since_us: r.since_us,
            }
        } else if self.steps.iter().any(|s| s.state.is_failed()) {
            TargetState::Failed
        } else if self.steps.iter().any(|s| s.state == StepState::Interrupted) {
            TargetState::Interrupted
        } else {
            // Not started, or between two steps of a live run (its worker is about to start
            // the next one, or waits for its toolchain): no step failed, so not failed. A
            // run that ended there gets an interrupted step from the crash rule.
            TargetState::Waiting
        }
    }

    /// A target stopped between two steps (some done, the others pending, none running or
    /// failed): its next step is the one the stop interrupted, so it shows `interrupted`
    /// rather than `waiting`; resume runs it, as any step not done.
    fn interrupt_between_steps(&mut self) {
        let started = self.steps.iter().any(|s| s.state.is_done());
        let settled = self
            .steps
            .iter()
            .all(|s| matches!(s.state, StepState::Done { .. } | StepState::Pending));
        if started && settled {
            if let Some(next) = self
                .steps
                .iter_mut()
                .find(|s| s.state == StepState::Pending)
            {
                next.state = StepState::Interrupted;
            }
        }
    }

    /// Names of the steps a (re)started worker must run: from the first step not done.
    pub fn pending_steps(&self) -> Vec<String> {
        match self.steps.iter().position(|s| !s.state.is_done()) {
            Some(i) => self.steps[i..].iter().map(|s| s.name.clone()).collect(),
            None => Vec::new(),
        }
    }

    /// The rescue shell waiting for the user: the failed step whose state says so.
    pub fn rescue_waiting(&self) -> Option<RescueWait> {
        self.steps.iter().find_map(|s| match s.state {
            StepState::Failed {
                rescue: Some(since_us),
                ..
            } => Some(RescueWait {
                step: s.name.clone(),
                since_us,
            }),
            _ => None,
        })
    }

    /// Makes `rescue` the one rescue shell that waits (`None`: none waits); one named on a
    /// step that is not failed is not recorded. Returns whether it was.
    pub fn set_rescue(&mut self, rescue: Option<&RescueWait>) -> bool {
        let mut set = false;
        for s in &mut self.steps {
            if let StepState::Failed { rescue: r, .. } = &mut s.state {
                *r = rescue.filter(|w| w.step == s.name).map(|w| w.since_us);
                set |= r.is_some();
            }
        }
        set
    }

    fn step_mut(&mut self, name: &str) -> Option<&mut StepRecord> {
        self.steps.iter_mut().find(|s| s.name == name)
    }
}

/// The whole checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The run id.
    pub run_id: String,
    /// The supervisor's own steps: `stage3` (first builds), `mounts`, `archive-history`.
    pub run_steps: Vec<StepRecord>,
    /// Tuples announced ready.
    pub toolchain_ready: Vec<String>,
    /// Targets, primary first.
    pub targets: Vec<TargetRecord>,
    /// Set when the run completed (history archived, everything unmounted).
    pub finished: bool,
    /// The run's distcc helpers (`DISTCC_HOSTS`, from the starter's `distcc_hosts`), shown
    /// by the front ends; `None` when the run compiles locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distcc_hosts: Option<String>,
}

impl Checkpoint {
    /// A fresh checkpoint for `plan`: every step pending.
    pub fn new(plan: &Plan) -> Checkpoint {
        let mut run_steps = Vec::new();
        if plan.first_build {
            run_steps.push(StepRecord::new(STAGE3, None));
        }
        run_steps.push(StepRecord::new(MOUNTS, None));
        run_steps.push(StepRecord::new(ARCHIVE, None));
        Checkpoint {
            run_id: plan.run_id.clone(),
            run_steps,
            toolchain_ready: Vec::new(),
            targets: plan
                .targets
                .iter()
                .map(|t| TargetRecord {
                    target: t.target.clone(),
                    steps: t
                        .steps
                        .iter()
                        .map(|s| StepRecord::new(&s.name, Some(s.phase)))
                        .collect(),
                })
                .collect(),
            finished: false,
            distcc_hosts: plan
                .targets
                .first()
                .and_then(|t| t.env.get("DISTCC_HOSTS").cloned()),
        }
    }

    /// The crash rule, for a run whose supervisor is gone: whatever was running was
    /// interrupted (a target stopped between two steps: its next step), and no rescue shell
    /// waits any more. Never applied to a live run.
    pub fn restore(&mut self) {
        for t in &mut self.targets {
            t.set_rescue(None);
            t.interrupt_between_steps();
        }
        for s in self
            .targets
            .iter_mut()
            .flat_map(|t| t.steps.iter_mut())
            .chain(self.run_steps.iter_mut())
        {
            if s.state == StepState::Running {
                s.state = StepState::Interrupted;
            }
        }
    }

    /// The retry rule: every target step and `archive-history` back to pending (the stage3
    /// and mounts stay: the environment is kept).
    pub fn reset_for_retry(&mut self) {
        for t in &mut self.targets {
            for s in &mut t.steps {
                s.reset();
            }
            t.set_rescue(None);
        }
        self.toolchain_ready.clear();
        if let Some(a) = self.run_steps.iter_mut().find(|s| s.name == ARCHIVE) {
            a.reset();
        }
        self.finished = false;
    }

    /// The rescue flow's retry of one target (its worker asked): every step of `target` back
    /// to pending, so its worker runs them all again; the other targets and the tuple's
    /// readiness stay as they are. Returns the steps to run (empty for an unknown target).
    pub fn reset_target(&mut self, target: &Target) -> Vec<String> {
        match self.targets.iter_mut().find(|t| &t.target == target) {
            Some(t) => {
                for s in &mut t.steps {
                    s.reset();
                }
                t.pending_steps()
            }
            None => Vec::new(),
        }
    }

    /// The record of `target`.
    pub fn target(&self, target: &Target) -> Option<&TargetRecord> {
        self.targets.iter().find(|t| &t.target == target)
    }

    /// The record of a supervisor step.
    pub fn run_step(&self, name: &str) -> Option<&StepRecord> {
        self.run_steps.iter().find(|s| s.name == name)
    }

    /// Marks a supervisor step (`stage3`, `mounts`, `archive-history`).
    pub fn set_run_step(&mut self, name: &str, state: StepState, now_us: u64) {
        if let Some(s) = self.run_steps.iter_mut().find(|s| s.name == name) {
            if state == StepState::Running {
                s.started_us = Some(now_us);
                s.attempts += 1;
            } else if let Some(start) = s.started_us {
                s.duration_ms = Some(now_us.saturating_sub(start) / 1000);
            }
            s.state = state;
        }
    }

    /// Records a step start (a rescue shell that waited was answered: resume).
    pub fn step_started(&mut self, target: &Target, step: &str, now_us: u64) {
        if let Some(s) = self
            .targets
            .iter_mut()
            .find(|t| &t.target == target)
            .and_then(|t| {
                t.set_rescue(None);
                t.step_mut(step)
            })
        {
            s.state = StepState::Running;
            s.started_us = Some(now_us);
            s.duration_ms = None;
            s.attempts += 1;
        }
    }

    /// Records a step end.
    pub fn step_finished(
        &mut self,
        target: &Target,
        step: &str,
        exit_code: i32,
        duration_ms: u64,
        cost: Option<crate::pool::StepCost>,
    ) {
        if let Some(s) = self
            .targets
            .iter_mut()
            .find(|t| &t.target == target)
            .and_then(|t| t.step_mut(step))
        {
            s.state = StepState::finished(exit_code);
            s.duration_ms = Some(duration_ms);
            s.cost = cost;
        }
    }

    /// A worker ended: a step it left `running` never reported its end (the worker was
    /// killed, or the run stopped it), so it was interrupted; a worker that ended between
    /// two steps interrupted the next one; a rescue shell it had open is gone with it (abort,
    /// or stopped). Returns true when a running step was interrupted.
    pub fn worker_exited(&mut self, target: &Target) -> bool {
        let mut any = false;
        if let Some(t) = self.targets.iter_mut().find(|t| &t.target == target) {
            t.set_rescue(None);
            for s in &mut t.steps {
                if s.state == StepState::Running {
                    s.state = StepState::Interrupted;
                    any = true;
                }
            }
            if !any {
                t.interrupt_between_steps();
            }
        }
        any
    }

    /// Records that `target`'s rescue shell for its failed `step` waits for the user since
    /// `now_us`. Returns false (and records nothing) unless that step is failed.
    pub fn rescue_waiting(&mut self, target: &Target, step: &str, now_us: u64) -> bool {
        let Some(t) = self.targets.iter_mut().find(|t| &t.target == target) else {
            return false;
        };
        let failed = t
            .steps
            .iter()
            .any(|s| s.name == step && s.state.is_failed());
        failed
            && t.set_rescue(Some(&RescueWait {
                step: step.to_string(),
                since_us: now_us,
            }))
    }

    /// Records `toolchain-ready(tuple)`; returns true when it is new.
    pub fn set_toolchain_ready(&mut self, tuple: &str) -> bool {
        if self.toolchain_ready.iter().any(|t| t == tuple) {
            false
        } else {
            self.toolchain_ready.push(tuple.to_string());
            true
        }
    }

    /// True when every primary-phase step is done.
    pub fn primary_phase_done(&self) -> bool {
        self.targets.first().is_some_and(|t| {
            t.steps
                .iter()
                .filter(|s| s.phase == Some(Phase::Primary))
                .all(|s| s.state.is_done())
        })
    }

    /// True when `tuple`'s toolchain is ready (see the module rules).
    pub fn tuple_ready(&self, tuple: &str) -> bool {
        self.primary_phase_done() || self.toolchain_ready.iter().any(|t| t == tuple)
    }

    /// True when every target is done.
    pub fn all_done(&self) -> bool {
        self.targets.iter().all(|t| t.state() == TargetState::Done)
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Target;

    /// A two-target checkpoint (the primary with three steps), every step pending.
    pub(crate) fn cp() -> Checkpoint {
        let step = |name: &str, phase| StepRecord::new(name, Some(phase));
        Checkpoint {
            run_id: "a-1".into(),
            run_steps: vec![
                StepRecord::new("mounts", None),
                StepRecord::new("archive-history", None),
            ],
            toolchain_ready: Vec::new(),
            targets: vec![
                TargetRecord {
                    target: Target::new("x86_64-unknown-linux-musl", "a").unwrap(),
                    steps: vec![
                        step("crossdev", Phase::Primary),
                        step("target-env", Phase::Target),
                        step("collect", Phase::Target),
                    ],
                },
                TargetRecord {
                    target: Target::new("aarch64-unknown-linux-musl", "b").unwrap(),
                    steps: vec![
                        step("target-env", Phase::Target),
                        step("collect", Phase::Target),
                    ],
                },
            ],
            finished: false,
            distcc_hosts: None,
        }
    }

    #[test]
    fn a_failed_step_carries_its_code_and_rescue_and_the_file_keeps_its_spelling() {
        let mut c = cp();
        let a = c.targets[0].target.clone();
        c.step_started(&a, "crossdev", 1);
        c.step_finished(&a, "crossdev", 2, 40, None);
        assert!(c.rescue_waiting(&a, "crossdev", 9));
        assert_eq!(
            c.targets[0].steps[0].state,
            StepState::Failed {
                exit_code: Some(2),
                rescue: Some(9)
            }
        );
        // Format 1 as before: the state as a word beside exit_code, the rescue on the target.
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json["targets"][0]["steps"][0],
            serde_json::json!({"name": "crossdev", "phase": "primary", "state": "failed",
                "exit_code": 2, "started_us": 1, "duration_ms": 40, "attempts": 1})
        );
        assert_eq!(
            json["targets"][0]["rescue"],
            serde_json::json!({"step": "crossdev", "since_us": 9})
        );
        let back: Checkpoint = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, c);
        // A rescue a file names on a step that did not fail waits for nothing: forgotten.
        let mut odd = json;
        odd["targets"][0]["rescue"]["step"] = "target-env".into();
        let back: Checkpoint = serde_json::from_value(odd).unwrap();
        assert_eq!(back.targets[0].rescue_waiting(), None);
        assert_eq!(back.targets[0].state(), TargetState::Failed);
    }

    #[test]
    fn a_waiting_rescue_shell_is_recorded_until_the_user_decides() {
        let mut c = cp();
        let a = c.targets[0].target.clone();
        // Only a failed step can have a rescue shell.
        assert!(!c.rescue_waiting(&a, "crossdev", 1));
        c.step_started(&a, "crossdev", 1);
        c.step_finished(&a, "crossdev", 2, 5, None);
        assert!(c.rescue_waiting(&a, "crossdev", 7));
        assert_eq!(
            c.target(&a).unwrap().state(),
            TargetState::RescueWaiting { since_us: 7 }
        );
        // Kept in the file, and absent from it when nothing waits.
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json["targets"][0]["rescue"],
            serde_json::json!({"step": "crossdev", "since_us": 7})
        );
        assert!(json["targets"][1].get("rescue").is_none());
        // Resume: the step starts again.
        let mut resumed = c.clone();
        resumed.step_started(&a, "crossdev", 9);
        assert_eq!(resumed.target(&a).unwrap().rescue_waiting(), None);
        assert_eq!(resumed.target(&a).unwrap().state(), TargetState::Running);
        // Retry: the target is reset.
        let mut retried = c.clone();
        retried.reset_target(&a);
        assert_eq!(retried.target(&a).unwrap().rescue_waiting(), None);
        // Abort (or a stop): the worker is gone, the step stays failed.
        let mut aborted = c.clone();
        aborted.worker_exited(&a);
        assert_eq!(aborted.target(&a).unwrap().state(), TargetState::Failed);
        // The crash rule: the shell died with its worker.
        let mut crashed = c.clone();
        crashed.restore();
        assert_eq!(crashed.target(&a).unwrap().state(), TargetState::Failed);
    }

    #[test]
    fn resume_runs_from_the_first_step_not_done() {
        let mut c = cp();
        let a = c.targets[0].target.clone();
        c.step_started(&a, "crossdev", 1);
        c.step_finished(&a, "crossdev", 0, 5, None);
        c.step_started(&a, "target-env", 2);
        c.step_finished(&a, "target-env", 1, 5, None);
        assert_eq!(
            c.target(&a).unwrap().pending_steps(),
            ["target-env", "collect"]
        );
        assert_eq!(c.target(&a).unwrap().state(), TargetState::Failed);
    }

    #[test]
    fn a_target_between_two_steps_waits_live_and_is_interrupted_once_stopped() {
        let mut c = cp();
        let a = c.targets[0].target.clone();
        c.step_started(&a, "crossdev", 1);
        c.step_finished(&a, "crossdev", 0, 5, None);
        assert_eq!(c.target(&a).unwrap().state(), TargetState::Waiting);
        let mut crashed = c.clone();
        crashed.restore();
        assert_eq!(crashed.targets[0].steps[1].state, StepState::Interrupted);
        assert_eq!(
            crashed.target(&a).unwrap().state(),
            TargetState::Interrupted
        );
        assert!(!c.worker_exited(&a), "no running step was interrupted");
        assert_eq!(c.target(&a).unwrap().state(), TargetState::Interrupted);
        assert_eq!(
            c.target(&a).unwrap().pending_steps(),
            ["target-env", "collect"]
        );
        // A target that never started stays waiting.
        let b = c.targets[1].target.clone();
        c.worker_exited(&b);
        assert_eq!(c.target(&b).unwrap().state(), TargetState::Waiting);
    }

    #[test]
    fn a_worker_gone_mid_step_interrupts_the_step() {
        let mut c = cp();
        let b = c.targets[1].target.clone();
        c.step_started(&b, "target-env", 1);
        assert!(c.worker_exited(&b));
        assert_eq!(c.targets[1].steps[0].state, StepState::Interrupted);
        assert!(!c.worker_exited(&b));
    }

    #[test]
    fn rescue_retry_resets_only_that_target_and_keeps_readiness() {
        let mut c = cp();
        let a = c.targets[0].target.clone();
        let b = c.targets[1].target.clone();
        c.step_started(&a, "crossdev", 1);
        c.step_finished(&a, "crossdev", 0, 5, None);
        c.set_toolchain_ready("aarch64-unknown-linux-musl");
        c.step_started(&b, "target-env", 2);
        c.step_finished(&b, "target-env", 0, 5, None);
        c.step_started(&b, "collect", 3);
        c.step_finished(&b, "collect", 1, 5, None);
        assert_eq!(c.reset_target(&b), vec!["target-env", "collect"]);
        assert_eq!(c.targets[1].state(), TargetState::Waiting);
        assert!(c.targets[0].steps[0].state.is_done());
        assert!(c.tuple_ready("aarch64-unknown-linux-musl"));
        let unknown = Target::new("riscv64-unknown-linux-musl", "x").unwrap();
        assert!(c.reset_target(&unknown).is_empty());
    }

    #[test]
    fn retry_resets_every_target_step_and_readiness() {
        let mut c = cp();
        let a = c.targets[0].target.clone();
        c.step_started(&a, "crossdev", 1);
        c.step_finished(&a, "crossdev", 0, 5, None);
        c.set_toolchain_ready("aarch64-unknown-linux-musl");
        c.reset_for_retry();
        assert!(c.targets.iter().all(|t| t.state() == TargetState::Waiting));
        assert!(c.toolchain_ready.is_empty());
        assert_eq!(
            c.targets[0].steps[0].attempts, 1,
            "attempts are history, kept"
        );
    }

    #[test]
    fn tuple_is_ready_on_its_event_or_when_the_primary_phase_is_done() {
        let mut c = cp();
        let a = c.targets[0].target.clone();
        assert!(!c.tuple_ready("aarch64-unknown-linux-musl"));
        assert!(c.set_toolchain_ready("aarch64-unknown-linux-musl"));
        assert!(!c.set_toolchain_ready("aarch64-unknown-linux-musl"));
        assert!(c.tuple_ready("aarch64-unknown-linux-musl"));
        assert!(!c.tuple_ready("x86_64-unknown-linux-musl"));
        c.step_started(&a, "crossdev", 1);
        c.step_finished(&a, "crossdev", 0, 5, None);
        assert!(c.tuple_ready("x86_64-unknown-linux-musl"));
    }
}
