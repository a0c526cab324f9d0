//! Choosing the run (new, resume, retry) and entering a private mount namespace, before the
//! async runtime starts (unshare(2) with CLONE_NEWNS must happen while single-threaded).

use std::path::{Path, PathBuf};

use crate::engine::Checkpoint;
use crate::error::{NothingToDo, UsageError};
use crate::plan::{self, Plan};
use crate::rundir;
use crate::starter::{HistorySel, Starter};

/// How the run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A new run.
    New,
    /// Continue a run from each target's first step that is not done (`Some(name)` picks
    /// the run; `None` the newest unfinished one).
    Resume(Option<String>),
    /// Restart a run's targets from their first step.
    Retry(Option<String>),
}

/// A run ready to supervise.
pub struct Prepared {
    /// The plan (new, or read back from the run directory).
    pub plan: Plan,
    /// The checkpoint (fresh, restored, or reset for retry).
    pub checkpoint: Checkpoint,
    /// `new`, `resume` or `retry`.
    pub mode: &'static str,
    /// The run directory's lock, held until the supervisor ends.
    pub lock: rundir::Lock,
}

fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

/// The run `--resume`/`--retry` continues: `name`, or the newest run of this starter (by its
/// plan's time) that is not finished (never another starter's run: two starters share
/// `work/`). Resuming a finished run is [`NothingToDo`]. A run whose checkpoint cannot be read is never skipped: it is
/// refused, naming the file and what to do, unless `retry` (which starts it again from its
/// plan). Runs without a checkpoint (`--mount-hist` explorations) are not builds.
fn existing_run(starter: &Starter, name: Option<&str>, retry: bool) -> anyhow::Result<PathBuf> {
    let tree = &starter.tree;
    let candidates = match name {
        Some(name) => vec![rundir::open(tree, name).map_err(usage)?],
        None => {
            let mut runs: Vec<PathBuf> = rundir::runs(tree)
                .into_iter()
                .filter(|d| d.join(crate::rundir::CHECKPOINT).exists())
                .collect();
            runs.sort_by_key(|p| {
                std::fs::metadata(p.join(rundir::PLAN))
                    .and_then(|m| m.modified())
                    .ok()
            });
            runs.reverse();
            runs
        }
    };
    let mut others: Vec<String> = Vec::new();
    for dir in candidates {
        if name.is_none() {
            // Never another starter's run: two starters share `work/`.
            if let Ok(plan) = rundir::load_plan(&dir) {
                if plan.starter != starter.path {
                    if rundir::load_checkpoint(&dir, None).is_ok_and(|cp| !cp.finished) {
                        others.push(rundir::id_of(&dir));
                    }
                    continue;
                }
            }
        }
        match rundir::load_checkpoint(&dir, None) {
            Ok(cp) if cp.finished && name.is_none() => continue,
            Ok(cp) if cp.finished && !retry => {
                // Resuming a finished run: nothing is rewritten, archived or mounted.
                let run = rundir::id_of(&dir);
                let tree = crate::error::tree_flag(tree);
                return Err(NothingToDo(format!(
                    "run {run} is finished: nothing to continue, nothing changed (`build-helper \
                     status{tree} {run}` shows it; `--retry {run}` builds it again)"
                ))
                .into());
            }
            Ok(_) => return Ok(dir),
            Err(_) if retry => return Ok(dir),
            Err(e) => return Err(corrupt(&dir, &starter.path, &e.to_string())),
        }
    }
    let hint = if others.is_empty() {
        String::new()
    } else {
        format!(
            " (unfinished runs of other starters: {}; continue one with `--resume RUN`)",
            others.join(", ")
        )
    };
    Err(usage(format!(
        "no unfinished run of {} in {} to continue{hint}; start one with `build-helper run {}`",
        starter.path.display(),
        rundir::work(tree).display(),
        starter.path.display()
    )))
}

/// The refusal for a run whose checkpoint cannot be used.
fn corrupt(dir: &Path, starter: &Path, why: &str) -> anyhow::Error {
    let id = rundir::id_of(dir);
    usage(format!(
        "{why}\nrun {id} cannot be resumed from this checkpoint: start its targets again from \
         their first step with `build-helper run {} --resume {id} --retry`, or discard the run \
         (`build-helper umount {id}`, then remove {})",
        starter.display(),
        dir.display()
    ))
}

/// Plans a new run or reads an existing one back, takes the run directory's lock, and writes
/// plan and checkpoint. A tree runs one build at a time: with a live run in the tree this
/// is refused (naming it and its supervisor's pid). For `--resume`/`--retry`, what the dead
/// supervisor left (processes in its namespace, mounts) is cleaned up first, and the crash
/// rule is applied to the checkpoint (its supervisor is gone: the lock was free).
///
/// Errors: [`UsageError`] for bad input (starter, configuration, history, unknown run,
/// live run, unusable checkpoint).
pub fn prepare(
    sys: &dyn crate::sys::Sys,
    starter: &Starter,
    history: &HistorySel,
    mode: &Mode,
) -> anyhow::Result<Prepared> {
    let tree = &starter.tree;
    let guard = rundir::tree_guard(tree)?;
    if let Some(live) = rundir::any_live(tree) {
        return Err(usage(format!(
            "{live}\na tree runs one build at a time (mounts and histories are shared)"
        )));
    }
    let (plan, checkpoint, word, lock) = match mode {
        Mode::New => {
            let hist = crate::history::resolve(tree, history).map_err(UsageError)?;
            let (plan, lock) =
                rundir::claim(&mut |date| plan::build(starter, date, hist.clone()).map_err(usage))?;
            let cp = Checkpoint::new(&plan);
            (plan, cp, "new", lock)
        }
        Mode::Resume(name) | Mode::Retry(name) => {
            let retry = matches!(mode, Mode::Retry(_));
            let dir = existing_run(starter, name.as_deref(), retry)?;
            let lock = rundir::lock(&dir).map_err(usage)?;
            let plan = rundir::load_plan(&dir).map_err(|e| {
                usage(format!(
                    "{e}\nthis run cannot be continued; start a new run"
                ))
            })?;
            let mut cp = match rundir::load_checkpoint(&dir, Some(&plan)) {
                Ok(cp) => cp,
                Err(_) if retry => Checkpoint::new(&plan),
                Err(e) => return Err(corrupt(&dir, &starter.path, &e.to_string())),
            };
            crate::cleanup::clean_dead_run(sys, &dir).map_err(|e| match e {
                crate::cleanup::CleanError::Usage(m) => usage(m),
                held => anyhow::Error::new(held),
            })?;
            cp.restore();
            if retry {
                cp.reset_for_retry();
            }
            (plan, cp, if retry { "retry" } else { "resume" }, lock)
        }
    };
    // No other run is live: partial archives other than this run's are left by an archive
    // that was killed, and are removed before they fill the disk.
    if let Err(e) = crate::cleanup::remove_stale_partials(tree) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "warning: {e}");
    }
    drop(guard);
    let dir = plan.run_dir();
    rundir::private_dir(&dir)?;
    rundir::private_dir(&rundir::logs(&dir))?;
    rundir::save_plan(&dir, &plan)?;
    rundir::save_checkpoint(&dir, &checkpoint)?;
    Ok(Prepared {
        plan,
        checkpoint,
        mode: word,
        lock,
    })
}
