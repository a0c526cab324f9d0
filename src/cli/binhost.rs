//! `build-helper binhost`: writes the Packages index of every package directory of a mounted run.

use std::path::PathBuf;
use std::sync::Arc;

use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// The run (`<primary name>-<date>`).
    pub run: String,
    /// The tree (default: BUILD_HELPER_TREE, else the current directory).
    #[arg(long)]
    pub tree: Option<PathBuf>,
}

/// Indexes the run's package directories.
pub(super) fn run(args: Args, sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    crate::binhost::command(sys.as_ref(), &super::tree_arg(args.tree), &args.run)
}
