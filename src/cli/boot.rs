//! `build-helper boot`: starts a build in QEMU, as a smoke test (`--expect`), with a command (`--run`) or interactively.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::boot;
use crate::error::UsageError;
use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// A target `<tuple>.<name>` (its newest build under builds/) or a build directory
    /// `builds/<tuple>.<name>.<date>/`.
    pub build: String,
    /// `squash_stack`: world images stacked over base, leftmost on top, colon-separated
    /// (default: every world of the target, children above their parents; for a target
    /// without worlds none is passed and the init stacks `extra` when it finds one; ``
    /// for base only).
    #[arg(long)]
    pub stack: Option<String>,
    /// `squash_load`: images copied into memory with --docache, colon-separated.
    #[arg(long)]
    pub load: Option<String>,
    /// `docache`: the initramfs copies the images into memory and releases the medium.
    #[arg(long)]
    pub docache: bool,
    /// More kernel arguments (repeatable; each may hold several words).
    #[arg(long, allow_hyphen_values = true)]
    pub append: Vec<String>,
    /// How the build directory reaches the guest (default: 9p when it holds an image,
    /// else none).
    #[arg(long, value_enum)]
    pub medium: Option<MediumArg>,
    /// CPU: KVM when /dev/kvm works here, else TCG (software emulation).
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: AccelArg,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory: u32,
    /// Smoke test: exit 0 when the console prints this text, 1 otherwise; the console
    /// transcript is kept in the build directory (boot-console.log).
    #[arg(long, conflicts_with = "run")]
    pub expect: Option<String>,
    /// Once the booted console has a shell (busybox init's askfirst, or a prompt), type
    /// this shell command, print its output on standard output (the console goes to
    /// standard error) and exit with its status; 124 when --timeout passes first, 125
    /// when QEMU ends first. The transcript is kept as with --expect.
    #[arg(long)]
    pub run: Option<String>,
    /// With --expect or --run: seconds (from QEMU's start) to wait for the text, or for
    /// the command's end.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// The tree (default: BUILD_HELPER_TREE, else the current directory).
    #[arg(long)]
    pub tree: Option<PathBuf>,
}

/// `--medium`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum MediumArg {
    /// No medium: every image is inside the initramfs.
    None,
    /// virtio 9p, read-only (squash_type=9p).
    #[value(name = "9p")]
    NineP,
    /// A read-only virtio disk showing the directory as FAT (squash_type=vfat).
    Disk,
}

/// `--accel`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

/// Boots; returns QEMU's or the command's status (see the command's help).
pub(super) fn run(args: Args, _sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    let Args {
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
    } = args;
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
    boot_and_watch(&super::tree_arg(tree), &build, &req, watch, timeout)
}

/// What `boot` watches the console for: a text (`--expect`) or a command's end (`--run`).
enum BootWatch {
    Expect(String),
    Run(String),
}

/// Locates and prepares the build, then runs QEMU on the terminal, as a smoke test or
/// with a command typed on the booted console.
fn boot_and_watch(
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
                    super::print_quietly_on_closed_pipe(&ran.output)?;
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
