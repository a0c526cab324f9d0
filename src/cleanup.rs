//! Cleaning up after runs that ended badly: a dead run's processes and mounts
//! ([`clean_dead_run`], for `umount` and a `--resume` of a killed run), and the partial
//! archives a killed archive left in `history/` ([`remove_stale_partials`]), never touching
//! what a live run holds or may still write.

use std::path::{Path, PathBuf};

use crate::mounts;
use crate::rundir;
use crate::rundir::journal::Journal;
use crate::sys::procs;
use crate::sys::Sys;

/// Why a dead run could not be cleaned up.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// Bad input: the run is live, or its journal is unusable (exit status 2).
    #[error("{0}")]
    Usage(String),
    /// Something still holds the run's mounts or survived (exit status 1).
    #[error("{0}")]
    Held(String),
}

/// What cleaning up a dead run removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cleaned {
    /// Mounts removed (in this namespace, and those that went with the run's namespace).
    pub mounts: usize,
    /// Processes of the run that were still running and were killed.
    pub processes: usize,
}

/// Whether process `pid` sees a mount under the run's `m_dir`: the namespace the journal
/// names is the dead run's only while it holds the run's mounts. The kernel reuses a gone
/// namespace's inode number (nsfs), so the number alone could name another run's live
/// namespace, whose processes must not be killed.
fn holds_the_runs_mounts(sys: &dyn Sys, pid: u32, m_dir: &Path) -> bool {
    sys.mount_table_of(pid)
        .is_ok_and(|table| !crate::mounts::exec::mounts_under(&table, m_dir).is_empty())
}

/// Tears down a run whose supervisor is gone: kills every process it left (those in its
/// private mount namespace, with the archiver and any step; those chrooted below its `M`),
/// which takes the namespace's mounts and loop devices with them; unmounts what remains in
/// this namespace; and removes the journal only when no process anywhere still holds a
/// mount under `M`. Refuses a live run (its lock is held by another process). Without a
/// journal nothing was mounted: nothing to do.
///
/// Errors: [`CleanError`]: bad input (live run, bad journal) or what still holds the
/// mounts.
pub fn clean_dead_run(sys: &dyn Sys, run_dir: &Path) -> Result<Cleaned, CleanError> {
    let Some(journal) = Journal::load(run_dir).map_err(CleanError::Usage)? else {
        return Ok(Cleaned::default());
    };
    if let Some(pid) = rundir::live_pid(run_dir).filter(|&p| p != std::process::id()) {
        return Err(CleanError::Usage(format!(
            "the run in {} is still active (supervisor pid {pid}): stop it (Ctrl-C, or kill \
             {pid}) and run `build-helper umount` again",
            run_dir.display()
        )));
    }
    let m_dir = journal.m_dir.clone();
    let mut pids: Vec<u32> = Vec::new();
    if let Some(ns) = journal.mnt_ns.filter(|_| !journal.host_namespace) {
        // A dead run's namespace lives on only through processes it left.
        if procs::own_mnt_ns(sys) != Some(ns) {
            pids.extend(
                procs::in_namespace(sys, ns)
                    .into_iter()
                    .filter(|&p| holds_the_runs_mounts(sys, p, &m_dir)),
            );
        }
    }
    for p in procs::rooted_in(sys, &m_dir) {
        if !pids.contains(&p) {
            pids.push(p);
        }
    }
    // Mounts that go away with the namespace when its last process ends.
    let mut in_ns = 0;
    if let Some(&first) = pids.first() {
        if let Ok(info) = sys.mount_table_of(first) {
            in_ns = mounts::mounts_under(&info, &m_dir).len();
        }
    }
    let left = procs::kill_all(sys, &pids, std::time::Duration::from_secs(10));
    if !left.is_empty() {
        return Err(CleanError::Held(format!(
            "process(es) {left:?} of the run in {} survived SIGKILL (uninterruptible I/O?); \
             the journal is kept: run `build-helper umount` again when they are gone",
            run_dir.display()
        )));
    }
    let removed =
        mounts::teardown(sys, &m_dir, false).map_err(|e| CleanError::Held(e.to_string()))?;
    // Other mount namespaces may hold copies of these mounts (a process that started while
    // they were mounted in the build machine's namespace, e.g. under --mount-hist).
    let holders: Vec<u32> = sys
        .pids()
        .into_iter()
        .filter(|pid| {
            sys.mount_table_of(*pid)
                .is_ok_and(|info| !mounts::mounts_under(&info, &m_dir).is_empty())
        })
        .collect();
    if !holders.is_empty() {
        return Err(CleanError::Held(format!(
            "process(es) {holders:?} in other mount namespaces still hold copies of mounts \
             under {}; the journal is kept: the copies go away when those processes end, then \
             run `build-helper umount` again",
            m_dir.display()
        )));
    }
    Journal::remove(run_dir).map_err(|e| {
        CleanError::Held(format!(
            "removing the journal of {}: {e}",
            run_dir.display()
        ))
    })?;
    Ok(Cleaned {
        mounts: removed + in_ns,
        processes: pids.len(),
    })
}

/// The histories a run of `tree` may be using (absolute paths): those in the plan of an unfinished run or of a run with
/// mounts (its journal exists).
pub fn histories_in_use(tree: &Path) -> Vec<PathBuf> {
    crate::rundir::runs(tree)
        .into_iter()
        .filter(|dir| {
            let unfinished = crate::rundir::load_checkpoint(dir, None).is_ok_and(|cp| !cp.finished);
            unfinished || crate::rundir::journal::Journal::path(dir).exists()
        })
        .filter_map(|dir| crate::rundir::load_plan(&dir).ok())
        .filter_map(|p| p.layout.history.map(|(path, _)| path))
        .collect()
}

/// The plan dates of `tree`'s live runs: a partial archive of one of these dates may be
/// being written right now.
fn archiving_dates(tree: &Path) -> Vec<String> {
    crate::rundir::runs(tree)
        .into_iter()
        .filter(|dir| crate::rundir::live_pid(dir).is_some())
        .filter_map(|dir| crate::rundir::load_plan(&dir).ok())
        .map(|p| p.date)
        .collect()
}

/// Removes the partial archives an interrupted archive left in `tree`'s history folder
/// (never one a live run may be writing); returns the removed paths. Called by `umount`,
/// `history prune` and at the start of a run.
///
/// Errors: a removal failed (the message names the path).
pub fn remove_stale_partials(tree: &Path) -> Result<Vec<PathBuf>, String> {
    crate::history::remove_partials(tree, &archiving_dates(tree))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_without_the_runs_mounts_is_not_the_dead_runs() {
        let m_dir = Path::new("/var/tmp/tree/work/a-1/M");
        // Another run's live namespace that got the dead one's inode number back.
        let other = crate::sys::RecordingSys::default();
        other.add_mounted(Path::new("/var/tmp/tree/work/b-2/M/root"));
        assert!(!holds_the_runs_mounts(&other, 4242, m_dir));
        // The dead run's own namespace still holds its mounts.
        let dead = crate::sys::RecordingSys::default();
        dead.add_mounted(&m_dir.join("root"));
        assert!(holds_the_runs_mounts(&dead, 4242, m_dir));
        // A sibling directory whose name starts like M is not under it.
        let sibling = crate::sys::RecordingSys::default();
        sibling.add_mounted(Path::new("/var/tmp/tree/work/a-1/M2/root"));
        assert!(!holds_the_runs_mounts(&sibling, 4242, m_dir));
    }
}
