//! Executing the engine's worker actions: starting a worker (every one starts with the run;
//! secondary ones wait, connected, until the engine releases them), mounting a secondary
//! target's stacked environment, reporting a worker's exit to the engine (which decides when
//! it is gone: `engine::machine::Input::WorkerExited`), and killing what it left.

use anyhow::Context;

use super::{spawn, ExitWait, Msg, Supervisor};
use crate::config::Target;

/// How many waiting targets are mounted at the same time: the processors (the mounts of one
/// target are syscalls and path walks, CPU-bound), between 2 and 8. More slots than
/// processors is slower: on 2 cores, 4 slots gave 86 / 193 ms (median / worst
/// toolchain-ready to first step, 64 targets, `scripts/bench-latency.sh 3 64`) against
/// 55 / 137 ms with 2.
pub(super) fn mount_slots() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

/// A secondary target's toolchain-independent preparation: `None` until its mounts
/// ([`crate::mounts::Layout::secondary_prepare_entries`]) are made, then what
/// [`crate::mounts::fill_upper`] made in its upper layer (nothing when the target's mount
/// made them). Locked while they are being made and while the target is mounted, so that
/// the early preparation and the target's mount never both make them.
pub(super) type Prepared = std::sync::Arc<std::sync::Mutex<Option<crate::mounts::upper::Filled>>>;
use crate::engine::events::Event;

/// Mounts a released target through `apply`: its toolchain-independent mounts `prepare`
/// first unless `done` says they are made, then its stacked environment without the copies
/// [`crate::mounts::fill_upper`] made in its upper layer already.
fn mount_released<E>(
    done: &mut Option<crate::mounts::upper::Filled>,
    prepare: &[crate::mounts::Entry],
    stacked: &[crate::mounts::Entry],
    mut apply: impl FnMut(&[crate::mounts::Entry]) -> Result<(), E>,
) -> Result<(), E> {
    let filled = match done {
        Some(filled) => filled,
        None => {
            apply(prepare)?;
            done.insert(Default::default())
        }
    };
    apply(&filled.not_copied(stacked))
}

impl Supervisor {
    /// The flag of `target`'s toolchain-independent mounts.
    fn prepared(&mut self, target: &Target) -> Prepared {
        std::sync::Arc::clone(&self.held.entry(target.clone()).or_default().prepared)
    }

    /// Starts making, for the secondary `target` unless it is mounted already, the mounts
    /// of its environment that do not depend on its toolchain
    /// ([`crate::mounts::Layout::secondary_prepare_entries`]) and filling its upper layer
    /// ([`crate::mounts::fill_upper`]: the mount then writes nothing through the overlay), on
    /// a blocking thread through the mount slots (the engine asks for every secondary
    /// before any target is released). A failure is not reported here: the target's mount
    /// (at its release) makes them again and reports it.
    pub(super) fn prepare_secondary(&mut self, target: &Target) {
        let Ok(Some(dirs)) = self.to_mount(target) else {
            return;
        };
        let entries = self.plan.layout.secondary_prepare_entries(&dirs);
        let stacked = self.plan.layout.secondary_stacked_entries(&dirs);
        let prepared = self.prepared(&dirs.target);
        let journal = std::sync::Arc::clone(&self.journal);
        let sys = std::sync::Arc::clone(&self.sys);
        let m_dir = self.plan.layout.m_dir.clone();
        let run_dir = self.run_dir.clone();
        self.in_mount_slot(move || {
            let mut done = prepared.lock().unwrap_or_else(|p| p.into_inner());
            if done.is_none()
                && crate::mounts::apply_shared(sys.as_ref(), &m_dir, &entries, &journal, &run_dir)
                    .is_ok()
            {
                // Its overlay is not mounted (the lock is held until it is): what the
                // mount would write through it is written into the upper layer now.
                *done = Some(crate::mounts::fill_upper(&stacked));
            }
        });
    }

    /// Runs `work` on a blocking thread once one of the mount slots is free
    /// ([`mount_slots`], a fair semaphore), holding the slot until `work` returns, at the
    /// control work's priority ([`crate::sched`]); nothing runs when the slots were closed
    /// (the teardown).
    fn in_mount_slot(&self, work: impl FnOnce() + Send + 'static) {
        let slots = std::sync::Arc::clone(&self.mount_slots);
        tokio::spawn(async move {
            let Ok(permit) = slots.acquire_owned().await else {
                return;
            };
            let _ = tokio::task::spawn_blocking(move || {
                // Ahead of the build's processes: every waiting target waits for this one.
                crate::sched::with_control(work);
                drop(permit);
            })
            .await;
        });
    }

