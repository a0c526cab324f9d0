//! The `build-helper` command line: parses arguments and dispatches; the work lives in the
//! library.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use build_helper::error::{NothingToDo, UsageError};
use build_helper::starter::{HistorySel, Starter, UiKind};
use build_helper::supervisor::{self, Mode};
use build_helper::sys::{LinuxSys, Sys};
use build_helper::ui::plain::Plain;
use build_helper::ui::tmux::TmuxUi;
use build_helper::ui::Frontend;
use build_helper::{
    attach, boot, clidocs, commands, config, explore, history_cmd, plan, plan_text, starter,
};

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

#[derive(Clone, Copy, ValueEnum)]
enum MediumArg {
    /// No medium: every image is inside the initramfs.
    None,
    /// virtio 9p, read-only (squash_type=9p).
    #[value(name = "9p")]
    NineP,
    /// A read-only virtio disk showing the directory as FAT (squash_type=vfat).
    Disk,
}

#[derive(Clone, Copy, ValueEnum)]
enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Subcommand)]
enum HistoryAction {
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

#[derive(Subcommand)]
enum GenerateAction {
    /// Write one man page per command (build-helper.1, build-helper-plan.1, ...) into DIR.
    Man {
        /// The directory (created if missing), e.g. /usr/local/share/man/man1.
        dir: PathBuf,
    },
    /// Print the completion script for SHELL (install it as bash: build-helper, zsh:
    /// _build-helper, fish: build-helper.fish).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clidocs::Shell,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Print the plan of a starter (targets, world orders, mounts, steps); no root needed.
    Plan {
        /// The starter file (TOML; format: docs/starter.md).
        starter: PathBuf,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
        /// History to start from: latest, none, a name under history/, or a path.
        #[arg(long)]
        history: Option<String>,
    },
    /// Validate configuration directories, or a starter's (the host's and each target's);
    /// exit 0 when valid, 2 otherwise.
    Check {
        /// Configuration directories (configs/<tuple>.<name>/ or configs/host; format:
        /// docs/configuration.md), or starter files (*.toml): a starter checks the host's
        /// and each target's configuration.
        #[arg(required_unless_present = "starter")]
        dirs: Vec<PathBuf>,
        /// Also check the host and every target configuration of this starter (the same as
        /// naming the starter among the directories), and that each target's kernel reads
        /// the starter's image_compressor.
        #[arg(long)]
        starter: Option<PathBuf>,
    },
    /// Convert one of the original tool's starter scripts (example-starter-*.sh) into
    /// starter TOML, printed on standard output.
    ImportStarter {
        /// The starter script (shell).
        script: PathBuf,
    },
    /// Run the build of a starter (root).
    Run {
        /// The starter file (TOML; format: docs/starter.md).
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
        #[arg(allow_hyphen_values = true)]
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
        /// Print the status as a JSON document (format 1: state, progress, ETA and durations of
        /// every target and step; docs/status-json.md).
        #[arg(long)]
        json: bool,
        /// The tree (default: BUILD_HELPER_TREE, else the current directory).
        #[arg(long)]
        tree: Option<PathBuf>,
    },
    /// Stop a live run from any terminal, as Ctrl-C would: its workers stop, its mounts come
    /// down, its checkpoint keeps what is done (continue with `run --resume`); exit 0 when it
    /// stopped, 1 when it did not within the timeout, 2 when there is no such live run (root).
    Stop {
        /// The run (`<primary name>-<date>`; default: the tree's live run).
        run: Option<String>,
        /// Seconds to wait for the run to have stopped.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// The tree (default: BUILD_HELPER_TREE, else the current directory).
        #[arg(long)]
        tree: Option<PathBuf>,
    },
    /// Remove every mount of a run (also after its supervisor was killed); `--all` for every
    /// run of the tree.
    Umount {
        /// The run (`build-helper status` lists them); or give --all.
        run: Option<String>,
        /// Every run of the tree.
        #[arg(long, conflicts_with = "run")]
        all: bool,
        /// The tree (default: BUILD_HELPER_TREE, else the current directory).
        #[arg(long)]
        tree: Option<PathBuf>,
    },
    /// Generate the man pages or a shell completion script from this command line.
    Generate {
        #[command(subcommand)]
        action: GenerateAction,
    },
    /// Serve a history's compilers to other build machines: its own distccd, chrooted in it
    /// (read-only, in a private mount namespace), in the foreground until Ctrl-C (root).
    DistccHelper {
        /// History to serve: latest, a name under history/, or a path.
        #[arg(long, default_value = "latest")]
        history: String,
        /// Address to listen on (default: every address, 0.0.0.0, with a warning).
        #[arg(long)]
        listen: Option<std::net::IpAddr>,
        /// TCP port.
        #[arg(long, default_value_t = build_helper::distcc::helper::DEFAULT_PORT)]
        port: u16,
        /// A network allowed to connect (ADDR or ADDR/BITS); required, may repeat.
        #[arg(long = "allow", value_name = "CIDR")]
        allow: Vec<String>,
        /// Compile jobs at once (default: the number of CPUs).
        #[arg(long)]
        jobs: Option<u32>,
        /// The tree (default: BUILD_HELPER_TREE, else the current directory).
        #[arg(long)]
        tree: Option<PathBuf>,
    },
    /// Write the Packages index of binpkgs/host and every target's binpkgs in a mounted run
    /// (a --mount-hist run, or a running build), with the environment's emaint (root).
    Binhost {
        /// The run (`<primary name>-<date>`).
        run: String,
        /// The tree (default: BUILD_HELPER_TREE, else the current directory).
        #[arg(long)]
        tree: Option<PathBuf>,
    },
    /// Start a build in QEMU: its kernel, its initramfs, the build directory as the medium
    /// holding the images, the original's boot parameters; with --expect a smoke test.
    Boot {
        /// A target `<tuple>.<name>` (its newest build under builds/) or a build directory
        /// `builds/<tuple>.<name>.<date>/`.
        build: String,
        /// `squash_stack`: world images stacked over base, leftmost on top, colon-separated
        /// (default: every world of the target, children above their parents; for a target
        /// without worlds none is passed and the init stacks `extra` when it finds one; ``
        /// for base only).
        #[arg(long)]
        stack: Option<String>,
        /// `squash_load`: images copied into memory with --docache, colon-separated.
        #[arg(long)]
        load: Option<String>,
        /// `docache`: the initramfs copies the images into memory and releases the medium.
        #[arg(long)]
        docache: bool,
        /// More kernel arguments (repeatable; each may hold several words).
        #[arg(long, allow_hyphen_values = true)]
        append: Vec<String>,
        /// How the build directory reaches the guest (default: 9p when it holds an image,
        /// else none).
        #[arg(long, value_enum)]
        medium: Option<MediumArg>,
        /// CPU: KVM when /dev/kvm works here, else TCG (software emulation).
        #[arg(long, value_enum, default_value = "auto")]
        accel: AccelArg,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 512)]
        memory: u32,
        /// Smoke test: exit 0 when the console prints this text, 1 otherwise; the console
        /// transcript is kept in the build directory (boot-console.log).
        #[arg(long, conflicts_with = "run")]
        expect: Option<String>,
        /// Once the booted console has a shell (busybox init's askfirst, or a prompt), type
        /// this shell command, print its output on standard output (the console goes to
        /// standard error) and exit with its status; 124 when --timeout passes first, 125
        /// when QEMU ends first. The transcript is kept as with --expect.
        #[arg(long)]
        run: Option<String>,
        /// With --expect or --run: seconds (from QEMU's start) to wait for the text, or for
        /// the command's end.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// The tree (default: BUILD_HELPER_TREE, else the current directory).
        #[arg(long)]
        tree: Option<PathBuf>,
    },
    /// Open the TUI on a live run (started with --ui tui) from any terminal; `q` detaches
    /// again. For a run that is not live: its status (root).
    Attach {
        /// The run (default: the tree's live run).
        run: Option<String>,
        /// The tree (default: BUILD_HELPER_TREE, else the current directory).
        #[arg(long)]
        tree: Option<PathBuf>,
    },
    /// Internal: supervise a prepared run in its own session (started by `run --ui tui`).
    #[command(hide = true)]
    Supervise {
        /// The run directory.
        #[arg(long)]
        run: PathBuf,
        /// new, resume or retry.
        #[arg(long)]
        mode: String,
        /// The inherited descriptor holding the run directory's lock.
        #[arg(long)]
        lock_fd: i32,
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
        s.options.history = HistorySel::parse_for_tree(h, &cwd, &s.tree)
            .map_err(|e| UsageError(format!("--history {h}: {e}")))?;
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
    /// Continue a run (without RUN: the newest unfinished run of this starter) from each
    /// target's first step that is not done; a finished run is left as it is.
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

fn cmd_run(sys: Arc<dyn Sys>, starter_path: &Path, flags: RunFlags) -> anyhow::Result<i32> {
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
    supervisor::private_namespace(sys.as_ref())?;
    let runtime = supervisor::runtime()?;
    // Plain and tmux send no requests (the TUI is a client of its own supervisor, above).
    let (_requests, req_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut frontend: Box<dyn Frontend> = match ui {
        Ui::Tmux => Box::new(TmuxUi::new()),
        Ui::Plain | Ui::Tui if events.is_some() => Box::new(Plain::events_json()),
        Ui::Plain | Ui::Tui => Box::new(Plain::default()),
    };
    frontend.checkpoint(&prepared.checkpoint);
    let result = runtime.block_on(supervisor::supervise(prepared, sys, frontend, req_rx));
    // The extraction and the mounts are threads the supervisor stops and joins itself; a
    // blocking task still running (a stage3 read in flight at a stop) is not waited for.
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

/// What `check` looks at: directories as given; for a starter file (`*.toml`), the host
/// configuration and each target's configuration, plus the starter's own warnings (distcc
/// wanted but not in the host world).
/// What `check` checks: the configuration directories named or implied by starters, the
/// starters' warnings, and each target directory's starter-chosen image compressor.
struct CheckTargets {
    dirs: Vec<PathBuf>,
    warnings: Vec<config::Problem>,
    compressors: Vec<(PathBuf, String)>,
}

/// Expands `check`'s arguments: a `*.toml` file is a starter (its host and every target's
/// configuration, the distcc warning, its `image_compressor`), anything else a directory.
fn check_targets(args: &[PathBuf]) -> anyhow::Result<CheckTargets> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut warnings = Vec::new();
    let mut compressors = Vec::new();
    for arg in args {
        if arg.is_file() && arg.extension().is_some_and(|e| e == "toml") {
            let s = load_starter(arg, None)?;
            let host = s.tree.join("configs/host");
            warnings.extend(build_helper::distcc::hosts::host_world_warning(
                &host,
                s.options.distcc_hosts.as_deref(),
            ));
            dirs.push(host);
            for t in &s.targets {
                let dir = s.tree.join("configs").join(t.to_string());
                if let Some(wanted) = &s.options.image_compressor {
                    compressors.push((dir.clone(), wanted.clone()));
                }
                dirs.push(dir);
            }
        } else {
            dirs.push(arg.clone());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    Ok(CheckTargets {
        dirs,
        warnings,
        compressors,
    })
}

/// Runs the command of `cli`; every system call of the commands goes through `sys`.
fn dispatch(cli: Cli, sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
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
            let text = if json {
                format!("{}\n", serde_json::to_string_pretty(&p)?)
            } else {
                plan_text::render(&p)
            };
            print_quietly_on_closed_pipe(&text)?;
            Ok(0)
        }
        Command::Check { mut dirs, starter } => {
            dirs.extend(starter);
            let checked = check_targets(&dirs)?;
            let mut report = config::check(&checked.dirs);
            report.warnings.extend(checked.warnings);
            for (dir, wanted) in &checked.compressors {
                if let Ok(c) = config::load_target(dir) {
                    if let Err(p) = c.image_compressor(Some(wanted)) {
                        report.errors.push(p);
                    }
                }
            }
            let dirs = checked.dirs;
            let mut out = String::new();
            for w in &report.warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            for p in &report.errors {
                out.push_str(&format!("{p}\n"));
            }
            let code = if report.errors.is_empty() {
                out.push_str(&format!("{} configuration(s) valid\n", dirs.len()));
                0
            } else {
                out.push_str(&format!("{} problem(s)\n", report.errors.len()));
                2
            };
            print_quietly_on_closed_pipe(&out)?;
            Ok(code)
        }
        Command::ImportStarter { script } => {
            let text = starter::read_script(&script).map_err(|e| UsageError(e.to_string()))?;
            let toml =
                starter::import_starter(&text, &script).map_err(|e| UsageError(e.to_string()))?;
            print_quietly_on_closed_pipe(&toml)?;
            Ok(0)
        }
        Command::Run { starter, flags } => cmd_run(sys, &starter, flags),
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
            explore::shell(
                sys.as_ref(),
                &tree_arg(tree),
                &run,
                target.as_deref(),
                &args,
            )
        }
        Command::Status { run, json, tree } => {
            commands::status(&tree_arg(tree), run.as_deref(), json)?;
            Ok(0)
        }
        Command::Stop { run, timeout, tree } => build_helper::stop::command(
            &tree_arg(tree),
            run.as_deref(),
            std::time::Duration::from_secs(timeout),
            &mut std::io::stdout(),
        ),
        Command::Umount { run, all, tree } => {
            if run.is_none() && !all {
                return Err(UsageError(
                    "umount needs a run (`build-helper status` lists them), or --all for every \
                     run of the tree"
                        .into(),
                )
                .into());
            }
            commands::umount(sys.as_ref(), &tree_arg(tree), run.as_deref())?;
            Ok(0)
        }
        Command::Generate { action } => {
            match action {
                GenerateAction::Man { dir } => {
                    for page in clidocs::write_man_pages(Cli::command(), &dir)? {
                        println!("{}", page.display());
                    }
                }
                GenerateAction::Completion { shell } => {
                    let script = clidocs::completion(Cli::command(), shell);
                    clidocs::write_out(&mut std::io::stdout().lock(), &script)
                        .context("writing the completion script to standard output")?;
                }
            }
            Ok(0)
        }
        Command::DistccHelper {
            history,
            listen,
            port,
            allow,
            jobs,
            tree,
        } => {
            let cwd = std::env::current_dir().context("reading the current directory")?;
            let history = HistorySel::parse(&history, &cwd)
                .map_err(|e| UsageError(format!("--history {history}: {e}")))?;
            let jobs = jobs.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get() as u32)
                    .unwrap_or(1)
            });
            build_helper::distcc::serve(
                sys.as_ref(),
                &build_helper::distcc::HelperOptions {
                    tree: tree_arg(tree),
                    history,
                    listen: listen.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
                    listen_given: listen.is_some(),
                    port,
                    allow,
                    jobs,
                },
            )
        }
        Command::Binhost { run, tree } => {
            build_helper::binhost::command(sys.as_ref(), &tree_arg(tree), &run)
        }
        Command::Boot {
            build,
            stack,
            load,
            docache,
            append,
            medium,
            accel,
            memory,
            expect,
            run,
            timeout,
            tree,
        } => {
            let colon = |s: String| -> Vec<String> {
                s.split(':')
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            let req = boot::BootRequest {
                stack: stack.map(colon),
                load: load.map(colon),
                docache,
                append: append
                    .iter()
                    .flat_map(|a| a.split_whitespace().map(str::to_string))
                    .collect(),
                medium: medium.map(|m| match m {
                    MediumArg::None => boot::Medium::None,
                    MediumArg::NineP => boot::Medium::NineP,
                    MediumArg::Disk => boot::Medium::Disk,
                }),
                accel: match accel {
                    AccelArg::Auto => None,
                    AccelArg::Kvm => Some(boot::Accel::Kvm),
                    AccelArg::Tcg => Some(boot::Accel::Tcg),
                },
                memory_mib: memory,
                smoke: expect.is_some() || run.is_some(),
            };
            let watch = match (expect, run) {
                (Some(text), _) => Some(BootWatch::Expect(text)),
                (None, Some(cmd)) => Some(BootWatch::Run(cmd)),
                (None, None) => None,
            };
            cmd_boot(&tree_arg(tree), &build, &req, watch, timeout)
        }
        Command::Attach { run, tree } => attach::daemon::command(&tree_arg(tree), run.as_deref()),
        Command::Supervise { run, mode, lock_fd } => {
            attach::daemon::serve(sys, &run, &mode, lock_fd)
        }
        Command::Worker {
            run,
            target,
            interactive,
            join_ns,
        } => {
            if let Some(pid) = join_ns {
                build_helper::worker::join_namespace(sys.as_ref(), pid)?;
            }
            let target = config::Target::parse(&target).map_err(|e| UsageError(e.to_string()))?;
            build_helper::worker::main(sys.as_ref(), &run, &target, interactive)
        }
    }
}

