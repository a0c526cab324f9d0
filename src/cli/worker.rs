//! `build-helper worker` (internal): runs one target's steps, started by the supervisor.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Target;
use crate::error::UsageError;
use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// The run directory.
    #[arg(long)]
    pub run: PathBuf,
    /// The target, `<tuple>.<name>`.
    #[arg(long)]
    pub target: String,
    /// Someone watches this worker's terminal: on a failed step open a rescue shell and
    /// ask resume / retry / abort instead of stopping.
    #[arg(long)]
    pub interactive: bool,
    /// Join the mount namespace of this supervisor pid first (a worker started by tmux
    /// is outside the supervisor's private namespace).
    #[arg(long)]
    pub join_ns: Option<u32>,
}

/// Runs the target's steps; returns the worker's exit status.
pub(super) fn run(args: Args, sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    if let Some(pid) = args.join_ns {
        crate::worker::join_namespace(sys.as_ref(), pid)?;
    }
    let target = Target::parse(&args.target).map_err(|e| UsageError(e.to_string()))?;
    crate::worker::main(sys.as_ref(), &args.run, &target, args.interactive)
}
