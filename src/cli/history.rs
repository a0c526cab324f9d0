//! `build-helper history`: lists, shows or prunes the saved histories.

use std::path::PathBuf;
use std::sync::Arc;

use crate::history_cmd;
use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    #[command(subcommand)]
    pub action: Action,
    /// The tree (default: BUILD_HELPER_TREE, else the current directory).
    #[arg(long, global = true)]
    pub tree: Option<PathBuf>,
}

/// What `history` does.
#[derive(clap::Subcommand)]
pub(super) enum Action {
    /// One line per history: name, date, type, size, targets, starter.
    List,
    /// Everything about one history, with its step durations.
    Show {
        /// The history's name, or `latest` for the newest.
        name: String,
    },
    /// Remove all but the newest N histories (never one a run uses).
    Prune {
        /// How many to keep.
        #[arg(long)]
        keep: usize,
    },
}

/// Runs the action.
pub(super) fn run(args: Args, _sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    let tree = super::tree_arg(args.tree);
    match args.action {
        Action::List => history_cmd::list(&tree),
        Action::Show { name } => history_cmd::show(&tree, &name)?,
        Action::Prune { keep } => history_cmd::prune(&tree, keep)?,
    }
    Ok(0)
}
