//! `build-helper run`: builds a starter (root): prepares the run, then supervises it with the chosen front end.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use crate::attach;
use crate::error::UsageError;
use crate::explore;
use crate::starter::UiKind;
use crate::supervisor::{self, Mode};
use crate::sys::Sys;
use crate::ui::plain::Plain;
use crate::ui::tmux::TmuxUi;
use crate::ui::Frontend;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// The starter file (TOML; format: docs/starter.md).
    pub starter: PathBuf,
    #[command(flatten)]
    pub flags: RunFlags,
}

/// `--ui`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum Ui {
    Plain,
    Tui,
    Tmux,
}

/// `--events`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum EventsFormat {
    Json,
}

/// The flags of `build-helper run`.
#[derive(clap::Args)]
pub(super) struct RunFlags {
    /// Front end.
    #[arg(long, value_enum)]
    pub ui: Option<Ui>,
    /// History to start from: latest, none, a name under history/, or a path.
    #[arg(long)]
    pub history: Option<String>,
    /// Continue a run (without RUN: the newest unfinished run of this starter) from each
    /// target's first step that is not done; a finished run is left as it is.
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<String>,
    /// Restart the run's targets from their first step (with --resume RUN: that run).
    #[arg(long)]
    pub retry: bool,
    /// Write the run's events to stdout, one JSON object per line (step-started,
    /// step-finished, step-failed, toolchain-ready, ...); the plain lines go to stderr.
    #[arg(long, value_enum)]
    pub events: Option<EventsFormat>,
    /// Do not check the stage3's OpenPGP signatures (its digests are still checked; a
    /// warning is shown). Without it, a missing key file stops the run.
    #[arg(long)]
    pub no_verify_signatures: bool,
    /// Mount the history and every target's overlay for exploring, then exit without
    /// building (also MOUNT_HIST=yes).
    #[arg(long, conflicts_with_all = ["resume", "retry"])]
    pub mount_hist: bool,
}

/// Runs the build (or, with `--mount-hist`, mounts the history for exploring).
pub(super) fn run(args: Args, sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    let starter_path = &args.starter;
    let flags = args.flags;
    let RunFlags {
        ui,
        history,
        resume,
        retry,
        no_verify_signatures,
        mount_hist,
        events,
    } = flags;
    let mut starter = super::load_starter(starter_path, history.as_deref())?;
    if no_verify_signatures {
        starter.options.verify_signatures = false;
    }
    if mount_hist || starter.options.mount_hist {
        // Planned as what it is: no steps, so no job pool and MAKEOPTS -j<jobs> for `shell`.
        starter.options.mount_hist = true;
        if !nix::unistd::geteuid().is_root() {
            return Err(
                UsageError("--mount-hist needs root (it mounts): run it as root".into()).into(),
            );
        }
        explore::mount_hist(sys.as_ref(), &starter)?;
        return Ok(0);
    }
    let ui = match (events, ui) {
        (Some(EventsFormat::Json), None | Some(Ui::Plain)) => Ui::Plain,
        (Some(EventsFormat::Json), Some(_)) => {
            return Err(UsageError(
                "--events json writes the events to stdout: use it with --ui plain".into(),
            )
            .into())
        }
        (None, ui) => choose_ui(ui, starter.options.ui)?,
    };
    if !nix::unistd::geteuid().is_root() {
        return Err(UsageError(
            "build-helper run needs root (it mounts and chroots): run it as root".into(),
        )
        .into());
    }
    let pick = resume.filter(|r| !r.is_empty());
    let mode = if retry {
        Mode::Retry(pick)
    } else if let Some(run) = pick {
        Mode::Resume(Some(run))
    } else if std::env::args().any(|a| a == "--resume") {
        Mode::Resume(None)
    } else {
        Mode::New
    };
    // Builds, histories and logs get the same modes whatever the caller's umask; run files
    // are made private explicitly (rundir).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let prepared = supervisor::prepare(sys.as_ref(), &starter, &starter.options.history, &mode)?;
    if matches!(ui, Ui::Tui) {
        // The run belongs to a supervisor in its own session; this terminal gets a client.
        let run_dir = prepared.plan.run_dir();
        let child = attach::daemon::spawn(prepared)?;
        return attach::daemon::foreground(&run_dir, child);
    }
    crate::mounts::private_namespace(sys.as_ref())?;
    let runtime = supervisor::runtime()?;
    // Plain and tmux send no requests (the TUI is a client of its own supervisor, above).
    let (_requests, req_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut frontend: Box<dyn Frontend> = match ui {
        Ui::Tmux => Box::new(TmuxUi::new(prepared.plan.pass_env.clone())),
        Ui::Plain | Ui::Tui if events.is_some() => Box::new(Plain::events_json()),
        Ui::Plain | Ui::Tui => Box::new(Plain::default()),
    };
    frontend.checkpoint(&prepared.checkpoint);
    let (result, lock) = runtime.block_on(supervisor::supervise(prepared, sys, frontend, req_rx));
    // The extraction and the mounts are threads the supervisor stops and joins itself; a
    // blocking task still running (a stage3 read in flight at a stop) is not waited for.
    runtime.shutdown_background();
    drop(lock);
    result
}

/// The front end: `--ui`, else the starter's `ui`, else tmux inside tmux, the TUI on a
/// terminal, plain otherwise. The TUI needs a terminal; tmux needs to run inside tmux.
fn choose_ui(cli: Option<Ui>, starter: Option<UiKind>) -> anyhow::Result<Ui> {
    let in_tmux = std::env::var_os("TMUX").is_some_and(|v| !v.is_empty());
    let terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let ui = cli.or(starter.map(|k| match k {
        UiKind::Tui => Ui::Tui,
        UiKind::Tmux => Ui::Tmux,
        UiKind::Plain => Ui::Plain,
    }));
    let ui = ui.unwrap_or(if in_tmux {
        Ui::Tmux
    } else if terminal {
        Ui::Tui
    } else {
        Ui::Plain
    });
    match ui {
        Ui::Tui if !terminal => Err(UsageError(
            "--ui tui needs a terminal on standard input and output; use --ui plain".into(),
        )
        .into()),
        Ui::Tmux if !in_tmux => Err(UsageError(
            "--ui tmux (or TMUX_MODE=on) works only inside tmux: start tmux first, or use \
             --ui tui"
                .into(),
        )
        .into()),
        ui => Ok(ui),
    }
}
