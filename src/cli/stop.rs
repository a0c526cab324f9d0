//! `build-helper stop`: stops a live run from any terminal, as Ctrl-C would.

use std::path::PathBuf;
use std::sync::Arc;

use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// The run (`<primary name>-<date>`; default: the tree's live run).
    pub run: Option<String>,
    /// Seconds to wait for the run to have stopped.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// The tree (default: BUILD_HELPER_TREE, else the current directory).
    #[arg(long)]
    pub tree: Option<PathBuf>,
}

/// Stops the run; 0 stopped, 1 not within the timeout, 2 no such live run.
pub(super) fn run(args: Args, _sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    crate::stop::command(
        &super::tree_arg(args.tree),
        args.run.as_deref(),
        std::time::Duration::from_secs(args.timeout),
        &mut std::io::stdout(),
    )
}
