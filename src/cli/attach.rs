//! `build-helper attach`: opens the TUI on a live run from any terminal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::attach;
use crate::error::UsageError;
use crate::rundir;
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
    attach(&super::tree_arg(args.tree), args.run.as_deref())
}

/// `build-helper attach [RUN]`: the TUI on a live run (default: the tree's live run);
/// for a run that is not live, its status table. Returns the exit status: the run's when it
/// ends while attached, 0 on detach or for a run that is not live.
///
/// Errors: no such run, no live run, not root, no terminal, or a live run that serves no
/// screens ([`UsageError`]); the connection fails.
fn attach(tree: &Path, run: Option<&str>) -> anyhow::Result<i32> {
    let usage = |e: rundir::RunDirError| UsageError(e.to_string());
    if !nix::unistd::geteuid().is_root() {
        return Err(UsageError(
            "build-helper attach needs root (the run's socket is root's): run it as root".into(),
        )
        .into());
    }
    let dir: PathBuf = match run {
        Some(name) => rundir::open(tree, name).map_err(usage)?,
        None => match rundir::any_live(tree) {
            Some(rundir::RunDirError::Live { run, .. }) => {
                rundir::open(tree, &run).map_err(usage)?
            }
            _ => {
                return Err(UsageError(format!(
                    "no live run in {}: nothing to attach; `build-helper status` lists the \
                     runs, `build-helper attach RUN` shows a finished one",
                    rundir::work(tree).display()
                ))
                .into())
            }
        },
    };
    let id = rundir::id_of(&dir);
    let Some(pid) = rundir::live_pid(&dir) else {
        // Finished, stopped or dead: what it did. Only printing from here: a closed pipe
        // (`| head`) ends it quietly, as for `status`.
        // SAFETY: sets a disposition, no handler; this thread is the only one.
        let _ = unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            )
        };
        super::status::print(tree, Some(&id), false)?;
        return Ok(0);
    };
    if !crate::rundir::sockets::attach(&dir).exists() {
        // A tmux run is shown by its own tmux session (`--ui tmux`): attach that.
        match crate::ui::tmux::attach_command(&dir) {
            Ok(argv) => {
                let status = std::process::Command::new(&argv[0])
                    .args(&argv[1..])
                    .status()
                    .with_context(|| format!("running {}", argv.join(" ")))?;
                return Ok(status.code().unwrap_or(1));
            }
            Err(crate::ui::tmux::AttachError::NotTmux(_)) => {}
            Err(e) => return Err(UsageError(format!("run {id}: {e}")).into()),
        }
        return Err(UsageError(format!(
            "run {id} (supervisor pid {pid}) serves no screens: it was started with --ui plain; \
             its output is in {} (follow it with `tail -f`)",
            crate::rundir::logs(&dir).display()
        ))
        .into());
    }
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(UsageError(
            "build-helper attach needs a terminal on standard input and output".into(),
        )
        .into());
    }
    match attach::client::run(&dir, None)? {
        attach::client::Outcome::Ended(code) => Ok(code),
        attach::client::Outcome::Detached => Ok(0),
        attach::client::Outcome::Lost(why) => Err(anyhow::anyhow!(
            "lost the connection to run {id}'s supervisor: {why}; its log: {}",
            dir.join(crate::rundir::SUPERVISOR_LOG).display()
        )),
    }
}
