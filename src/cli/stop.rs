//! `build-helper stop`: stops a live run from any terminal, as Ctrl-C would.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::UsageError;
use crate::rundir;
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
pub(super) fn run(args: Args, sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    stop(
        sys.as_ref(),
        &super::tree_arg(args.tree),
        args.run.as_deref(),
        std::time::Duration::from_secs(args.timeout),
        &mut std::io::stdout(),
    )
}

/// `build-helper stop [RUN] [--timeout S]`: finds the run (`crate::stop::find`), stops it and says so
/// on `out`, with how to continue. Returns the exit status: 0 stopped, 1 not stopped within
/// `timeout`.
///
/// Errors: [`UsageError`] (exit 2) from `crate::stop::find` or when not root; the signal cannot be sent.
fn stop(
    sys: &dyn Sys,
    tree: &Path,
    run: Option<&str>,
    timeout: Duration,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    if !nix::unistd::geteuid().is_root() {
        return Err(UsageError(
            "build-helper stop needs root (the supervisor runs as root): run it as root".into(),
        )
        .into());
    }
    let live = crate::stop::find(tree, run)?;
    let id = rundir::id_of(&live.dir);
    let starter = rundir::load_plan(&live.dir)
        .map(|p| p.starter.display().to_string())
        .unwrap_or_else(|_| "STARTER".into());
    let tree_flag = crate::error::tree_flag(tree);
    let _ = writeln!(
        out,
        "build-helper: stopping run {id} (supervisor pid {}): its workers stop, the mounts \
         come down",
        live.pid
    );
    match crate::stop::signal_and_wait(sys, &live, timeout)? {
        crate::stop::Stopped::After(took) => {
            let _ = writeln!(
                out,
                "build-helper: run {id} stopped after {:.1} s; the checkpoint keeps what is \
                 done: continue with `build-helper run {starter} --resume {id}`",
                took.as_secs_f64()
            );
            Ok(0)
        }
        crate::stop::Stopped::Finished(took) => {
            let _ = writeln!(
                out,
                "build-helper: run {id} stopped after {:.1} s (workers stopped, mounts removed); \
                 its supervisor (pid {}) has not exited yet (a foreground TUI shows the end \
                 until Enter is pressed on its terminal); continue with `build-helper run \
                 {starter} --resume {id}`",
                took.as_secs_f64(),
                live.pid
            );
            Ok(0)
        }
        crate::stop::Stopped::TimedOut => {
            let _ = writeln!(
                out,
                "build-helper: run {id} (supervisor pid {}) did not stop within {} s (it may \
                 still be stopping an archive or removing mounts): look again with \
                 `build-helper status{tree_flag} {id}`; as a last resort `kill -9 {}` and \
                 `build-helper umount{tree_flag} {id}`",
                live.pid,
                timeout.as_secs(),
                live.pid
            );
            Ok(1)
        }
    }
}
