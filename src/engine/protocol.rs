//! Messages between a worker and the supervisor: one JSON object per line over the run's
//! unix socket (`work/<run>/supervisor.sock`).

use serde::{Deserialize, Serialize};

use crate::config::Target;

/// File name of the supervisor's socket inside the run directory.
pub const SOCKET: &str = "supervisor.sock";

/// Worker -> supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "kebab-case")]
pub enum WorkerMsg {
    /// First message: which target this worker runs.
    Hello {
        /// The target.
        target: Target,
        /// The worker's process id.
        pid: u32,
    },
    /// A step starts.
    StepStarted {
        /// Step name.
        step: String,
    },
    /// A step ended.
    StepFinished {
        /// Step name.
        step: String,
        /// Exit code (128 + signal when killed).
        exit_code: i32,
        /// Wall time in milliseconds.
        duration_ms: u64,
    },
    /// A tuple's cross toolchain is ready (announced by `crossdev` or `rust-cross`).
    ToolchainReady {
        /// The tuple.
        tuple: String,
    },
    /// Asks for the repository sync lock; the supervisor answers `SyncGranted`.
    AcquireSync,
    /// Gives the sync lock back.
    ReleaseSync,
    /// The rescue flow's retry: reset this target's steps and send `Start` again.
    Retry,
}

/// Supervisor -> worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "kebab-case")]
pub enum SupervisorMsg {
    /// The steps to run, in order (the engine's resume / retry decision); sent after
    /// `Hello`, and again in answer to `Retry`.
    Start {
        /// Step names.
        steps: Vec<String>,
    },
    /// The sync lock is this worker's until it sends `ReleaseSync`.
    SyncGranted,
}

/// Encodes a message as one line.
pub fn encode<T: Serialize>(msg: &T) -> String {
    let mut line = serde_json::to_string(msg).unwrap_or_else(|_| "{}".into());
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_single_lines() {
        let msg = WorkerMsg::StepFinished {
            step: "target-env".into(),
            exit_code: 1,
            duration_ms: 12,
        };
        let line = encode(&msg);
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(serde_json::from_str::<WorkerMsg>(&line).unwrap(), msg);
    }
}
