//! The pool's errors: each names what failed, where (path, target, input) and what to do.

use std::path::PathBuf;

/// Everything the job pool can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The pool was configured with no tokens or too many.
    #[error("bad job count {jobs}: {why}")]
    BadJobs {
        /// The job count as given.
        jobs: usize,
        /// What is wrong with it.
        why: String,
    },
    /// A target name that cannot name a fifo (empty, `.`/`..`, a `/`, a NUL, too long).
    #[error("target `{target}` cannot name a jobserver fifo: {why}; targets are `<tuple>.<name>`")]
    BadTarget {
        /// The target as given.
        target: String,
        /// What is wrong with it.
        why: String,
    },
    /// The same target was given twice.
    #[error("target `{0}` is given twice; each target gets one jobserver fifo")]
    DuplicateTarget(String),
    /// A call named a target the pool does not serve.
    #[error("the job pool serves no target `{0}`; start the broker with every target of the run")]
    UnknownTarget(String),
    /// A system call on a path failed (mkfifo, open, read, write, ioctl, inotify, cgroup files).
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (e.g. "cannot create the jobserver fifo").
        action: &'static str,
        /// The path it was done on.
        path: PathBuf,
        /// The error from the system.
        #[source]
        source: std::io::Error,
    },
    /// A /proc or cgroup file did not have the format its manual page gives.
    #[error("unexpected content in {}: {why}", path.display())]
    Format {
        /// The file read.
        path: PathBuf,
        /// What was expected and not found.
        why: String,
    },
    /// `make --version` printed something that is not GNU make's version line.
    #[error(
        "cannot read a GNU make version from `{0}`; the environment's `make --version` must \
         start with `GNU Make <major>.<minor>`"
    )]
    BadMakeVersion(String),
    /// The broker's thread is gone (it panicked); the pool cannot serve tokens any more.
    #[error("the job pool's broker thread has stopped; the run must be restarted")]
    BrokerGone,
}

impl PoolError {
    /// An [`PoolError::Io`] for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        PoolError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
