//! `build-helper umount`: removes every mount of a run, also after its supervisor was killed.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::UsageError;
use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// The run (`build-helper status` lists them); or give --all.
    pub run: Option<String>,
    /// Every run of the tree.
    #[arg(long, conflicts_with = "run")]
    pub all: bool,
    /// The tree (default: BUILD_HELPER_TREE, else the current directory).
    #[arg(long)]
    pub tree: Option<PathBuf>,
}

/// Unmounts the run (or, with `--all`, every run of the tree).
pub(super) fn run(args: Args, sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    if args.run.is_none() && !args.all {
        return Err(UsageError(
            "umount needs a run (`build-helper status` lists them), or --all for every run of \
             the tree"
                .into(),
        )
        .into());
    }
    crate::commands::umount(
        sys.as_ref(),
        &super::tree_arg(args.tree),
        args.run.as_deref(),
    )?;
    Ok(0)
}