    /// Starts mounting a secondary target's stacked environment on a blocking thread (at most
    /// `mount_slots()` at a time), which answers with [`Msg::Mounted`]; returns the result at
    /// once (`Some`) when there is nothing to mount (the primary, or already mounted) or the
    /// target is unknown. What [`Supervisor::prepare_secondary`] made is not made again.
    pub(super) fn mount_secondary_async(&mut self, target: &Target) -> Option<Result<(), String>> {
        let dirs = match self.to_mount(target) {
            Ok(Some(dirs)) => dirs,
            Ok(None) => return Some(Ok(())),
            Err(e) => return Some(Err(e)),
        };
        let prepare = self.plan.layout.secondary_prepare_entries(&dirs);
        let stacked = self.plan.layout.secondary_stacked_entries(&dirs);
        let prepared = self.prepared(target);
        let journal = std::sync::Arc::clone(&self.journal);
        let sys = std::sync::Arc::clone(&self.sys);
        let m_dir = self.plan.layout.m_dir.clone();
        let run_dir = self.run_dir.clone();
        let tx = self.msg_tx.clone();
        let target = target.clone();
        // A few at a time, in the order released (the semaphore is fair): the first targets
        // start as soon as their own mounts are done instead of all together at the end, and
        // the journal is locked only to record a batch.
        self.in_mount_slot(move || {
            let mut done = prepared.lock().unwrap_or_else(|p| p.into_inner());
            let result = mount_released(&mut done, &prepare, &stacked, |entries| {
                crate::mounts::apply_shared(sys.as_ref(), &m_dir, entries, &journal, &run_dir)
                    .map_err(|e| e.to_string())
            });
            drop(done);
            let _ = tx.send(Msg::Mounted(target, result));
        });
        None
    }

    /// The layout directories of `target` when its stacked environment is still to be
    /// mounted; `None` for one mounted already (the primary's is, with the base:
    /// [`Supervisor::mount_primary`] records it).
    ///
    /// Errors: `target` is missing from the layout.
    fn to_mount(&self, target: &Target) -> Result<Option<crate::mounts::TargetDirs>, String> {
        if self.held.get(target).is_some_and(|h| h.mounted) {
            return Ok(None);
        }
        self.plan
            .layout
            .targets
            .iter()
            .find(|d| &d.target == target)
            .cloned()
            .map(Some)
            .ok_or_else(|| format!("{target} is missing from the layout"))
    }

    /// Mounts a secondary target's stacked environment unless it is mounted already (the
    /// primary environment is always mounted); what [`Supervisor::prepare_secondary`] made
    /// is not made again.
    pub(super) fn mount_secondary(&mut self, target: &Target) -> anyhow::Result<()> {
        let Some(dirs) = self.to_mount(target).map_err(anyhow::Error::msg)? else {
            return Ok(());
        };
        let prepare = self.plan.layout.secondary_prepare_entries(&dirs);
        let stacked = self.plan.layout.secondary_stacked_entries(&dirs);
        let prepared = self.prepared(target);
        let mut done = prepared.lock().unwrap_or_else(|p| p.into_inner());
        mount_released(&mut done, &prepare, &stacked, |entries| self.mount(entries))?;
        drop(done);
        self.held.entry(target.clone()).or_default().mounted = true;
        Ok(())
    }

    pub(super) fn start(&mut self, target: &Target) -> anyhow::Result<()> {
        let (pid, exit) = match self.ui.start_worker(&self.run_dir, target) {
            Some(started) => {
                let s = started.with_context(|| format!("starting the worker of {target}"))?;
                let exited = s.exited;
                let wait: ExitWait = Box::pin(async move { exited.await.unwrap_or(-1) });
                (s.pid, wait)
            }
            None => {
                let (cols, rows) = self.ui.pty_size(target);
                let interactive = self.ui.interactive();
                let (mut child, pty) = spawn::worker(
                    &self.run_dir,
                    target,
                    cols,
                    rows,
                    interactive,
                    self.ui.backlog(),
                    self.out_tx.clone(),
                )
                .with_context(|| format!("starting the worker of {target}"))?;
                self.ui.attach(target, pty);
                let pid = child.id().unwrap_or(0);
                let wait: ExitWait = Box::pin(async move {
                    match child.wait().await {
                        Ok(status) => {
                            use std::os::unix::process::ExitStatusExt;
                            status
                                .code()
                                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
                        }
                        Err(_) => -1,
                    }
                });
                (pid, wait)
            }
        };
        self.held.entry(target.clone()).or_default().pid = Some(pid);
        self.events.append(Event::WorkerStarted {
            target: target.to_string(),
            pid,
        });
        let tx = self.msg_tx.clone();
        let t = target.clone();
        tokio::spawn(async move {
            let code = exit.await;
            let _ = tx.send(Msg::Exited(t, code));
        });
        Ok(())
    }

    /// Kills every process left in `target`'s root: nothing a worker started may outlive it
    /// (also when it was killed with SIGKILL and could not kill its step's process group).
    pub(super) fn kill_leftovers(&mut self, target: &Target) {
        let Some(root) = self.plan.target(target).map(|t| t.root.clone()) else {
            return;
        };
        let left = crate::sys::procs::rooted_in(self.sys.as_ref(), &root);
        if left.is_empty() {
            return;
        }
        let n = left.len();
        let survivors = crate::sys::procs::kill_all(
            self.sys.as_ref(),
            &left,
            std::time::Duration::from_secs(5),
        );
        self.ui.say(&format!(
            "the worker of {target} is gone: killed {n} process(es) it left in {}{}",
            root.display(),
            if survivors.is_empty() {
                String::new()
            } else {
                format!(" ({survivors:?} did not die)")
            }
        ));
    }
}
