//! `build-helper shell`: opens a shell inside a mounted environment.

use std::path::PathBuf;
use std::sync::Arc;

use crate::explore;
use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// The run (`<primary name>-<date>`).
    pub run: String,
    /// The target (default: the primary).
    #[arg(allow_hyphen_values = true)]
    pub target: Option<String>,
    /// Arguments for the shell, e.g. `-c 'ls /usr'`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// The tree (default: BUILD_HELPER_TREE, else the current directory).
    #[arg(long)]
    pub tree: Option<PathBuf>,
}

/// Runs the shell; returns its exit status.
pub(super) fn run(args: Args, sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    let Args {
        run,
        mut target,
        mut args,
        tree,
    } = args;
    // `shell RUN -- -c CMD`: clap hands `-c` to TARGET; it belongs to the shell.
    if let Some(t) = target.take_if(|t| t.starts_with('-')) {
        args.insert(0, t);
    }
    explore::shell(
        sys.as_ref(),
        &super::tree_arg(tree),
        &run,
        target.as_deref(),
        &args,
    )
}
