//! The run's state machine (DESIGN.md "Processes"): [`Input`]s in (worker messages, worker
//! exits, mount results, stop requests), [`Action`]s out (mount a waiting target's stacked
//! environment, start or stop a worker, grant the sync lock, save the checkpoint, record an
//! event, kill what a dead worker left), with no I/O. The supervisor executes the actions and
//! feeds the results back (a [`Action::Mount`] is answered by [`Input::Mounted`]).
//!
//! Each target's worker has one typed state ([`Worker`]: idle, live with its [`Stage`],
//! connections and exit code, or gone with its code).
//!
//! Rules, in one place:
//! - every waiting environment is prepared before any worker starts, never the primary's
//!   (it is mounted with the base);
//! - a worker is gone once its process exited and its connections closed, and while a
//!   connection has not said whose it is, no worker is gone (it may be that worker's);
//! - a failure is notified once: when its rescue shell waits in a watched run, when the
//!   step fails otherwise;
//! - the primary worker is released at once; a secondary one when its tuple's toolchain is
//!   ready (its `toolchain-ready` was recorded, or the primary phase is done), after its
//!   stacked environment is mounted; when the primary worker is gone or the run stops, the
//!   waiting ones are told to stop;
//! - only the running step that the plan says announces a tuple may announce it;
//! - the repository sync lock goes to one worker at a time, in the order asked; a worker that
//!   is gone loses its place and the lock;
//! - a worker gone while a step runs leaves that step `interrupted`, and everything it left
//!   in its root is killed;
//! - after a stop nothing is released or started again;
//! - a rescue shell that waits is recorded (checkpoint and `rescue-waiting` event) only for a
//!   step that failed; it ends with the user's decision (see [`crate::engine::state`]);
//! - the supervisor's own steps (`stage3`, `mounts`, `archive-history`) and the run's end
//!   are recorded here too ([`Input::RunStep`], [`Input::Finished`]).
//!
//! Not here: sockets, processes, mounts, files (the supervisor), what a step does (recipe).

use std::collections::{BTreeMap, VecDeque};

use super::events::Event;
use super::state::{Checkpoint, StepState};
use crate::config::Target;
use crate::plan::Plan;
use crate::protocol::SupervisorMsg;

/// What the engine knows of a target from the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInfo {
    /// The target.
    pub target: Target,
    /// Its steps in order: name and the tuples it may announce ready.
    pub steps: Vec<(String, Vec<String>)>,
    /// Its log file, for messages.
    pub log: String,
}

/// Something that happened, as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A connection to the supervisor's socket opened (whose it is comes with its hello).
    Connected,
    /// A worker connected and said which target it runs.
    Hello(Target),
    /// A connection closed: a worker's (its target) or one that never said hello (`None`).
    Disconnected(Option<Target>),
    /// A step started (`now_us`: microseconds since the Unix epoch).
    StepStarted {
        /// The worker's target.
        target: Target,
        /// The step.
        step: String,
        /// When.
        now_us: u64,
    },
    /// A step ended.
    StepFinished {
        /// The worker's target.
        target: Target,
        /// The step.
        step: String,
        /// Its exit code (128 + signal when killed).
        exit_code: i32,
        /// Its wall time, milliseconds.
        duration_ms: u64,
        /// What its process tree cost, when measured.
        cost: Option<crate::pool::StepCost>,
    },
    /// A worker forwarded `toolchain-ready <tuple>` from its running step.
    ToolchainReady {
        /// The worker's target.
        target: Target,
        /// The tuple announced.
        tuple: String,
    },
    /// A worker asks for the repository sync lock.
    AcquireSync(Target),
    /// A worker gives the sync lock back.
    ReleaseSync(Target),
    /// A worker's rescue flow asks to run its target again from its first step.
    Retry(Target),
    /// A worker opened the rescue shell of its failed `step` and waits for the user.
    RescueWaiting {
        /// The worker's target.
        target: Target,
        /// The failed step.
        step: String,
        /// When, microseconds since the Unix epoch.
        now_us: u64,
    },
    /// The answer to [`Action::Mount`]: `Err` carries the message.
    Mounted {
        /// The target.
        target: Target,
        /// The outcome.
        result: Result<(), String>,
    },
    /// A worker's process exited with `code`. The worker is gone once its connection has
    /// closed too (its last messages may still be in flight), or when it never connected;
    /// while a connection has not said whose it is, no exited worker is gone yet (it may be
    /// that worker's).
    WorkerExited {
        /// The target.
        target: Target,
        /// Its exit code (128 + signal when killed).
        code: i32,
    },
    /// The run stops (signal, user, or an error that leaves no way on).
    Stop,
    /// The supervisor's own step `name` (`stage3`, `mounts`, `archive-history`: the run
    /// machine's [`super::run::RunAction::SetRunStep`]) is now `state`, at `now_us`.
    RunStep {
        /// The step.
        name: &'static str,
        /// Its new state.
        state: StepState,
        /// When, microseconds since the Unix epoch.
        now_us: u64,
    },
    /// The run is finished: nothing is left to resume ([`super::run::RunAction::MarkFinished`]).
    Finished,
}

