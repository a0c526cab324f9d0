//! `build-helper status`: shows runs, or one run's targets and steps (text or JSON).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{tree_flag, UsageError};
use crate::status::{self, RunEntry, StatusList, StatusOne, STATUS_FORMAT};
use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// The run (`<primary name>-<date>`).
    pub run: Option<String>,
    /// Print the status as a JSON document (format 1: state, progress, ETA and durations of
    /// every target and step; docs/status-json.md).
    #[arg(long)]
    pub json: bool,
    /// The tree (default: BUILD_HELPER_TREE, else the current directory).
    #[arg(long)]
    pub tree: Option<PathBuf>,
}

/// Prints the status.
pub(super) fn run(args: Args, _sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    print(&super::tree_arg(args.tree), args.run.as_deref(), args.json)?;
    Ok(0)
}

/// Prints the status of `tree`'s runs (`run` = `None`: one line per run) or of one run
/// (every step with state, exit code and duration, each target's state and ETA and its
/// running step's progress); as the JSON document with `json` (docs/status-json.md).
///
/// Errors: the runs cannot be read (not root), an unknown run, an unreadable checkpoint.
pub(super) fn print(tree: &Path, run: Option<&str>, json: bool) -> anyhow::Result<()> {
    if let Some(dir) = status::unreadable_runs(tree) {
        return Err(UsageError(format!(
            "build-helper status needs root to read the runs in {} (run directories are \
             private to root): run it as root, e.g. `sudo build-helper status{}`",
            dir.display(),
            tree_flag(tree)
        ))
        .into());
    }
    // The list in text shows no steps: it needs neither the events nor the history.
    let detail = json || run.is_some();
    let now = crate::sys::now_us();
    let mut entries = status::entries(tree, run, detail, now)?;
    if json {
        let doc = match run {
            Some(_) => match entries.pop() {
                Some(run) => serde_json::to_string_pretty(&StatusOne {
                    format: STATUS_FORMAT,
                    run,
                })?,
                None => return Ok(()),
            },
            None => serde_json::to_string_pretty(&StatusList {
                format: STATUS_FORMAT,
                runs: entries,
            })?,
        };
        println!("{doc}");
        return Ok(());
    }
    // Runs without steps to show first, then those that build.
    let (builds, others): (Vec<&RunEntry>, Vec<&RunEntry>) = entries
        .iter()
        .partition(|e| matches!(e, RunEntry::Build(_)));
    others.into_iter().for_each(print_list_entry);
    if run.is_none() && builds.is_empty() {
        println!("no runs in {}", crate::rundir::work(tree).display());
    }
    for e in builds {
        match e {
            RunEntry::Build(r) if run.is_some() => print!("{}", status::render_run(r, now)),
            _ => print_list_entry(e),
        }
    }
    Ok(())
}

/// Prints the line of `e` in the text list of runs.
fn print_list_entry(e: &RunEntry) {
    match e {
        RunEntry::Build(r) => println!("{}", status::render_list_line(r)),
        RunEntry::Exploration { run_id, mounted } => println!(
            "{run_id}  exploration (--mount-hist), {}",
            if *mounted { "mounted" } else { "not mounted" }
        ),
        RunEntry::Unreadable { run_id, error } => println!("{run_id}  unreadable: {error}"),
    }
}
