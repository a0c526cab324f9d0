//! The end of a run, as the run machine orders it: the summary, the teardown of every mount,
//! and the exit status with what to do next.

use super::Supervisor;
use crate::engine::events::Event;
use crate::engine::run::{Failure, Outcome};
use crate::error::UsageError;
use crate::mounts;
use crate::rundir::journal::Journal;
use crate::ui::plain;

impl Supervisor {
    /// [`crate::engine::run::RunAction::TearDown`]: unmounts everything under `M`; the
    /// journal goes only when nothing is left.
    pub(super) fn teardown(&mut self) {
        self.close_pool();
        for leaf in std::mem::take(&mut self.stale_cgroups) {
            if let Err(e) = crate::pool::cost::remove_leaf(&leaf, std::time::Duration::from_secs(2))
            {
                self.ui.say(&format!("warning: {e}"));
            }
        }
        self.stop_mounting();
        let m = self.plan.layout.m_dir.clone();
        match mounts::teardown(self.sys.as_ref(), &m, true) {
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

    /// Lets no more secondary mounts start (closing the mount slots) and waits, at most 30
    /// seconds, for those in flight on blocking threads: a mount landing after the teardown
    /// would outlive the run.
    fn stop_mounting(&mut self) {
        self.mount_slots.close();
        let all = super::workers::mount_slots();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.mount_slots.available_permits() < all && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// [`crate::engine::run::RunAction::Summary`]: the notification, the summary table and,
    /// for a finished run whose starter asks, whether to keep the mounts for exploring.
    pub(super) fn summary(&mut self, outcome: &Outcome) {
        if let Outcome::ArchiveFailed(e) = outcome {
            self.ui.say(&format!("archive-history failed: {e}"));
        }
        let date = self.plan.date.clone();
        let tree = self.plan.tree.clone();
        let table = plain::summary(self.engine.checkpoint(), &|t| {
            tree.join("builds")
                .join(format!("{t}.{date}"))
                .display()
                .to_string()
        });
        let result = outcome.word();
        let ended = crate::engine::events::Record {
            t_us: crate::sys::now_us(),
            event: Event::RunFinished {
                result: result.into(),
            },
        };
        self.notify(&ended, &format!("run {} {result}", self.plan.run_id));
        self.ui.summary(&table);
        if *outcome == Outcome::Done && self.plan.umount_ask {
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
    }

    /// The end of a run that failed before its run machine could end it (the socket could
    /// not be made): the `run-finished` event, the line in the supervisor's log, and the
    /// checkpoint written.
    pub(super) fn ended_early(&mut self, why: &str) {
        self.events.append(Event::RunFinished {
            result: "failed".into(),
        });
        self.writer.finish();
        self.ui.say(&format!(
            "supervisor {} ends: run {} failed ({why})",
            std::process::id(),
            self.plan.run_id
        ));
        self.ui.close();
    }

    /// [`crate::engine::run::RunAction::End`]: records the end, says how to continue, and
    /// returns the exit status ([`Outcome::exit_code`]); a failed phase is returned as its
    /// error ([`UsageError`] for bad input: exit 2; any other error: exit 1).
    pub(super) fn end(mut self, outcome: Outcome) -> anyhow::Result<i32> {
        let code = outcome.exit_code();
        self.events.append(Event::RunFinished {
            result: outcome.word().into(),
        });
        self.writer.finish();
        let resume = format!(
            "`build-helper run {} --resume {}`",
            self.plan.starter.display(),
            self.plan.run_id
        );
        if code != 0 {
            self.ui.say(&format!(
                "run {} {}; logs in {}/logs; continue with {resume}",
                self.plan.run_id,
                outcome.word(),
                self.run_dir.display(),
            ));
        }
        if let Outcome::Interrupted { why, phase } = &outcome {
            self.ui.say(&format!(
                "{why} during {}: run {} stopped",
                phase.words(),
                self.plan.run_id
            ));
        }
        // Every end (SIGKILL aside) leaves this line in the supervisor's log.
        self.ui.say(&format!(
            "supervisor {} ends: run {} {} (exit status {code})",
            std::process::id(),
            self.plan.run_id,
            outcome.word()
        ));
        self.ui.close();
        // A notification still running (at most its timeout): the run's end must reach it.
        for n in self.notifying.drain(..) {
            let _ = n.join();
        }
        match outcome {
            Outcome::Failed {
                failure: Failure::BadInput(m),
                ..
            } => Err(UsageError(m).into()),
            Outcome::Failed {
                failure: Failure::Environment(m),
                phase,
            } => Err(anyhow::anyhow!(
                "{m}\nrun {} stopped during {} (continue with {resume} once the cause is \
                 fixed)",
                self.plan.run_id,
                phase.words()
            )),
            _ => Ok(code),
        }
    }
}
