//! The event log of a run: `work/<run>/events.jsonl`, one JSON object per line, appended as
//! things happen, each with `t_us` (microseconds since the Unix epoch, supervisor clock).
//! `build-helper status` and the tests read it (e.g. the delay between a toolchain-ready
//! event and the waiting target's first step).

use std::io::Write;
use std::path::{Path, PathBuf};

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

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// An append-only event log.
pub struct EventLog {
    path: PathBuf,
    file: std::fs::File,
    tee: Option<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.path)
            .finish()
    }
}

impl EventLog {
    /// Opens (appends to) `<run_dir>/events.jsonl`, mode 0600 whatever the umask.
    pub fn open(run_dir: &Path) -> std::io::Result<EventLog> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let path = run_dir.join("events.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(EventLog {
            path,
            file,
            tee: None,
        })
    }

    /// Also writes every record to `out` (one JSON object per line, flushed), e.g. stdout
    /// for `build-helper run --events json`, until a write to it fails (its reader is gone).
    pub fn tee(&mut self, out: Box<dyn Write + Send>) {
        self.tee = Some(out);
    }

    /// Appends an event stamped now; returns the record.
    pub fn append(&mut self, event: Event) -> Record {
        let record = Record {
            t_us: now_us(),
            event,
        };
        if let Ok(mut line) = serde_json::to_string(&record) {
            line.push('\n');
            if let Some(out) = &mut self.tee {
                // A reader that went away (EPIPE, EIO on a hung-up terminal) gets nothing
                // more; the run and this file go on.
                if out
                    .write_all(line.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    self.tee = None;
                }
            }
            if let Err(e) = self.file.write_all(line.as_bytes()) {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "build-helper: cannot append to {}: {e}",
                    self.path.display()
                );
            }
        }
        record
    }

    /// Reads every record of a run's log; malformed lines are skipped.
    pub fn read(run_dir: &Path) -> Vec<Record> {
        std::fs::read_to_string(run_dir.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
