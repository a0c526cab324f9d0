//! Choosing the run (new, resume, retry) and entering a private mount namespace, before the
//! async runtime starts (unshare(2) with CLONE_NEWNS must happen while single-threaded).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::engine::Checkpoint;
use crate::error::{NothingToDo, UsageError};
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

/// The run `--resume` / `--retry` continue: `name`, else the newest unfinished run of this
/// starter (never another starter's run: two starters share `work/`). Resuming a finished
/// run is [`NothingToDo`]: nothing is rewritten, archived or mounted.
///
/// Errors: [`UsageError`] for an unknown run or none to continue; [`NothingToDo`].
fn existing_run(starter: &Starter, name: Option<&str>, mode: &Mode) -> anyhow::Result<PathBuf> {
    let tree = &starter.tree;
    let dir = match name {
        Some(name) => crate::commands::run_named(tree, name)?,
        None => {
            let (mine, others): (Vec<PathBuf>, Vec<PathBuf>) =
                unfinished_runs(tree).into_iter().partition(|d| {
                    crate::commands::load_plan(d).is_ok_and(|p| p.starter == starter.path)
                });
            let Some(dir) = mine.into_iter().next_back() else {
                let others: Vec<String> = others
                    .iter()
                    .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect();
                let hint = if others.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (unfinished runs of other starters: {}; continue one with \
                         `--resume RUN`)",
                        others.join(", ")
                    )
                };
                return Err(UsageError(format!(
                    "no unfinished run of {} in {} to continue{hint}; start one with \
                     `build-helper run {}`",
                    starter.path.display(),
                    tree.join("work").display(),
                    starter.path.display()
                ))
                .into());
            };
            dir
        }
    };
    if matches!(mode, Mode::Resume(_)) && Checkpoint::load(&dir).is_ok_and(|cp| cp.finished) {
        let run = dir.file_name().unwrap_or_default().to_string_lossy();
        let tree = crate::commands::tree_flag(tree);
        return Err(NothingToDo(format!(
            "run {run} is finished: nothing to continue, nothing changed (`build-helper \
             status{tree} {run}` shows it; `--retry {run}` builds it again)"
        ))
        .into());
    }
    Ok(dir)
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
            let dir = existing_run(starter, name.as_deref(), mode)?;
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
/// The new namespace starts with copies of every mount of the machine; copies of other runs'
/// mount directories (a `--mount-hist` exploration) are detached at once, so this run never
/// keeps them, or their loop devices, busy. Must be called while the process is
/// single-threaded.
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
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for m in other_runs(&info) {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
    Ok(())
}

/// The mount directories `<tree>/work/<run>/M` of runs (identified by their mount journal)
/// that have mounts in a mountinfo text.
fn other_runs(mountinfo: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for line in mountinfo.lines() {
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let m = Path::new(mp)
            .ancestors()
            .find(|a| {
                a.file_name().is_some_and(|n| n == "M")
                    && a.parent()
                        .is_some_and(|run| crate::mounts::journal::Journal::path(run).is_file())
            })
            .map(Path::to_path_buf);
        if let Some(m) = m {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn other_runs_finds_mount_directories_of_runs_with_a_journal() {
        let tree = tempfile::tempdir().unwrap();
        let run = tree.path().join("work/a-1");
        std::fs::create_dir_all(run.join("M")).unwrap();
        std::fs::write(run.join("journal.json"), b"{}").unwrap();
        std::fs::create_dir_all(tree.path().join("work/b-2/M")).unwrap();
        let m = run.join("M");
        let info = format!(
            "1 0 0:1 / / rw - ext4 /dev/vda rw\n\
             2 1 0:2 / {m} rw - tmpfs tmpfs rw\n\
             3 2 0:3 / {m}/m/proc rw - proc proc rw\n\
             4 1 0:4 / {other}/M/m rw - overlay overlay rw\n",
            m = m.display(),
            other = tree.path().join("work/b-2").display()
        );
        assert_eq!(super::other_runs(&info), [m]);
    }
}
