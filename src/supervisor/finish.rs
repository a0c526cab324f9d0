//! The end of a run: the `archive-history` step (stopped on request), the summary, the
//! teardown of every mount, and the exit status.

use tokio::sync::mpsc;

use super::{Msg, Signals, Stop, Supervisor};
use crate::engine::events::Event;
use crate::engine::StepState;
use crate::mounts::{self, journal::Journal};
use crate::sys::LinuxSys;
use crate::ui::plain;
use crate::ui::Request;

impl Supervisor {
    pub(super) fn teardown(&mut self) {
        let m = self.plan.layout.m_dir.clone();
        match mounts::teardown(&LinuxSys, &m, true) {
            Ok(n) => {
                if n > 0 {
                    self.ui
                        .say(&format!("unmounted {n} mount(s) under {}", m.display()));
                }
                let _ = Journal::remove(&self.run_dir);
            }
            Err(e) => self.ui.say(&format!("error: {e}")),
        }
    }

    pub(super) async fn finish(
        mut self,
        signals: &mut Signals,
        requests: &mut mpsc::UnboundedReceiver<Request>,
        msgs: &mut mpsc::UnboundedReceiver<Msg>,
    ) -> anyhow::Result<i32> {
        let mut code = if self.engine.stopping() { 130 } else { 1 };
        if !self.engine.stopping() && self.engine.checkpoint().all_done() {
            self.phase = "the archive";
            self.run_step("archive-history", StepState::Running);
            let outcome = tokio::select! {
                r = self.archive() => Some(r),
                why = signals.next(requests) => {
                    self.stop = Some(Stop::Interrupted(format!("{why} during the archive")));
                    None
                }
                Some(Msg::CheckpointFailed(m)) = msgs.recv() => {
                    self.stop = Some(Stop::Failed(m));
                    None
                }
            };
            let outcome = match outcome {
                Some(r) => r,
                None => {
                    self.stop_archiver();
                    self.run_step("archive-history", StepState::Interrupted);
                    code = if matches!(self.stop, Some(Stop::Failed(_))) {
                        1
                    } else {
                        130
                    };
                    Err(anyhow::anyhow!("stopped"))
                }
            };
            match outcome {
                _ if self.stop.is_some() => {}
                Ok(path) => {
                    self.run_step("archive-history", StepState::Done);
                    self.ui.say(&format!("history saved as {}", path.display()));
                    self.engine.checkpoint_mut().finished = true;
                    self.save();
                    code = 0;
                }
                Err(e) => {
                    self.run_step("archive-history", StepState::Failed);
                    self.ui.say(&format!("archive-history failed: {e:#}"));
                }
            }
        }
        let date = self.plan.date.clone();
        let tree = self.plan.tree.clone();
        let table = plain::summary(self.engine.checkpoint(), &|t| {
            tree.join("builds")
                .join(format!("{t}.{date}"))
                .display()
                .to_string()
        });
        let result = match (code, &self.stop) {
            (_, Some(Stop::Failed(_))) => "failed",
            (0, _) => "done",
            (130, _) => "interrupted",
            _ => "failed",
        };
        let ended = crate::engine::events::Record {
            t_us: crate::engine::events::now_us(),
            event: Event::RunFinished {
                result: result.into(),
            },
        };
        self.notify(&ended, &format!("run {} {result}", self.plan.run_id));
        self.ui.summary(&table);
        if code == 0 && self.plan.umount_ask {
            let question = format!(
                "everything is built. Unmount now? [Y/n] (no keeps the mounts while this \
                 process waits; explore with `nsenter -m -t {}`)",
                std::process::id()
            );
            if self.ui.ask(&question) == Some(false) {
                self.ui
                    .wait_for_user("mounts kept; press Enter to unmount and exit");
            }
        }
        self.teardown();
        if let Some(Stop::Failed(_)) = &self.stop {
            code = 1;
        }
        let result = match code {
            0 => "done",
            130 => "interrupted",
            _ => "failed",
        };
        self.events.append(Event::RunFinished {
            result: result.into(),
        });
        self.writer.finish();
        if code != 0 {
            self.ui.say(&format!(
                "run {} {result}; logs in {}/logs; continue with `build-helper run {} --resume {}`",
                self.plan.run_id,
                self.run_dir.display(),
                self.plan.starter.display(),
                self.plan.run_id
            ));
        }
        if let Some(Stop::Interrupted(what)) = &self.stop {
            self.ui
                .say(&format!("{what}: run {} stopped", self.plan.run_id));
        }
        self.ui.close();
        // A notification still running (at most its timeout): the run's end must reach it.
        for n in self.notifying.drain(..) {
            let _ = n.join();
        }
        match self.stop.take() {
            Some(Stop::Failed(m)) => Err(anyhow::anyhow!(
                "{m}; run {} stopped (continue with `build-helper run {} --resume {}` once the \
                 cause is fixed)",
                self.plan.run_id,
                self.plan.starter.display(),
                self.plan.run_id
            )),
            _ => Ok(code),
        }
    }
}