/// What `boot` watches the console for: a text (`--expect`) or a command's end (`--run`).
enum BootWatch {
    Expect(String),
    Run(String),
}

/// `build-helper boot`: locate, prepare, then run QEMU on the terminal, as a smoke test or
/// with a command typed on the booted console.
fn cmd_boot(
    tree: &Path,
    what: &str,
    req: &boot::BootRequest,
    watch: Option<BootWatch>,
    timeout: u64,
) -> anyhow::Result<i32> {
    // A command the console cannot take is refused before anything boots.
    let marker = boot::run::new_marker();
    let typed = match &watch {
        Some(BootWatch::Run(cmd)) => {
            Some(boot::run::command_line(&marker, cmd).map_err(|e| UsageError(e.to_string()))?)
        }
        _ => None,
    };
    let build = boot::find_build(tree, what).map_err(|e| UsageError(e.to_string()))?;
    let (qemu, spec) = boot::prepare(&build, req).map_err(|e| UsageError(e.to_string()))?;
    let args = boot::qemu::qemu_args(&spec);
    let accel = match spec.accel {
        boot::Accel::Kvm => "KVM",
        boot::Accel::Tcg => "TCG, software emulation",
    };
    eprintln!("build-helper: booting {} ({accel})", build.dir.display());
    eprintln!("build-helper: {} {}", qemu.display(), args.join(" "));
    let timeout_d = std::time::Duration::from_secs(timeout);
    let save = |bytes: &[u8]| -> String {
        match boot::save_transcript(&build.dir, bytes) {
            Ok(p) => format!("transcript: {}", p.display()),
            Err(e) => format!("the transcript was not kept: {e}"),
        }
    };
    match (watch, typed) {
        (Some(BootWatch::Run(_)), Some(typed)) => {
            let r = boot::console::run(
                &qemu,
                &args,
                &typed,
                &marker,
                timeout_d,
                &mut std::io::stderr(),
            )?;
            let t = save(&r.transcript);
            match r.outcome {
                boot::console::RunOutcome::Ran { ran, booted } => {
                    eprintln!(
                        "\nbuild-helper: a shell answered {:.1} s after QEMU started; the \
                         command exited with {}; {t}",
                        booted.as_secs_f64(),
                        ran.status
                    );
                    print_quietly_on_closed_pipe(&ran.output)?;
                    Ok(ran.status)
                }
                boot::console::RunOutcome::Ended(status) => {
                    eprintln!(
                        "\nbuild-helper: QEMU ended ({status}) before the command finished; {t}"
                    );
                    Ok(125)
                }
                boot::console::RunOutcome::TimedOut { shell } => {
                    let what = if shell {
                        "the command did not finish"
                    } else {
                        "no shell answered on the console"
                    };
                    eprintln!("\nbuild-helper: {what} within {timeout} s (QEMU stopped); {t}");
                    Ok(124)
                }
            }
        }
        (Some(BootWatch::Expect(expect)), _) => {
            let r = boot::console::smoke(&qemu, &args, &expect, timeout_d, &mut std::io::stdout())?;
            let t = save(&r.transcript);
            match r.outcome {
                boot::console::Outcome::Seen(at) => {
                    eprintln!(
                        "build-helper: `{expect}` seen after {:.1} s; {t}",
                        at.as_secs_f64()
                    );
                    Ok(0)
                }
                boot::console::Outcome::Ended(status) => {
                    eprintln!(
                        "build-helper: QEMU ended ({status}) before `{expect}` was seen; {t}"
                    );
                    Ok(1)
                }
                boot::console::Outcome::TimedOut => {
                    eprintln!("build-helper: no `{expect}` within {timeout} s (QEMU stopped); {t}");
                    Ok(1)
                }
            }
        }
        _ => {
            let status = boot::console::interactive(&qemu, &args)?;
            Ok(status.code().unwrap_or(1))
        }
    }
}

