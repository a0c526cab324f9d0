//! The run's phases (DESIGN.md "One run" 2–7 and "Processes"): a pure state machine that
//! sequences the whole run — stage3 download and verification, base mounts, stage3
//! extraction, the primary environment's mounts, the steps, the history archive, teardown —
//! from [`RunInput`]s (a phase done or failed, a stop requested, the steps ended) to
//! [`RunAction`]s (fetch the stage3, mount, extract, start the steps, archive, stop the
//! archiver, record a run step in the checkpoint, tear down, end), with no I/O. The
//! supervisor executes each action and feeds its result back; what happens inside the steps
//! phase is the other machine, [`super::machine::Engine`].
//!
//! Rules, in one place:
//! - the stage3 is fetched (download and verification, which runs on the arriving bytes, so
//!   the two are one phase) only for a first build whose `stage3` run step is not done, and
//!   always before anything is mounted (DESIGN.md "Verify before trust");
//! - the verified tarball is extracted after the base mounts, into the primary root; an
//!   update (or a resumed first build whose stage3 is done) needs an environment that is
//!   already there, else the run fails with "start a new run";
//! - the steps phase starts only when the primary environment is mounted; the archive only
//!   when every step of every target is done and nothing stopped the run;
//! - a stop (signal, user) in any phase: the phase in flight is abandoned (an archive in
//!   flight is stopped and its partial output removed, so `latest` never picks it; an
//!   extraction is stopped and its partial directory removed, and mounts in flight are
//!   stopped between two mounts, before teardown), every
//!   run step that was running becomes `interrupted`, everything is torn down, exit 130;
//!   `--resume` starts again at the first run step that is not done;
//! - a phase failing: its run steps become `failed`, teardown, exit 1 for an environment
//!   failure (network, I/O) and 2 for bad input (`src/error.rs`);
//! - teardown happens exactly once, last before the end, on every path.
//!
//! Not here: how a phase is done (supervisor, stage3, mounts, history), the steps' own
//! decisions ([`super::machine`]).

use std::path::PathBuf;

use super::state::StepState;
pub use super::state::{ARCHIVE, MOUNTS, STAGE3};

/// A phase of the run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Downloading the stage3 and verifying it (digests, OpenPGP signatures).
    Download,
    /// Mounting `M` and the base of the primary environment.
    BaseMounts,
    /// Extracting the verified stage3 into the primary root.
    Extraction,
    /// Mounting the primary environment's binds.
    PrimaryMounts,
    /// The targets' steps (workers).
    Steps,
    /// Writing the history archive.
    Archive,
}

impl Phase {
    /// The phase in words, as messages say it ("interrupted during the mounts").
    pub fn words(self) -> &'static str {
        match self {
            Phase::Download => "the stage3 download and verification",
            Phase::BaseMounts | Phase::PrimaryMounts => "the mounts",
            Phase::Extraction => "the stage3 extraction",
            Phase::Steps => "the steps",
            Phase::Archive => "the archive",
        }
    }
}

/// Why a phase failed: decides the exit status (`src/error.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The environment failed (network, I/O, a mount): exit 1.
    Environment(String),
    /// Bad input (a mirror, a key, a history, a file that does not verify): exit 2.
    BadInput(String),
}

impl Failure {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Failure::Environment(m) | Failure::BadInput(m) => m,
        }
    }
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step done and the history archived.
    Done,
    /// The steps ended with a target failed or stopped by its worker (resumable).
    StepsFailed,
    /// The archive failed (the message); the steps are done (resumable).
    ArchiveFailed(String),
    /// A signal or the user stopped the run (`why`: `interrupted`, `terminated`, `quit`).
    Interrupted {
        /// The reason word.
        why: String,
        /// The phase it stopped.
        phase: Phase,
    },
    /// A phase failed, or the run could not go on (e.g. the checkpoint cannot be written).
    Failed {
        /// The phase.
        phase: Phase,
        /// Why.
        failure: Failure,
    },
}

impl Outcome {
    /// The exit status: 0 done, 130 interrupted, 2 bad input, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Done => 0,
            Outcome::Interrupted { .. } => 130,
            Outcome::Failed {
                failure: Failure::BadInput(_),
                ..
            } => 2,
            Outcome::StepsFailed | Outcome::ArchiveFailed(_) | Outcome::Failed { .. } => 1,
        }
    }

    /// The word of the `run-finished` event: `done`, `interrupted` or `failed`.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Interrupted { .. } => "interrupted",
            _ => "failed",
        }
    }
}

/// Where the run is; each state carries what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Not begun.
    Idle,
    /// Downloading and verifying the stage3.
    Downloading,
    /// Mounting the base; `tarball` is the verified stage3 to extract next, if any.
    MountingBase {
        /// The verified stage3.
        tarball: Option<PathBuf>,
    },
    /// Extracting the stage3.
    Extracting,
    /// Mounting the primary environment's binds.
    MountingPrimary,
    /// The steps run; `stop` is set once a stop was asked (the workers are stopping).
    Steps {
        /// The stop asked during the steps, if any.
        stop: Option<Outcome>,
    },
    /// Writing the history archive.
    Archiving,
    /// Ended (after teardown).
    Ended(Outcome),
}

