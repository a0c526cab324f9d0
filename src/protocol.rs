//! Messages between a worker and the supervisor: one JSON object per line over the run's
//! unix socket (`work/<run>/supervisor.sock`, named by [`crate::rundir::sockets`]).
//!
//! Unversioned: a worker is always the supervisor's own executable (`build-helper worker`,
//! started as the supervisor's own `std::env::current_exe`), so both ends speak the same
//! messages; a new message needs no version.

use serde::{Deserialize, Serialize};

use crate::config::Target;

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
        /// The cgroup v2 leaf it runs in, when the worker made one: the supervisor removes it
        /// should the worker be gone before it could (killed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<std::path::PathBuf>,
    },
    /// A step ended.
    StepFinished {
        /// Step name.
        step: String,
        /// Exit code (128 + signal when killed).
        exit_code: i32,
        /// Wall time in milliseconds.
        duration_ms: u64,
        /// What the step's process tree cost (CPU time, peak memory); `None` when it could
        /// not be measured, or from an older build.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost: Option<crate::pool::StepCost>,
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
    /// The running step's package progress changed (Portage's and crossdev's progress
    /// lines in its output, [`crate::progress`]).
    Progress {
        /// Step name.
        step: String,
        /// Where it is.
        progress: crate::progress::Progress,
    },
    /// The rescue flow's retry: reset this target's steps and send `Start` again.
    Retry,
    /// The failed step's rescue shell is open on the worker's terminal and the worker waits
    /// for the user's decision (resume / retry / abort), however long that takes.
    RescueWaiting {
        /// The failed step.
        step: String,
    },
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
    /// Nothing to run (the target's toolchain can no longer come in this run): exit.
    Stop,
}

/// Longest line the supervisor accepts from a worker (bytes, with the `\n`). The largest
/// worker message is a `progress` with a package atom and a few numbers (under 1 KiB); a
/// longer line ends that connection, so no peer makes the supervisor buffer more than this.
pub const MAX_LINE: usize = 64 << 10;

/// Reads one line of at most [`MAX_LINE`] bytes (without its `\n`) from a worker's
/// connection; `Ok(None)` at the end of the stream. At most `MAX_LINE + 1` bytes are
/// buffered whatever the peer sends.
///
/// Errors: I/O, or [`std::io::ErrorKind::InvalidData`] for a longer line.
pub async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut line = Vec::new();
    let n = r
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if line.len() > MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a worker sent a line over {MAX_LINE} bytes"),
        ));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(Some(line))
}

/// Decodes one worker line (JSON, without its `\n`) into a [`WorkerMsg`].
///
/// Errors: the line is not a worker message (serde_json's error, with the column).
pub fn decode_worker(line: &[u8]) -> Result<WorkerMsg, serde_json::Error> {
    serde_json::from_slice(line)
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

    #[tokio::test]
    async fn a_worker_line_over_the_bound_ends_the_reading_and_buffers_no_more() {
        let mut data = encode(&WorkerMsg::AcquireSync).into_bytes();
        data.extend(vec![b'x'; MAX_LINE * 4]);
        let mut r = tokio::io::BufReader::new(&data[..]);
        let first = read_line(&mut r).await.unwrap().unwrap();
        assert_eq!(decode_worker(&first).unwrap(), WorkerMsg::AcquireSync);
        let err = read_line(&mut r).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("over 65536 bytes"), "{err}");
    }

    #[test]
    fn messages_round_trip_as_single_lines() {
        let msg = WorkerMsg::StepFinished {
            step: "target-env".into(),
            exit_code: 1,
            duration_ms: 12,
            cost: Some(crate::pool::StepCost {
                cpu_us: 1_500,
                peak_rss_bytes: 4 << 20,
                source: crate::pool::CostSource::Rusage,
            }),
        };
        let line = encode(&msg);
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(serde_json::from_str::<WorkerMsg>(&line).unwrap(), msg);
    }
}
