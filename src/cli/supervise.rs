//! `build-helper supervise` (internal): supervises a prepared run in its own session, started by `run --ui tui`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// The run directory.
    #[arg(long)]
    pub run: PathBuf,
    /// new, resume or retry.
    #[arg(long)]
    pub mode: String,
    /// The inherited descriptor holding the run directory's lock.
    #[arg(long)]
    pub lock_fd: i32,
}

/// Supervises the run to its end; returns the run's exit status.
pub(super) fn run(args: Args, sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    crate::attach::daemon::serve(sys, &args.run, &args.mode, args.lock_fd)
}