/// What happened, as the run machine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunInput {
    /// The stage3 is downloaded and verified, at this path.
    Fetched(PathBuf),
    /// The base is mounted; `root_present`: the primary root holds an environment (its
    /// `etc/` exists).
    BaseMounted {
        /// Whether the primary root holds an environment.
        root_present: bool,
    },
    /// The stage3 is extracted.
    Extracted,
    /// The primary environment is mounted.
    PrimaryMounted,
    /// Every worker is gone; `all_done`: every step of every target is done.
    StepsEnded {
        /// Whether every step is done.
        all_done: bool,
    },
    /// The history archive is written.
    Archived(PathBuf),
    /// The phase in flight failed.
    Failed(Failure),
    /// A signal or the user asks the run to stop (the reason word).
    Stop(String),
}

/// What the supervisor must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAction {
    /// Download and verify the stage3; answer [`RunInput::Fetched`] or
    /// [`RunInput::Failed`].
    FetchStage3,
    /// Create the source directories and mount `M` and the base (history or tmpfs); answer
    /// [`RunInput::BaseMounted`] or [`RunInput::Failed`].
    MountBase,
    /// Extract the verified stage3 into the primary root (replacing an unfinished one);
    /// answer [`RunInput::Extracted`] or [`RunInput::Failed`].
    Extract(PathBuf),
    /// Mount the primary environment's binds; answer [`RunInput::PrimaryMounted`] or
    /// [`RunInput::Failed`].
    MountPrimary,
    /// Start the steps phase (the workers); answer [`RunInput::StepsEnded`] once every
    /// worker is gone.
    StartSteps,
    /// Ask the running workers to stop (the steps machine's stop).
    StopWorkers,
    /// Write the history archive; answer [`RunInput::Archived`] or [`RunInput::Failed`].
    Archive,
    /// Stop the archive in flight: kill the archiver and remove its partial output.
    StopArchiver,
    /// Stop the extraction in flight and wait until it has removed its partial directory
    /// (before teardown, so nothing writes under a mount being removed).
    StopExtraction,
    /// Stop the mounts in flight between two mounts and wait for them (before teardown).
    StopMounting,
    /// Record a run step's state in the checkpoint (and save it).
    SetRunStep(&'static str, StepState),
    /// Mark the run finished in the checkpoint (and save it).
    MarkFinished,
    /// Tell the user.
    Say(String),
    /// Show the summary (and, for a finished run, offer to keep the mounts).
    Summary(Outcome),
    /// Unmount everything of the run.
    TearDown,
    /// The run is over: exit with [`Outcome::exit_code`].
    End(Outcome),
}

/// How the run begins, from the plan and the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The plan builds from a stage3 (no history).
    pub first_build: bool,
    /// The checkpoint's `stage3` run step is done (a resumed first build).
    pub stage3_done: bool,
}

/// The run machine.
#[derive(Debug, Clone)]
pub struct Run {
    start: Start,
    state: RunState,
    /// Run steps recorded as running and not yet ended.
    running: Vec<&'static str>,
}

impl Run {
    /// A run machine; nothing happens until [`Run::begin`].
    pub fn new(start: Start) -> Run {
        Run {
            start,
            state: RunState::Idle,
            running: Vec::new(),
        }
    }

    /// Where the run is.
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// The phase in flight (`None` before the beginning and after the end).
    pub fn phase(&self) -> Option<Phase> {
        match &self.state {
            RunState::Idle | RunState::Ended(_) => None,
            RunState::Downloading => Some(Phase::Download),
            RunState::MountingBase { .. } => Some(Phase::BaseMounts),
            RunState::Extracting => Some(Phase::Extraction),
            RunState::MountingPrimary => Some(Phase::PrimaryMounts),
            RunState::Steps { .. } => Some(Phase::Steps),
            RunState::Archiving => Some(Phase::Archive),
        }
    }

    fn set(&mut self, step: &'static str, state: StepState, out: &mut Vec<RunAction>) {
        if state == StepState::Running {
            if !self.running.contains(&step) {
                self.running.push(step);
            }
        } else {
            self.running.retain(|s| *s != step);
        }
        out.push(RunAction::SetRunStep(step, state));
    }

    /// The first actions.
    pub fn begin(&mut self) -> Vec<RunAction> {
        let mut out = Vec::new();
        if self.state != RunState::Idle {
            return out;
        }
        if self.start.first_build && !self.start.stage3_done {
            self.state = RunState::Downloading;
            self.set(STAGE3, StepState::Running, &mut out);
            out.push(RunAction::FetchStage3);
        } else {
            self.mount_base(None, &mut out);
        }
        out
    }

    fn mount_base(&mut self, tarball: Option<PathBuf>, out: &mut Vec<RunAction>) {
        self.state = RunState::MountingBase { tarball };
        self.set(MOUNTS, StepState::Running, out);
        out.push(RunAction::MountBase);
    }

