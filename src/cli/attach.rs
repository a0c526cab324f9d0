//! `build-helper attach`: opens the TUI on a live run from any terminal.

use std::path::PathBuf;
use std::sync::Arc;

use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// The run (default: the tree's live run).
    pub run: Option<String>,
    /// The tree (default: BUILD_HELPER_TREE, else the current directory).
    #[arg(long)]
    pub tree: Option<PathBuf>,
}

/// Attaches until the user detaches; for a run that is not live, prints its status.
pub(super) fn run(args: Args, _sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    crate::attach::daemon::command(&super::tree_arg(args.tree), args.run.as_deref())
}