/// What the supervisor must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make, ahead of its release, what a secondary target's environment needs that does
    /// not depend on its toolchain (at the beginning of the run, before any worker starts:
    /// it is done while the target waits). Never the primary's: its environment is mounted
    /// with the base.
    PrepareMount(Target),
    /// Start the worker of a target (at the beginning of the run).
    StartWorker(Target),
    /// Mount a secondary target's stacked environment (idempotent), then answer
    /// [`Input::Mounted`].
    Mount(Target),
    /// Send a message to a target's worker.
    Send(Target, SupervisorMsg),
    /// Ask every running worker to stop (SIGTERM: each kills its step's process group).
    SignalWorkers,
    /// A target's worker is gone (process exited, connection closed): forget its process,
    /// and let the front end show the rest of its output.
    WorkerGone(Target),
    /// Kill every process left in a target's root (its worker is gone).
    KillLeftovers(Target),
    /// Save the checkpoint (it changed).
    SaveCheckpoint,
    /// Record an event.
    Event(Event),
    /// Tell the user who may not be watching, with this title (the terminal's bell and
    /// title, the starter's `notify` command with the event just recorded): one word per
    /// failure, when a watched worker's rescue shell waits, or when an unwatched step fails.
    Notify(String),
    /// Tell the user.
    Say(String),
}

/// Where a target's worker stands with the engine, once it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Started; it has not said which target it runs yet.
    Started,
    /// Said hello; waits for its toolchain (a secondary target).
    Waiting,
    /// Told what to do (or to stop), or its environment's mount was asked for.
    Released,
}

/// A target's worker as the engine sees it: one per target, the whole of what the engine
/// knows about it ([`Engine::worker`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Worker {
    /// No worker runs: not started (before the run's start, or nothing left to do), or its
    /// start failed.
    #[default]
    Idle,
    /// Its process runs, or has exited and its last messages may still be in flight.
    Live {
        /// Where it stands.
        stage: Stage,
        /// Its connections open now.
        connections: usize,
        /// Its process exited with this code: it is gone once `connections` is 0 (and no
        /// connection that has not said whose it is is open).
        exited: Option<i32>,
    },
    /// Gone: its process exited with `code` and its connections closed.
    Gone {
        /// The exit code (128 + signal when killed).
        code: i32,
    },
}

impl Worker {
    /// A started worker.
    fn started() -> Worker {
        Worker::Live {
            stage: Stage::Started,
            connections: 0,
            exited: None,
        }
    }

    /// Whether its process runs (or its end is not settled yet).
    pub fn is_live(&self) -> bool {
        matches!(self, Worker::Live { .. })
    }

    /// Whether it said hello and waits to be released.
    fn is_waiting(&self) -> bool {
        matches!(
            self,
            Worker::Live {
                stage: Stage::Waiting,
                ..
            }
        )
    }
}

/// The engine: the checkpoint plus what the run's workers are doing.
#[derive(Debug, Clone)]
pub struct Engine {
    targets: Vec<TargetInfo>,
    cp: Checkpoint,
    /// Each target's worker (absent: [`Worker::Idle`]).
    workers: BTreeMap<Target, Worker>,
    /// Open connections that have not said whose they are.
    unidentified: usize,
    sync_holder: Option<Target>,
    sync_queue: VecDeque<Target>,
    stopping: bool,
    /// A person watches the workers' terminals: a failed step opens a rescue shell, and the
    /// notification waits for it.
    watched: bool,
}