/// Writes `text` to standard output; a closed pipe (`| head`) ends the output quietly.
fn print_quietly_on_closed_pipe(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// Sets SIGPIPE's disposition. Rust ignores SIGPIPE, so a write to a closed pipe is an
/// error, and `println!` panics on it. Commands that only print (plan, check, status,
/// history, umount, `--help`) take the default back and end quietly when the reader goes
/// away, as `ls | head` does; `run`, `shell`, the worker, `boot` and `distcc-helper` keep
/// ignoring it: they own sockets, terminals and children and handle write errors themselves.
fn sigpipe(default: bool) {
    use nix::sys::signal::{signal, SigHandler, Signal};
    let handler = if default {
        SigHandler::SigDfl
    } else {
        SigHandler::SigIgn
    };
    // SAFETY: no handler function is installed, only a disposition; nothing else changes
    // signal dispositions concurrently this early.
    let _ = unsafe { signal(Signal::SIGPIPE, handler) };
}

fn main() -> ExitCode {
    build_helper::attach::timing::mark_process_start();
    sigpipe(true);
    let cli = Cli::parse();
    let prints_only = match &cli.command {
        Command::Run { flags, .. } => flags.mount_hist,
        Command::Shell { .. }
        | Command::Attach { .. }
        | Command::Supervise { .. }
        | Command::Worker { .. }
        | Command::Boot { .. }
        | Command::DistccHelper { .. } => false,
        _ => true,
    };
    sigpipe(prints_only);
    // The one real system-call seam, handed down to every command.
    let sys: Arc<dyn Sys> = Arc::new(LinuxSys);
    match dispatch(cli, sys) {
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
