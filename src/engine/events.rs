//! The events of a run: what happened, as the lines of `work/<run>/events.jsonl` carry it,
//! each with `t_us` (microseconds since the Unix epoch, supervisor clock). The file itself is
//! the run directory's (its `events` module). `build-helper status` and the tests read
//! it (e.g. the delay between a toolchain-ready event and the waiting target's first step).

use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The supervisor started (or resumed) the run.
    RunStarted {
        /// `new`, `resume` or `retry`.
        mode: String,
    },
    /// A supervisor-phase step (`stage3`, `mounts`, `archive-history`) changed state.
    RunStep {
        /// Step name.
        step: String,
        /// `started`, `done` or `failed`.
        state: String,
    },
    /// A worker process was started.
    WorkerStarted {
        /// `<tuple>.<name>`.
        target: String,
        /// Its pid.
        pid: u32,
    },
    /// A worker process ended.
    WorkerExited {
        /// `<tuple>.<name>`.
        target: String,
        /// Its exit code.
        code: i32,
    },
    /// A step started.
    StepStarted {
        /// `<tuple>.<name>`.
        target: String,
        /// Step name.
        step: String,
    },
    /// A step ended.
    StepFinished {
        /// `<tuple>.<name>`.
        target: String,
        /// Step name.
        step: String,
        /// Exit code.
        exit_code: i32,
        /// Milliseconds.
        duration_ms: u64,
        /// What the step's process tree cost (CPU time, peak memory); `None` when it could
        /// not be measured, or from an older build.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost: Option<crate::pool::StepCost>,
    },
    /// The run's job pool is served (docs/job-pool.md): `total` tokens.
    JobPoolStarted {
        /// Tokens in the pool (`jobs`).
        total: usize,
    },
    /// A step of a pooled run ended (follows its `step-finished`, or its worker's end): every
    /// token granted to its target is back in the pool.
    JobTokensReturned {
        /// `<tuple>.<name>`.
        target: String,
        /// Step name.
        step: String,
        /// Tokens the target had been granted when the step ended.
        granted: usize,
        /// Of those, tokens its processes held and never wrote back (killed or crashed).
        lost: usize,
        /// Tokens free in the pool now.
        free: usize,
        /// Tokens in the pool.
        total: usize,
    },
    /// The run was torn down and its pool closed: `free == total` means no token was lost.
    JobPoolClosed {
        /// Tokens in the pool.
        total: usize,
        /// Tokens back in the broker's hands when it closed.
        free: usize,
    },
    /// A step failed (follows its `step-finished`): where to look.
    StepFailed {
        /// `<tuple>.<name>`.
        target: String,
        /// Step name.
        step: String,
        /// Exit code.
        exit_code: i32,
        /// The target's log.
        log: String,
    },
    /// An interactive worker opened the rescue shell of a failed step (follows its
    /// `step-failed`) and waits for the user's decision: resume, retry or abort. What was
    /// decided shows in what follows: `step-started` (resume), the target's steps again from
    /// its first (retry), `worker-exited` (abort, or the run stopped).
    RescueWaiting {
        /// `<tuple>.<name>`.
        target: String,
        /// The failed step.
        step: String,
    },
    /// A step's package progress changed, with the remaining-time estimates
    /// ([`crate::progress::eta`]).
    Progress {
        /// `<tuple>.<name>`.
        target: String,
        /// Step name.
        step: String,
        /// What it does: `sync`, `fetch`, `build`, `binpkg`, `install` or `crossdev`.
        phase: crate::progress::Phase,
        /// Packages (repositories, crossdev stages) done.
        done: u32,
        /// Packages in the current emerge; 0 when not known.
        total: u32,
        /// The package (`category/package-version`), repository or stage worked on.
        #[serde(skip_serializing_if = "Option::is_none")]
        current: Option<String>,
        /// The target's remaining milliseconds, when there is a basis for it.
        #[serde(skip_serializing_if = "Option::is_none")]
        eta_ms: Option<u64>,
        /// The run's remaining milliseconds (its longest target's).
        #[serde(skip_serializing_if = "Option::is_none")]
        run_eta_ms: Option<u64>,
    },
    /// A tuple's toolchain is ready.
    ToolchainReady {
        /// The tuple.
        tuple: String,
    },
    /// The run ended.
    RunFinished {
        /// `done`, `failed` or `interrupted`.
        result: String,
    },
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Microseconds since the Unix epoch.
    pub t_us: u64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}
