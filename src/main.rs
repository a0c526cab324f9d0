//! The `build-helper` command line: parses arguments and dispatches; the work lives in the
//! library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use build_helper::error::UsageError;
use build_helper::starter::{HistorySel, Starter, UiKind};
use build_helper::supervisor::{self, Mode};
use build_helper::ui::plain::Plain;
use build_helper::ui::tmux::TmuxUi;
use build_helper::ui::{tui, Frontend};
use build_helper::{commands, config, explore, history_cmd, plan, plan_text, starter};

#[derive(Parser)]
#[command(
    name = "build-helper",
    version,
    about = "Builds customised Gentoo installations for many crossdev targets in parallel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Ui {
    Plain,
    Tui,
    Tmux,
}

#[derive(Clone, Copy, ValueEnum)]
enum EventsFormat {
    Json,
}

#[derive(Subcommand)]
enum HistoryAction {
    /// One line per history: name, date, type, size, targets, starter.
    List,
    /// Everything about one history, with its step durations.
    Show {
        /// The history's name.
        name: String,
    },
    /// Remove all but the newest N histories (never one a run uses).
    Prune {
        /// How many to keep.
        #[arg(long)]
        keep: usize,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Print the plan of a starter (targets, world orders, mounts, steps); no root needed.
    Plan {
        /// The starter file (TOML).
        starter: PathBuf,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
        /// History to start from: latest, none, a name under history/, or a path.
        #[arg(long)]
        history: Option<String>,
    },
    /// Validate target configuration directories; exit 0 when valid, 2 otherwise.
    Check {
        /// Configuration directories (configs/<tuple>.<name>/ or configs/host).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Run the build of a starter (root).
    Run {
        /// The starter file (TOML).
        starter: PathBuf,
        #[command(flatten)]
        flags: RunFlags,
    },
    /// List, show or prune saved histories.
    History {
        #[command(subcommand)]
        action: HistoryAction,
        /// The tree (default: BUILD_HELPER_TREE, else the current directory).
        #[arg(long, global = true)]
        tree: Option<PathBuf>,
    },
    /// Open a shell inside a mounted environment (a --mount-hist run, or a running build).
    Shell {
        /// The run (`<primary name>-<date>`).
        run: String,
        /// The target (default: the primary).
        target: Option<String>,
        /// Arguments for the shell, e.g. `-c 'ls /usr'`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
        /// The tree (default: BUILD_HELPER_TREE, else the current directory).
        #[arg(long)]
        tree: Option<PathBuf>,
    },
    /// Show runs, or one run's steps with state, exit code and duration.
    Status {
        /// The run (`<primary name>-<date>`).
        run: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The tree (default: BUILD_HELPER_TREE, else the current directory).
        #[arg(long)]
        tree: Option<PathBuf>,
    },
    /// Remove every mount of a run (also after its supervisor was killed).
    Umount {
        /// The run.
        #[arg(required_unless_present = "all")]
        run: Option<String>,
        /// Every run of the tree.
        #[arg(long, conflicts_with = "run")]
        all: bool,
        /// The tree (default: BUILD_HELPER_TREE, else the current directory).
        #[arg(long)]
        tree: Option<PathBuf>,
    },
    /// Internal: run one target's steps (started by the supervisor).
    #[command(hide = true)]
    Worker {
        /// The run directory.
        #[arg(long)]
        run: PathBuf,
        /// The target, `<tuple>.<name>`.
        #[arg(long)]
        target: String,
        /// Someone watches this worker's terminal: on a failed step open a rescue shell and
        /// ask resume / retry / abort instead of stopping.
        #[arg(long)]
        interactive: bool,
        /// Join the mount namespace of this supervisor pid first (a worker started by tmux
        /// is outside the supervisor's private namespace).
        #[arg(long)]
        join_ns: Option<u32>,
    },
}

fn load_starter(path: &Path, history: Option<&str>) -> anyhow::Result<Starter> {
    let mut s =
        starter::load(path, &|k| std::env::var(k).ok()).map_err(|e| UsageError(e.to_string()))?;
    if let Some(h) = history {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        s.options.history =
            HistorySel::parse(h, &cwd).map_err(|e| UsageError(format!("--history {h}: {e}")))?;
    }
    Ok(s)
}

fn tree_arg(tree: Option<PathBuf>) -> PathBuf {
    tree.or_else(|| std::env::var_os("BUILD_HELPER_TREE").map(PathBuf::from))
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The flags of `build-helper run`.
#[derive(clap::Args)]
struct RunFlags {
    /// Front end.
    #[arg(long, value_enum)]
    ui: Option<Ui>,
    /// History to start from: latest, none, a name under history/, or a path.
    #[arg(long)]
    history: Option<String>,
    /// Continue a run (the newest unfinished one without RUN) from each target's first
    /// step that is not done.
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    resume: Option<String>,
    /// Restart the run's targets from their first step (with --resume RUN: that run).
    #[arg(long)]
    retry: bool,
    /// Write the run's events to stdout, one JSON object per line (step-started,
    /// step-finished, step-failed, toolchain-ready, ...); the plain lines go to stderr.
    #[arg(long, value_enum)]
    events: Option<EventsFormat>,
    /// Do not check the stage3's OpenPGP signatures (its digests are still checked; a
    /// warning is shown). Without it, a missing key file stops the run.
    #[arg(long)]
    no_verify_signatures: bool,
    /// Mount the history and every target's overlay for exploring, then exit without
    /// building (also MOUNT_HIST=yes).
    #[arg(long, conflicts_with_all = ["resume", "retry"])]
    mount_hist: bool,
}

fn cmd_run(starter_path: &Path, flags: RunFlags) -> anyhow::Result<i32> {
    let RunFlags {
        ui,
        history,
        resume,
        retry,
        no_verify_signatures,
        mount_hist,
        events,
    } = flags;
    let mut starter = load_starter(starter_path, history.as_deref())?;
    if no_verify_signatures {
        starter.options.verify_signatures = false;
    }
    if mount_hist || starter.options.mount_hist {
        if !nix::unistd::geteuid().is_root() {
            return Err(
                UsageError("--mount-hist needs root (it mounts): run it as root".into()).into(),
            );
        }
        explore::mount_hist(&starter)?;
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
    let prepared = supervisor::prepare(&starter, &starter.options.history, &mode)?;
    supervisor::private_namespace(&build_helper::sys::LinuxSys)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (req_tx, req_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut frontend: Box<dyn Frontend> = match ui {
        Ui::Tui => Box::new(tui::start(req_tx).context("starting the TUI on this terminal")?),
        Ui::Tmux => Box::new(TmuxUi::new()),
        Ui::Plain if events.is_some() => Box::new(Plain::events_json()),
        Ui::Plain => Box::new(Plain::default()),
    };
    frontend.checkpoint(&prepared.checkpoint);
    let result = runtime.block_on(supervisor::supervise(prepared, frontend, req_rx));
    // A stopped run may leave a blocking task (an extraction) behind: do not wait for it.
    runtime.shutdown_background();
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

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Plan {
            starter,
            json,
            history,
        } => {
            let s = load_starter(&starter, history.as_deref())?;
            let hist =
                build_helper::history::resolve(&s.tree, &s.options.history).map_err(UsageError)?;
            let p =
                plan::build(&s, &plan::date_now(), hist).map_err(|e| UsageError(e.to_string()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                print!("{}", plan_text::render(&p));
            }
            Ok(0)
        }
        Command::Check { dirs } => {
            let report = config::check(&dirs);
            for w in &report.warnings {
                println!("warning: {w}");
            }
            for p in &report.errors {
                println!("{p}");
            }
            if report.errors.is_empty() {
                println!("{} configuration(s) valid", dirs.len());
                Ok(0)
            } else {
                println!("{} problem(s)", report.errors.len());
                Ok(2)
            }
        }
        Command::Run { starter, flags } => cmd_run(&starter, flags),
        Command::History { action, tree } => {
            let tree = tree_arg(tree);
            match action {
                HistoryAction::List => history_cmd::list(&tree),
                HistoryAction::Show { name } => history_cmd::show(&tree, &name)?,
                HistoryAction::Prune { keep } => history_cmd::prune(&tree, keep)?,
            }
            Ok(0)
        }
        Command::Shell {
            run,
            mut target,
            mut args,
            tree,
        } => {
            // `shell RUN -- -c CMD`: clap hands `-c` to TARGET; it belongs to the shell.
            if let Some(t) = target.take_if(|t| t.starts_with('-')) {
                args.insert(0, t);
            }
            explore::shell(&tree_arg(tree), &run, target.as_deref(), &args)
        }
        Command::Status { run, json, tree } => {
            commands::status(&tree_arg(tree), run.as_deref(), json)?;
            Ok(0)
        }
        Command::Umount { run, all: _, tree } => {
            commands::umount(&tree_arg(tree), run.as_deref())?;
            Ok(0)
        }
        Command::Worker {
            run,
            target,
            interactive,
            join_ns,
        } => {
            if let Some(pid) = join_ns {
                build_helper::worker::join_namespace(&build_helper::sys::LinuxSys, pid)?;
            }
            let target = config::Target::parse(&target).map_err(|e| UsageError(e.to_string()))?;
            build_helper::worker::main(&run, &target, interactive)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            if let Some(u) = e.downcast_ref::<UsageError>() {
                eprintln!("build-helper: {u}");
                ExitCode::from(2)
            } else {
                eprintln!("build-helper: error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}
