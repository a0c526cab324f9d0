//! `build-helper status`: shows runs, or one run's targets and steps (text or JSON).

use std::path::PathBuf;
use std::sync::Arc;

use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// The run (`<primary name>-<date>`).
    pub run: Option<String>,
    /// Print the status as a JSON document (format 1: state, progress, ETA and durations of
    /// every target and step; docs/status-json.md).
    #[arg(long)]
    pub json: bool,
    /// The tree (default: BUILD_HELPER_TREE, else the current directory).
    #[arg(long)]
    pub tree: Option<PathBuf>,
}

/// Prints the status.
pub(super) fn run(args: Args, _sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    crate::commands::status(&super::tree_arg(args.tree), args.run.as_deref(), args.json)?;
    Ok(0)
}