impl Engine {
    /// An engine for `plan` with checkpoint `cp` (fresh, restored or reset for retry).
    pub fn new(plan: &Plan, cp: Checkpoint) -> Engine {
        let targets = plan
            .targets
            .iter()
            .map(|t| TargetInfo {
                target: t.target.clone(),
                steps: t
                    .steps
                    .iter()
                    .map(|s| (s.name.clone(), s.announces.clone()))
                    .collect(),
                log: plan.log_path(&t.target).display().to_string(),
            })
            .collect();
        Engine::from_parts(targets, cp)
    }

    /// An engine from its parts (primary target first).
    pub fn from_parts(targets: Vec<TargetInfo>, cp: Checkpoint) -> Engine {
        Engine {
            targets,
            cp,
            workers: BTreeMap::new(),
            unidentified: 0,
            sync_holder: None,
            sync_queue: VecDeque::new(),
            stopping: false,
            watched: false,
        }
    }

    /// The same engine, told whether a person watches the workers' terminals (the TUI,
    /// tmux): then a failure is notified when its rescue shell waits, otherwise when the
    /// step fails.
    pub fn watched(mut self, watched: bool) -> Engine {
        self.watched = watched;
        self
    }

    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.cp
    }

    /// True once the run is stopping.
    pub fn stopping(&self) -> bool {
        self.stopping
    }

    /// True while any worker runs.
    pub fn any_running(&self) -> bool {
        self.workers.values().any(Worker::is_live)
    }

    /// `target`'s worker.
    pub fn worker(&self, target: &Target) -> Worker {
        self.workers.get(target).copied().unwrap_or_default()
    }

    fn worker_mut(&mut self, target: &Target) -> &mut Worker {
        self.workers.entry(target.clone()).or_default()
    }

    fn primary(&self) -> Option<&Target> {
        self.targets.first().map(|t| &t.target)
    }

    /// The start of the steps phase: a worker for every target with steps left (the
    /// secondary ones connect and wait for their toolchain).
    pub fn start(&mut self) -> Vec<Action> {
        if self.stopping {
            return Vec::new();
        }
        let todo: Vec<Target> = self
            .targets
            .iter()
            .map(|t| t.target.clone())
            .filter(|t| {
                self.cp
                    .target(t)
                    .is_some_and(|r| !r.pending_steps().is_empty())
            })
            .collect();
        let primary = self.primary().cloned();
        let mut out: Vec<Action> = self
            .targets
            .iter()
            .map(|t| &t.target)
            .filter(|t| Some(*t) != primary.as_ref())
            .map(|t| Action::PrepareMount(t.clone()))
            .collect();
        out.extend(todo.into_iter().map(|t| {
            self.workers.insert(t.clone(), Worker::started());
            Action::StartWorker(t)
        }));
        out
    }

    /// A worker could not be started: it never runs (its target stays as it is).
    pub fn start_failed(&mut self, target: &Target) -> Vec<Action> {
        self.workers.insert(target.clone(), Worker::Idle);
        self.release()
    }

    /// Applies one input; returns the actions, in order.
    pub fn input(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        // Only these can end a worker (a hello may be the last stranger's): the others do
        // not look through every worker on the hot path of step messages.
        let may_end = matches!(
            input,
            Input::Hello(_) | Input::Disconnected(_) | Input::WorkerExited { .. }
        );
        match input {
            Input::Connected => self.unidentified += 1,
            Input::Hello(target) => {
                self.unidentified = self.unidentified.saturating_sub(1);
                let worker = self.worker_mut(&target);
                match worker {
                    Worker::Live {
                        stage, connections, ..
                    } => {
                        *connections += 1;
                        if *stage == Stage::Started {
                            *stage = Stage::Waiting;
                        }
                    }
                    // Not started by this engine, or gone: it waits like any other.
                    Worker::Idle | Worker::Gone { .. } => {
                        *worker = Worker::Live {
                            stage: Stage::Waiting,
                            connections: 1,
                            exited: None,
                        }
                    }
                }
            }
            Input::Disconnected(None) => {
                self.unidentified = self.unidentified.saturating_sub(1);
            }
            Input::Disconnected(Some(target)) => {
                if let Worker::Live { connections, .. } = self.worker_mut(&target) {
                    *connections = connections.saturating_sub(1);
                }
            }
            Input::StepStarted {
                target,
                step,
                now_us,
            } => {
                self.cp.step_started(&target, &step, now_us);
                out.push(Action::SaveCheckpoint);
                out.push(Action::Event(Event::StepStarted {
                    target: target.to_string(),
                    step,
                }));
            }
            Input::StepFinished {
                target,
                step,
                exit_code,
                duration_ms,
                cost,
            } => {
                self.cp
                    .step_finished(&target, &step, exit_code, duration_ms, cost);
                out.push(Action::SaveCheckpoint);
                out.push(Action::Event(Event::StepFinished {
                    target: target.to_string(),
                    step: step.clone(),
                    exit_code,
                    duration_ms,
                    cost,
                }));
                if exit_code != 0 {
                    let log = self
                        .info(&target)
                        .map(|i| i.log.clone())
                        .unwrap_or_default();
                    let title = format!("{target}: {step} failed");
                    out.push(Action::Event(Event::StepFailed {
                        target: target.to_string(),
                        log,
                        step,
                        exit_code,
                    }));
                    if !self.watched {
                        out.push(Action::Notify(title));
                    }
                }
            }
            Input::ToolchainReady { target, tuple } => {
                self.toolchain_ready(&target, tuple, &mut out)
            }
            Input::AcquireSync(target) => {
                if !self.sync_queue.contains(&target) && self.sync_holder.as_ref() != Some(&target)
                {
                    self.sync_queue.push_back(target);
                }
                self.grant_sync(&mut out);
            }
            Input::ReleaseSync(target) => {
                if self.sync_holder.as_ref() == Some(&target) {
                    self.sync_holder = None;
                    self.grant_sync(&mut out);
                }
            }
            Input::RescueWaiting {
                target,
                step,
                now_us,
            } => {
                if self.cp.rescue_waiting(&target, &step, now_us) {
                    let title = format!("{target}: {step} failed, rescue shell waiting");
                    out.push(Action::SaveCheckpoint);
                    out.push(Action::Event(Event::RescueWaiting {
                        target: target.to_string(),
                        step,
                    }));
                    out.push(Action::Notify(title));
                } else {
                    out.push(Action::Say(format!(
                        "ignored: {target} says a rescue shell waits for step {step}, which \
                         has not failed"
                    )));
                }
            }
            Input::Retry(target) => {
                let steps = self.cp.reset_target(&target);
                out.push(Action::SaveCheckpoint);
                out.push(Action::Send(target, SupervisorMsg::Start { steps }));
            }
            Input::Mounted { target, result } => {
                let msg = match result {
                    Ok(()) if !self.stopping => self.start_message(&target),
                    Ok(()) => SupervisorMsg::Stop,
                    Err(e) => {
                        out.push(Action::Say(format!(
                            "cannot mount the environment of {target}: {e}"
                        )));
                        SupervisorMsg::Stop
                    }
                };
                out.push(Action::Send(target, msg));
            }
            Input::WorkerExited { target, code } => match self.worker_mut(&target) {
                Worker::Live { exited, .. } => *exited = Some(code),
                // Never seen running: gone at once.
                worker => {
                    *worker = Worker::Live {
                        stage: Stage::Released,
                        connections: 0,
                        exited: Some(code),
                    }
                }
            },
            Input::RunStep {
                name,
                state,
                now_us,
            } => {
                self.cp.set_run_step(name, state, now_us);
                out.push(Action::SaveCheckpoint);
                out.push(Action::Event(Event::RunStep {
                    step: name.into(),
                    state: state.word().into(),
                }));
            }
            Input::Finished => {
                self.cp.finished = true;
                out.push(Action::SaveCheckpoint);
            }
            Input::Stop => {
                if !self.stopping {
                    self.stopping = true;
                    out.push(Action::SignalWorkers);
                }
            }
        }
        if may_end {
            self.settle(&mut out);
        }
        out.extend(self.release());
        out
    }

    /// Every exited worker whose connections have all closed is gone (none is while a
    /// connection has not said whose it is).
    fn settle(&mut self, out: &mut Vec<Action>) {
        if self.unidentified > 0 {
            return;
        }
        let gone: Vec<(Target, i32)> = self
            .workers
            .iter()
            .filter_map(|(t, w)| match w {
                Worker::Live {
                    connections: 0,
                    exited: Some(code),
                    ..
                } => Some((t.clone(), *code)),
                _ => None,
            })
            .collect();
        for (target, code) in gone {
            out.push(Action::WorkerGone(target.clone()));
            self.gone(target, code, out);
        }
    }

    fn info(&self, target: &Target) -> Option<&TargetInfo> {
        self.targets.iter().find(|t| &t.target == target)
    }

    fn toolchain_ready(&mut self, target: &Target, tuple: String, out: &mut Vec<Action>) {
        let running = self.cp.target(target).and_then(|r| {
            r.steps
                .iter()
                .find(|s| s.state == StepState::Running)
                .map(|s| s.name.clone())
        });
        let allowed = running.as_ref().is_some_and(|step| {
            self.info(target)
                .and_then(|i| i.steps.iter().find(|(n, _)| n == step))
                .is_some_and(|(_, announces)| announces.contains(&tuple))
        });
        if !allowed {
            out.push(Action::Say(format!(
                "ignored: {target} announced toolchain-ready {tuple} from step {}, which the \
                 plan does not let announce it",
                running.as_deref().unwrap_or("(none running)")
            )));
            return;
        }
        if self.cp.set_toolchain_ready(&tuple) {
            out.push(Action::SaveCheckpoint);
            out.push(Action::Event(Event::ToolchainReady { tuple }));
        }
    }

    fn grant_sync(&mut self, out: &mut Vec<Action>) {
        if self.sync_holder.is_none() {
            if let Some(next) = self.sync_queue.pop_front() {
                self.sync_holder = Some(next.clone());
                out.push(Action::Send(next, SupervisorMsg::SyncGranted));
            }
        }
    }

    fn gone(&mut self, target: Target, code: i32, out: &mut Vec<Action>) {
        self.workers.insert(target.clone(), Worker::Gone { code });
        out.push(Action::KillLeftovers(target.clone()));
        if self.cp.worker_exited(&target) {
            out.push(Action::Say(format!(
                "the worker of {target} ended (exit {code}) during a step: the step is recorded \
                 as interrupted"
            )));
        }
        out.push(Action::SaveCheckpoint);
        out.push(Action::Event(Event::WorkerExited {
            target: target.to_string(),
            code,
        }));
        self.sync_queue.retain(|t| t != &target);
        if self.sync_holder.as_ref() == Some(&target) {
            self.sync_holder = None;
            self.grant_sync(out);
        }
    }

    /// `Start` with the target's steps left, or `Stop` when none are.
    fn start_message(&self, target: &Target) -> SupervisorMsg {
        let steps = self
            .cp
            .target(target)
            .map(|r| r.pending_steps())
            .unwrap_or_default();
        if steps.is_empty() {
            SupervisorMsg::Stop
        } else {
            SupervisorMsg::Start { steps }
        }
    }

    /// Marks a waiting worker released.
    fn release_one(&mut self, target: &Target) {
        if let Worker::Live { stage, .. } = self.worker_mut(target) {
            *stage = Stage::Released;
        }
    }

    /// Releases every connected waiting worker whose toolchain is ready; tells the waiting
    /// ones whose toolchain can no longer come (primary gone, or stopping) to stop.
    fn release(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        let primary = self.primary().cloned();
        let primary_alive = primary.as_ref().is_some_and(|p| self.worker(p).is_live());
        // In plan order, so that decisions do not depend on how targets sort.
        let waiting: Vec<Target> = self
            .targets
            .iter()
            .map(|i| &i.target)
            .filter(|t| self.worker(t).is_waiting())
            .cloned()
            .collect();
        for target in waiting {
            let is_primary = primary.as_ref() == Some(&target);
            let ready = is_primary || self.cp.tuple_ready(&target.tuple);
            if ready && !self.stopping {
                self.release_one(&target);
                if is_primary {
                    out.push(Action::Send(target.clone(), self.start_message(&target)));
                } else {
                    out.push(Action::Mount(target));
                }
            } else if !primary_alive || self.stopping {
                self.release_one(&target);
                out.push(Action::Send(target, SupervisorMsg::Stop));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
