//! What a run directory `<tree>/work/<run>/` holds: the name of every file and socket in it,
//! and the format version its state files carry. The one place that says where a run's files
//! are; everything else asks here (or through the rest of [`super`]).

use std::path::{Path, PathBuf};

/// `<tree>/work`.
pub fn work(tree: &Path) -> PathBuf {
    tree.join("work")
}

/// The format version of plan.json, checkpoint.json and journal.json written by this build.
pub const FORMAT: u32 = 1;

/// The plan's file name.
pub const PLAN: &str = "plan.json";
/// The checkpoint snapshot's file name (its log: `cplog::LOG`).
pub const CHECKPOINT: &str = "checkpoint.json";
/// The lock file's name.
pub const LOCK: &str = "lock";
/// The event log's file name (`events`).
pub const EVENTS: &str = "events.jsonl";
/// The mount journal's header file name (its log: `rundir::journal::LOG`).
pub const JOURNAL: &str = "journal.json";
/// The detached supervisor's standard output and error (`run --detach`).
pub const SUPERVISOR_LOG: &str = "supervisor.log";
/// The tmux front end's record of its session and windows.
pub const TMUX_RECORD: &str = "tmux.json";
/// The directory of the run's logs (0700).
pub const LOGS: &str = "logs";
/// The directory of the job pool's fifos.
pub const JOBSERVER: &str = "jobserver";
/// The job pool's state while the run lives (written by the supervisor, read by `status`).
pub const POOL: &str = "pool.json";

/// `<run_dir>/jobserver`: the job pool's fifos, one per target (docs/job-pool.md).
pub fn jobserver_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(JOBSERVER)
}

/// `<run_dir>/logs`.
pub fn logs(run_dir: &Path) -> PathBuf {
    run_dir.join(LOGS)
}

/// The log of one target's steps: `<run_dir>/logs/<target>.log`.
pub fn step_log(run_dir: &Path, target: &dyn std::fmt::Display) -> PathBuf {
    logs(run_dir).join(format!("{target}.log"))
}

/// The recording of one terminal (a target's, or `supervisor`): `<run_dir>/logs/<name>.tty.log`.
pub fn tty_log(run_dir: &Path, name: &str) -> PathBuf {
    logs(run_dir).join(format!("{name}.tty.log"))
}

/// Where notifications that could not be shown are kept: `<run_dir>/logs/notify.log`.
pub fn notify_log(run_dir: &Path) -> PathBuf {
    logs(run_dir).join("notify.log")
}

/// The directory of run `run_id` in `tree`: `<tree>/work/<run_id>` (the id is not checked:
/// [`super::open`] checks it).
pub fn dir(tree: &Path, run_id: &str) -> PathBuf {
    work(tree).join(run_id)
}

/// A fresh generation number: the time in microseconds (unique per run directory, which one
/// supervisor at a time writes).
pub fn new_gen(after: u64) -> u64 {
    crate::sys::now_us().max(after + 1)
}
