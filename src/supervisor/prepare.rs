//! Choosing the run (new, resume, retry) and entering a private mount namespace, before the
//! async runtime starts (unshare(2) with CLONE_NEWNS must happen while single-threaded).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::engine::Checkpoint;
use crate::error::UsageError;
use crate::plan::{self, Plan};
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
}

/// Run directories under `<tree>/work` whose checkpoint says not finished, oldest first.
pub fn unfinished_runs(tree: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(tree.join("work")) else {
        return Vec::new();
    };
    let mut runs: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            Checkpoint::load(p).is_ok_and(|cp| !cp.finished) && p.join("plan.json").is_file()
        })
        .collect();
    runs.sort_by_key(|p| {
        std::fs::metadata(p.join("plan.json"))
            .and_then(|m| m.modified())
            .ok()
    });
    runs
}

fn existing_run(tree: &Path, name: Option<&str>) -> anyhow::Result<PathBuf> {
    match name {
        Some(name) => {
            let dir = plan::run_dir(tree, name);
            if dir.join("plan.json").is_file() {
                Ok(dir)
            } else {
                Err(UsageError(format!(
                    "run `{name}` does not exist in {}: see `build-helper status` for the runs",
                    tree.join("work").display()
                ))
                .into())
            }
        }
        None => unfinished_runs(tree).pop().ok_or_else(|| {
            UsageError(format!(
                "no unfinished run in {} to continue; start one with `build-helper run STARTER`",
                tree.join("work").display()
            ))
            .into()
        }),
    }
}

/// Plans a new run or reads an existing one back, and writes plan and checkpoint.
///
/// Errors: [`UsageError`] for bad input (starter, configuration, history, unknown run).
pub fn prepare(starter: &Starter, history: &HistorySel, mode: &Mode) -> anyhow::Result<Prepared> {
    let tree = &starter.tree;
    let (plan, checkpoint, word) = match mode {
        Mode::New => {
            let hist = crate::history::resolve(tree, history).map_err(UsageError)?;
            let plan = plan::build(starter, &plan::date_now(), hist)
                .map_err(|e| UsageError(e.to_string()))?;
            let cp = Checkpoint::new(&plan);
            (plan, cp, "new")
        }
        Mode::Resume(name) | Mode::Retry(name) => {
            let dir = existing_run(tree, name.as_deref())?;
            let plan_path = dir.join("plan.json");
            let plan: Plan = serde_json::from_slice(
                &std::fs::read(&plan_path)
                    .with_context(|| format!("reading {}", plan_path.display()))?,
            )
            .map_err(|e| {
                UsageError(format!(
                    "{}: malformed plan ({e}); this run cannot be continued",
                    plan_path.display()
                ))
            })?;
            let mut cp = Checkpoint::load(&dir).map_err(|e| UsageError(e.to_string()))?;
            let word = if matches!(mode, Mode::Retry(_)) {
                cp.reset_for_retry();
                "retry"
            } else {
                "resume"
            };
            (plan, cp, word)
        }
    };
    let dir = plan.run_dir();
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_vec_pretty(&plan).context("encoding the plan")?;
    crate::fsutil::write_atomic(&dir.join("plan.json"), &json)?;
    checkpoint.save(&dir)?;
    Ok(Prepared {
        plan,
        checkpoint,
        mode: word,
    })
}

/// Enters a private mount namespace whose mounts never propagate to the build machine
/// (catalyst does the same), so every mount of the run disappears with its last process.
/// Must be called while the process is single-threaded.
///
/// Errors: not root, or the kernel refuses.
pub fn private_namespace() -> anyhow::Result<()> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context("unshare(CLONE_NEWNS): cannot create a private mount namespace")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("making / private in the run's mount namespace")?;
    Ok(())
}
