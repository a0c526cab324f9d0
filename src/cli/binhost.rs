//! `build-helper binhost`: writes the Packages index of every package directory of a mounted run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::binhost;
use crate::error::UsageError;
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
    index_mounted_run(sys.as_ref(), &super::tree_arg(args.tree), &args.run)
}

/// `build-helper binhost RUN`: indexes the package directories of a mounted run (a
/// `--mount-hist` exploration, or a running build, whose mount namespace it joins); prints a
/// line per directory; returns 0, or 1 when some directory failed.
///
/// Errors: [`UsageError`](crate::error::UsageError) for a bad run id, an unknown or
/// unmounted run, a run whose supervisor is gone (`crate::rundir::open_mounted`), or
/// without root; joining the run's namespace failed.
fn index_mounted_run(sys: &dyn Sys, tree: &Path, run: &str) -> anyhow::Result<i32> {
    if !nix::unistd::geteuid().is_root() {
        return Err(UsageError(
            "build-helper binhost needs root (it chroots): run it as root".into(),
        )
        .into());
    }
    // The one check of a run to enter: id, journal, supervisor alive in its namespace (a
    // pid reused after the supervisor died must not decide where emaint runs as root).
    let mounted =
        crate::rundir::open_mounted(sys, tree, run).map_err(|e| UsageError(e.to_string()))?;
    let plan = crate::rundir::load_plan(&mounted.dir).map_err(|e| {
        UsageError(format!(
            "run `{run}` cannot be indexed ({e:#}); `build-helper status --tree {}` lists the runs",
            tree.display()
        ))
    })?;
    if let Some(pid) = mounted.ns_pid {
        sys.join_mount_ns(pid)
            .with_context(|| format!("joining the mount namespace of run {run} (pid {pid})"))?;
        mounted
            .check_joined(sys)
            .map_err(|e| UsageError(e.to_string()))?;
    }
    let mut code = 0;
    for line in binhost::index_run(sys, &plan) {
        match line {
            Ok(l) => println!("{l}"),
            Err(e) => {
                eprintln!("build-helper: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}
