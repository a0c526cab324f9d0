//! Worker lifecycle: every worker starts with the run; secondary ones wait, connected, until
//! their tuple's toolchain is ready (then their stacked environment is mounted and they get
//! their steps); a worker is gone when its process has exited and its connection closed.

use anyhow::Context;

use super::{spawn, ExitWait, Msg, Supervisor};
use crate::config::Target;
use crate::engine::events::Event;
use crate::engine::protocol::SupervisorMsg;

impl Supervisor {
    /// Starts a worker for every target with steps left. Secondary workers connect and wait
    /// for their tuple's toolchain: when it is ready, releasing them costs a mount and one
    /// message, not a process start (the toolchain-ready to first-step delay is a goal).
    pub(super) fn start_workers(&mut self) {
        let todo: Vec<Target> = self
            .plan
            .targets
            .iter()
            .filter(|t| !self.started.contains(&t.target))
            .filter(|t| {
                self.cp
                    .target(&t.target)
                    .is_some_and(|r| !r.pending_steps().is_empty())
            })
            .map(|t| t.target.clone())
            .collect();
        for t in todo {
            if let Err(e) = self.start(&t) {
                self.ui.say(&format!("cannot start {t}: {e:#}"));
                self.started.insert(t);
            }
        }
    }

    fn is_primary(&self, target: &Target) -> bool {
        self.plan.targets.first().map(|t| &t.target) == Some(target)
    }

    /// Sends `Start` to every connected waiting worker whose toolchain is ready (mounting its
    /// stacked environment first); tells the waiting ones whose toolchain can no longer come
    /// (the primary worker is gone) to stop.
    pub(super) async fn release_ready(&mut self) {
        let waiting: Vec<Target> = self
            .conn_target
            .values()
            .filter(|t| !self.released.contains(*t))
            .cloned()
            .collect();
        let primary_alive = self
            .plan
            .targets
            .first()
            .is_some_and(|p| self.running.contains_key(&p.target));
        for target in waiting {
            let ready = self.is_primary(&target) || self.cp.tuple_ready(&target.tuple);
            if ready && !self.stopping {
                self.released.insert(target.clone());
                let steps = match self.mount_secondary(&target) {
                    Ok(()) => self
                        .cp
                        .target(&target)
                        .map(|r| r.pending_steps())
                        .unwrap_or_default(),
                    Err(e) => {
                        self.ui
                            .say(&format!("cannot mount the environment of {target}: {e:#}"));
                        Vec::new()
                    }
                };
                let msg = if steps.is_empty() {
                    SupervisorMsg::Stop
                } else {
                    SupervisorMsg::Start { steps }
                };
                self.send(&target, &msg).await;
            } else if !primary_alive || self.stopping {
                self.released.insert(target.clone());
                self.send(&target, &SupervisorMsg::Stop).await;
            }
        }
    }

    /// Mounts a secondary target's stacked environment unless it is mounted already (the
    /// primary environment is always mounted).
    pub(super) fn mount_secondary(&mut self, target: &Target) -> anyhow::Result<()> {
        let primary = self.plan.targets.first().map(|t| &t.target) == Some(target);
        if primary || self.mounted.contains(target) {
            return Ok(());
        }
        let dirs = self
            .plan
            .layout
            .targets
            .iter()
            .find(|d| &d.target == target)
            .cloned()
            .context("target missing from the layout")?;
        let entries = self.plan.layout.secondary_entries(&dirs);
        self.mount(&entries)?;
        self.mounted.insert(target.clone());
        Ok(())
    }

    fn start(&mut self, target: &Target) -> anyhow::Result<()> {
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
        self.started.insert(target.clone());
        self.running.insert(target.clone(), pid);
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

    /// A worker whose process exited is gone once its connection has closed too (its last
    /// messages may still be in flight), or when it never connected.
    pub(super) async fn settle(&mut self) {
        let unidentified = self
            .writers
            .keys()
            .any(|id| !self.conn_target.contains_key(id));
        if unidentified {
            return;
        }
        let gone: Vec<(Target, i32)> = self
            .exited
            .iter()
            .filter(|(t, _)| !self.conn_target.values().any(|c| c == *t))
            .map(|(t, c)| (t.clone(), *c))
            .collect();
        for (target, code) in gone {
            self.exited.remove(&target);
            self.gone(target, code).await;
        }
    }

    pub(super) async fn gone(&mut self, target: Target, code: i32) {
        self.running.remove(&target);
        // Nothing a worker started may outlive it (also when it was killed with SIGKILL and
        // could not kill its step's process group itself): end every process chrooted into
        // its root.
        if let Some(root) = self.plan.target(&target).map(|t| t.root.clone()) {
            let left = crate::rundir::procs::rooted_in(&root);
            if !left.is_empty() {
                let n = left.len();
                let survivors =
                    crate::rundir::procs::kill_all(&left, std::time::Duration::from_secs(5));
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
        if self.cp.worker_exited(&target) {
            self.ui.say(&format!(
                "the worker of {target} ended (exit {code}) during a step: the step is \
                 recorded as interrupted"
            ));
        }
        self.save();
        self.events.append(Event::WorkerExited {
            target: target.to_string(),
            code,
        });
        self.sync_queue.retain(|t| t != &target);
        if self.sync_holder.as_ref() == Some(&target) {
            self.sync_holder = None;
            self.grant_sync().await;
        }
    }
}
