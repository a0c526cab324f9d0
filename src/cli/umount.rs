//! `build-helper umount`: removes every mount of a run, also after its supervisor was killed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cleanup::{self, CleanError};
use crate::error::UsageError;
use crate::rundir;
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
    umount(
        sys.as_ref(),
        &super::tree_arg(args.tree),
        args.run.as_deref(),
    )?;
    Ok(0)
}

/// Cleans up the run(s), then removes the partial archives
/// interrupted archives left in the history folder (never one a live run may be writing).
///
/// Errors: unknown run, a run still active, mounts that cannot be removed.
fn umount(sys: &dyn Sys, tree: &Path, run: Option<&str>) -> anyhow::Result<()> {
    let dirs = match run {
        Some(name) => vec![rundir::open(tree, name).map_err(|e| UsageError(e.to_string()))?],
        None => std::fs::read_dir(rundir::work(tree))
            .map(|d| {
                let mut v: Vec<PathBuf> = d
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir() && rundir::validate_id(&rundir::id_of(p)).is_ok())
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default(),
    };
    let mut failed = None;
    for d in dirs {
        rundir::sockets::remove_stale(&d);
        match cleanup::clean_dead_run(sys, &d) {
            Ok(c) if c.processes > 0 => println!(
                "{}: {} mount(s) removed, {} leftover process(es) killed",
                d.display(),
                c.mounts,
                c.processes
            ),
            Ok(c) => println!("{}: {} mount(s) removed", d.display(), c.mounts),
            Err(e) => {
                eprintln!("{}: {e}", d.display());
                failed = Some(e);
            }
        }
    }
    // What an archive killed with its supervisor left (never a live run's).
    match cleanup::remove_stale_partials(tree) {
        Ok(removed) => {
            for p in removed {
                println!("{}: partial archive removed", p.display());
            }
        }
        Err(e) => {
            eprintln!("{e}");
            failed.get_or_insert(CleanError::Held(e));
        }
    }
    match failed {
        Some(CleanError::Usage(e)) => Err(UsageError(e).into()),
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