    /// Ends the run: every run step still running becomes `state`, then the summary,
    /// teardown and the end.
    fn end(&mut self, outcome: Outcome, state: StepState, out: &mut Vec<RunAction>) {
        for step in std::mem::take(&mut self.running) {
            out.push(RunAction::SetRunStep(step, state));
        }
        out.push(RunAction::Summary(outcome.clone()));
        out.push(RunAction::TearDown);
        out.push(RunAction::End(outcome.clone()));
        self.state = RunState::Ended(outcome);
    }

    /// Applies one input; returns the actions, in order. Inputs that do not fit the state
    /// (a late answer after a stop) are ignored.
    pub fn input(&mut self, input: RunInput) -> Vec<RunAction> {
        let mut out = Vec::new();
        let Some(phase) = self.phase() else {
            return out;
        };
        match (std::mem::replace(&mut self.state, RunState::Idle), input) {
            (RunState::Steps { stop: None }, RunInput::Stop(why)) => {
                self.state = RunState::Steps {
                    stop: Some(Outcome::Interrupted { why, phase }),
                };
                out.push(RunAction::StopWorkers);
            }
            (RunState::Steps { stop: None }, RunInput::Failed(failure)) => {
                self.state = RunState::Steps {
                    stop: Some(Outcome::Failed { phase, failure }),
                };
                out.push(RunAction::StopWorkers);
            }
            (RunState::Steps { stop: Some(s) }, RunInput::Stop(_) | RunInput::Failed(_)) => {
                // Already stopping: the first reason stands.
                self.state = RunState::Steps { stop: Some(s) };
            }
            (RunState::Steps { stop }, RunInput::StepsEnded { all_done }) => match stop {
                Some(outcome) => self.end(outcome, StepState::Interrupted, &mut out),
                None if all_done => {
                    self.state = RunState::Archiving;
                    self.set(ARCHIVE, StepState::Running, &mut out);
                    out.push(RunAction::Archive);
                }
                None => self.end(Outcome::StepsFailed, StepState::Interrupted, &mut out),
            },
            (_, RunInput::Stop(why)) => {
                match phase {
                    Phase::Archive => out.push(RunAction::StopArchiver),
                    Phase::Extraction => out.push(RunAction::StopExtraction),
                    Phase::BaseMounts | Phase::PrimaryMounts => out.push(RunAction::StopMounting),
                    _ => {}
                }
                self.end(
                    Outcome::Interrupted { why, phase },
                    StepState::Interrupted,
                    &mut out,
                );
            }
            (RunState::Archiving, RunInput::Failed(failure)) => {
                // Its partial output must not look like a history.
                out.push(RunAction::StopArchiver);
                let message = failure.message().to_string();
                self.end(
                    Outcome::ArchiveFailed(message),
                    StepState::RUN_STEP_FAILED,
                    &mut out,
                );
            }
            (_, RunInput::Failed(failure)) => {
                self.end(
                    Outcome::Failed { phase, failure },
                    StepState::RUN_STEP_FAILED,
                    &mut out,
                );
            }
            (RunState::Downloading, RunInput::Fetched(tarball)) => {
                self.mount_base(Some(tarball), &mut out)
            }
            (RunState::MountingBase { tarball }, RunInput::BaseMounted { root_present }) => {
                match tarball {
                    Some(tarball) => {
                        self.state = RunState::Extracting;
                        out.push(RunAction::Extract(tarball));
                    }
                    None if self.start.first_build && !root_present => self.end(
                        Outcome::Failed {
                            phase,
                            failure: Failure::Environment(
                                "the environment of this run is gone (a tmpfs keeps nothing \
                                 after its run ends); start a new run"
                                    .into(),
                            ),
                        },
                        StepState::RUN_STEP_FAILED,
                        &mut out,
                    ),
                    None => {
                        self.state = RunState::MountingPrimary;
                        out.push(RunAction::MountPrimary);
                    }
                }
            }
            (RunState::Extracting, RunInput::Extracted) => {
                self.set(STAGE3, StepState::RUN_STEP_DONE, &mut out);
                self.state = RunState::MountingPrimary;
                out.push(RunAction::MountPrimary);
            }
            (RunState::MountingPrimary, RunInput::PrimaryMounted) => {
                self.set(MOUNTS, StepState::RUN_STEP_DONE, &mut out);
                self.state = RunState::Steps { stop: None };
                out.push(RunAction::StartSteps);
            }
            (RunState::Archiving, RunInput::Archived(path)) => {
                self.set(ARCHIVE, StepState::RUN_STEP_DONE, &mut out);
                out.push(RunAction::MarkFinished);
                out.push(RunAction::Say(format!(
                    "history saved as {}",
                    path.display()
                )));
                self.end(Outcome::Done, StepState::Interrupted, &mut out);
            }
            (state, _) => self.state = state,
        }
        out
    }
}

#[cfg(test)]
mod tests;
