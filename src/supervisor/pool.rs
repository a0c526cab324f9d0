//! The run's job pool as the supervisor serves it (docs/job-pool.md): started before any
//! environment is mounted (each binds its target's fifo), told when each target's step starts
//! and ends (also when its worker is gone mid-step), and closed at the teardown (the archive
//! mounts the environments again, with their fifos). Every
//! change goes to the event log and to `pool.json`, which `status` shows.
//!
//! Not here: the token ledger and the broker's thread (`crate::pool`), a step's environment
//! (the worker).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::Target;
use crate::engine::events::Event;
use crate::plan::Plan;
use crate::pool::{AdmissionLimits, Broker, PoolConfig, PoolSnapshot, PoolView};

/// The pool of a run and what it knows of each target's running step.
pub(super) struct RunPool {
    broker: Broker,
    total: usize,
    /// The step each target runs, between its start and its end.
    running: HashMap<Target, String>,
    /// `<run_dir>/pool.json`.
    state_file: PathBuf,
    /// What front ends were last told.
    shown: Option<PoolView>,
}

impl RunPool {
    /// Starts the pool of `plan` in `<run_dir>/jobserver/` (`None` when the plan has none).
    ///
    /// Errors: the directory or a fifo cannot be made, inotify fails ([`crate::pool::PoolError`]).
    pub(super) fn start(plan: &Plan, run_dir: &Path) -> anyhow::Result<Option<RunPool>> {
        let (Some(pool), Some(dir)) = (&plan.job_pool, &plan.layout.jobserver) else {
            return Ok(None);
        };
        crate::rundir::private_dir(dir)?;
        let names: Vec<String> = plan.targets.iter().map(|t| t.target.to_string()).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut config = PoolConfig::new(pool.jobs as usize);
        config.limits = AdmissionLimits {
            min_mem_avail: pool.min_mem_avail,
            max_load: pool.max_load.map(|l| l.0),
        };
        let broker = Broker::start(dir, &refs, config)?;
        let run = RunPool {
            broker,
            total: pool.jobs as usize,
            running: HashMap::new(),
            state_file: run_dir.join(crate::rundir::layout::POOL),
            shown: None,
        };
        run.write_state();
        Ok(Some(run))
    }

    /// The event that says the pool is served.
    pub(super) fn started_event(&self) -> Event {
        Event::JobPoolStarted { total: self.total }
    }

    /// `target` starts `step`: it gets offers from the pool.
    pub(super) fn step_started(&mut self, target: &Target, step: &str) -> Result<(), String> {
        self.running.insert(target.clone(), step.to_string());
        self.broker
            .step_started(&target.to_string())
            .map_err(|e| e.to_string())
    }

    /// `target`'s step ended and its process group is gone: everything granted to it comes
    /// back, lost tokens included. `None` when no step of it was running (already ended).
    pub(super) fn step_ended(&mut self, target: &Target) -> Option<Result<Event, String>> {
        let step = self.running.remove(target)?;
        let result = self.broker.step_ended(&target.to_string());
        Some(match result {
            Ok(back) => {
                let free = self.snapshot().map(|s| s.free).unwrap_or_default();
                Ok(Event::JobTokensReturned {
                    target: target.to_string(),
                    step,
                    granted: back.granted,
                    lost: back.lost,
                    free,
                    total: self.total,
                })
            }
            Err(e) => Err(e.to_string()),
        })
    }

    /// The pool now.
    pub(super) fn snapshot(&self) -> Option<PoolSnapshot> {
        self.broker.snapshot().ok()
    }

    /// Writes `pool.json` (the snapshot, for `status`): replaced whole, without fsync (a
    /// display file, written on the event loop); a failure only costs the display.
    pub(super) fn write_state(&self) {
        if let Some(s) = self.snapshot() {
            if let Ok(json) = serde_json::to_vec(&s) {
                let _ = crate::fsutil::replace(&self.state_file, &json, false);
            }
        }
    }

    /// What front ends should show, when that changed since they were last told; with
    /// `write`, `pool.json` too (once a second: `status` reads it).
    pub(super) fn refresh(&mut self, write: bool) -> Option<PoolView> {
        if write {
            self.write_state();
        }
        let view = self.snapshot()?.view();
        if self.shown.as_ref() == Some(&view) {
            return None;
        }
        self.shown = Some(view.clone());
        Some(view)
    }

    /// Closes the pool (its fifos removed, `pool.json` too); the closing event.
    pub(super) fn close(self) -> Result<Event, String> {
        let total = self.total;
        let _ = std::fs::remove_file(&self.state_file);
        match self.broker.stop() {
            Ok(s) => Ok(Event::JobPoolClosed {
                total,
                free: s.free,
            }),
            Err(e) => Err(e.to_string()),
        }
    }
}
