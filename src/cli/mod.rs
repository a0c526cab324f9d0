//! The `build-helper` command line: [`Cli`] parses the arguments (clap), [`dispatch`] hands
//! them to the command's file, one file per command (`cli/<command>.rs`), which turns them
//! into calls of the library and prints the result. No rule of the tool lives here: a
//! command file only reads its arguments, calls the room that does the work, and says what
//! happened.
//!
//! Exit statuses: what the command returns (0 done, 2 a usage error or a failed check, 1
//! any other error, 124/125 for `boot --run`); [`exit_code`] maps the errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::error::{NothingToDo, UsageError};
use crate::starter::{self, HistorySel, Starter};
use crate::sys::Sys;

mod attach;
mod binhost;
mod boot;
mod check;
mod distcc_helper;
mod generate;
mod history;
mod import_starter;
mod plan;
mod run;
mod shell;
mod status;
mod stop;
mod supervise;
mod umount;
mod worker;

/// The command line of `build-helper` (parse it with [`clap::Parser::parse`]).
#[derive(Parser)]
#[command(
    name = "build-helper",
    version,
    about = "Builds customised Gentoo installations for many crossdev targets in parallel",
    after_help = "Reference (in the source tree): docs/starter.md (starters), \
                  docs/configuration.md (configuration directories), docs/recipe.md (the \
                  steps of a run), docs/mirror.md (the stage3 mirror and its checks), \
                  docs/attach.md (detaching from a run and attaching to it)."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the plan of a starter (targets, world orders, mounts, steps); no root needed.
    Plan(plan::Args),
    /// Validate configuration directories, or a starter's (the host's and each target's);
    /// exit 0 when valid, 2 otherwise.
    Check(check::Args),
    /// Convert one of the original tool's starter scripts (example-starter-*.sh) into
    /// starter TOML, printed on standard output.
    ImportStarter(import_starter::Args),
    /// Run the build of a starter (root).
    Run(run::Args),
    /// List, show or prune saved histories.
    History(history::Args),
    /// Open a shell inside a mounted environment (a --mount-hist run, or a running build).
    Shell(shell::Args),
    /// Show runs, or one run's steps with state, exit code and duration.
    Status(status::Args),
    /// Stop a live run from any terminal, as Ctrl-C would: its workers stop, its mounts come
    /// down, its checkpoint keeps what is done (continue with `run --resume`); exit 0 when it
    /// stopped, 1 when it did not within the timeout, 2 when there is no such live run (root).
    Stop(stop::Args),
    /// Remove every mount of a run (also after its supervisor was killed); `--all` for every
    /// run of the tree.
    Umount(umount::Args),
    /// Generate the man pages or a shell completion script from this command line.
    Generate(generate::Args),
    /// Serve a history's compilers to other build machines: its own distccd, chrooted in it
    /// (read-only, in a private mount namespace), in the foreground until Ctrl-C (root).
    DistccHelper(distcc_helper::Args),
    /// Write the Packages index of binpkgs/host and every target's binpkgs in a mounted run
    /// (a --mount-hist run, or a running build), with the environment's emaint (root).
    Binhost(binhost::Args),
    /// Start a build in QEMU: its kernel, its initramfs, the build directory as the medium
    /// holding the images, the original's boot parameters; with --expect a smoke test.
    Boot(boot::Args),
    /// Open the TUI on a live run (started with --ui tui) from any terminal; `q` detaches
    /// again. For a run that is not live: its status (root).
    Attach(attach::Args),
    /// Internal: supervise a prepared run in its own session (started by `run --ui tui`).
    #[command(hide = true)]
    Supervise(supervise::Args),
    /// Internal: run one target's steps (started by the supervisor).
    #[command(hide = true)]
    Worker(worker::Args),
}

impl Cli {
    /// Whether the command only prints (plan, check, status, history, umount, ...): such a
    /// command ends quietly when its reader goes away (SIGPIPE's default), as `ls | head`
    /// does; `run`, `shell`, `attach`, the supervisor, the worker, `boot` and
    /// `distcc-helper` own sockets, terminals and children and handle write errors
    /// themselves.
    pub fn prints_only(&self) -> bool {
        match &self.command {
            Command::Run(args) => args.flags.mount_hist,
            Command::Shell(_)
            | Command::Attach(_)
            | Command::Supervise(_)
            | Command::Worker(_)
            | Command::Boot(_)
            | Command::DistccHelper(_) => false,
            _ => true,
        }
    }
}

/// Runs the command of `cli`; every system call of the commands goes through `sys` (the
/// binary's one `LinuxSys`). Returns the exit status.
///
/// Errors: the command's ([`UsageError`] for bad input, [`NothingToDo`] when there is
/// nothing to do, anything else for a failure); [`exit_code`] says how each ends.
pub fn dispatch(cli: Cli, sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    match cli.command {
        Command::Plan(args) => plan::run(args, sys),
        Command::Check(args) => check::run(args, sys),
        Command::ImportStarter(args) => import_starter::run(args, sys),
        Command::Run(args) => run::run(args, sys),
        Command::History(args) => history::run(args, sys),
        Command::Shell(args) => shell::run(args, sys),
        Command::Status(args) => status::run(args, sys),
        Command::Stop(args) => stop::run(args, sys),
        Command::Umount(args) => umount::run(args, sys),
        Command::Generate(args) => generate::run(args, sys),
        Command::DistccHelper(args) => distcc_helper::run(args, sys),
        Command::Binhost(args) => binhost::run(args, sys),
        Command::Boot(args) => boot::run(args, sys),
        Command::Attach(args) => attach::run(args, sys),
        Command::Supervise(args) => supervise::run(args, sys),
        Command::Worker(args) => worker::run(args, sys),
    }
}

/// The process's exit status for what [`dispatch`] returned, after saying why on the right
/// stream: [`NothingToDo`] on stdout (exit 0), [`UsageError`] on stderr (exit 2), any other
/// error on stderr with its causes (exit 1). A status outside 0..=255 is clamped.
pub fn exit_code(result: anyhow::Result<i32>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            if let Some(done) = e.downcast_ref::<NothingToDo>() {
                let _ = writeln!(std::io::stdout().lock(), "build-helper: {done}");
                ExitCode::SUCCESS
            } else if let Some(u) = e.downcast_ref::<UsageError>() {
                let _ = writeln!(std::io::stderr().lock(), "build-helper: {u}");
                ExitCode::from(2)
            } else {
                let _ = writeln!(std::io::stderr().lock(), "build-helper: error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

/// The starter at `path` (with the environment's overrides), its history replaced by
/// `--history` when given.
///
/// Errors: [`UsageError`] naming the starter or the `--history` value.
fn load_starter(path: &Path, history: Option<&str>) -> anyhow::Result<Starter> {
    let mut s =
        starter::load(path, &|k| std::env::var(k).ok()).map_err(|e| UsageError(e.to_string()))?;
    if let Some(h) = history {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        s.options.history = HistorySel::parse_for_tree(h, &cwd, &s.tree)
            .map_err(|e| UsageError(format!("--history {h}: {e}")))?;
    }
    Ok(s)
}

/// The tree: `--tree`, else `BUILD_HELPER_TREE`, else the current directory.
fn tree_arg(tree: Option<PathBuf>) -> PathBuf {
    tree.or_else(|| std::env::var_os("BUILD_HELPER_TREE").map(PathBuf::from))
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Writes `text` to standard output; a closed pipe (`| head`) ends the output quietly.
///
/// Errors: any other write error.
fn print_quietly_on_closed_pipe(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}
